"""Column-wise access to the two inputs of a drift check: a DataFrame or a Parquet file (local or under
the storage root), read one column at a time and cut to a seeded row sample, so memory stays bounded."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from airflow_mlops.core.drift.spec import Kind
    from airflow_mlops.core.storage import StorageRoot


class Table:
    """A two-dimensional input read one column at a time (base of frame and Parquet inputs)."""

    name: str
    num_rows: int

    def arrow_types(self) -> dict[str, pa.DataType]:
        raise NotImplementedError

    def column(self, name: str, rows: np.ndarray | None) -> pd.Series:
        """Column ``name`` (only the positions in ``rows`` when given, which are sorted)."""
        raise NotImplementedError

    def non_null_count(self, name: str) -> int:
        """Non-null values of a column over every row (not only a sample)."""
        return int(self.column(name, None).notna().sum())

    def frame(self, columns: Sequence[str], rows: np.ndarray | None) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({c: self.column(c, rows).reset_index(drop=True) for c in columns})


class FrameTable(Table):
    def __init__(self, frame: pd.DataFrame, name: str = "frame") -> None:
        self._frame = frame
        self.name = name
        self.num_rows = len(frame)

    def arrow_types(self) -> dict[str, pa.DataType]:
        import pyarrow as pa

        types = {}
        for column in self._frame.columns:
            try:
                types[str(column)] = pa.Array.from_pandas(self._frame[column].iloc[:1000]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                types[str(column)] = pa.string()
        return types

    def column(self, name: str, rows: np.ndarray | None) -> pd.Series:
        series = self._frame[name]
        return series if rows is None else series.iloc[rows]


class ParquetTable(Table):
    """A Parquet file read column by column (and row group by row group when sampling)."""

    def __init__(self, filesystem: Any, path: str, name: str, role: str = "input") -> None:
        import pyarrow.parquet as pq

        self.name = name
        try:
            self._file = pq.ParquetFile(filesystem.open_input_file(path))
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"The {role} {name!r} does not exist: no Parquet file there.") from exc
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"The {role} {name!r} could not be read as Parquet: {exc}") from exc
        self.num_rows = int(self._file.metadata.num_rows)

    def arrow_types(self) -> dict[str, pa.DataType]:
        schema = self._file.schema_arrow
        return {f.name: f.type for f in schema if f.name != "__index_level_0__"}

    def non_null_count(self, name: str) -> int:
        # Row-group statistics carry null counts: no need to read a column that is being sampled.
        index = self._file.schema_arrow.get_field_index(name)
        total = 0
        for group in range(self._file.num_row_groups):
            meta = self._file.metadata.row_group(group)
            stats = meta.column(index).statistics if index < meta.num_columns else None
            if stats is None or not stats.has_null_count:
                return super().non_null_count(name)
            total += meta.num_rows - stats.null_count
        return total

    def column(self, name: str, rows: np.ndarray | None) -> pd.Series:
        import numpy as np
        import pyarrow as pa

        if rows is None:
            array = self._file.read(columns=[name]).column(0)
            return array.to_pandas()
        pieces, start = [], 0
        for group in range(self._file.num_row_groups):
            size = self._file.metadata.row_group(group).num_rows
            lo, hi = np.searchsorted(rows, [start, start + size])
            if hi > lo:
                chunk = self._file.read_row_group(group, columns=[name]).column(0)
                pieces.append(chunk.take(pa.array(rows[lo:hi] - start)))
            start += size
        if not pieces:
            return self._file.schema_arrow.empty_table().select([name]).column(0).to_pandas()
        return pa.chunked_array([c for p in pieces for c in p.chunks]).to_pandas()


def open_table(source: Any, *, root: StorageRoot | None = None, role: str = "input") -> Table:
    """A :class:`Table` over a DataFrame, a Parquet URI inside ``root``, or a local Parquet path.

    ``role`` names the input in error messages ("reference", "current batch", ...).
    """
    import pandas as pd

    if isinstance(source, Table):
        return source
    if isinstance(source, pd.DataFrame):
        return FrameTable(source, role)
    filesystem, path = parquet_location(str(source), root, role)
    return ParquetTable(filesystem, path, str(source), role)


def parquet_location(uri: str, root: StorageRoot | None, role: str) -> tuple[Any, str]:
    """The pyarrow filesystem and path of a Parquet URI inside ``root``, or of a local path."""
    if root is not None and root.contains(uri):
        return root.filesystem, root.fs_path(uri)
    if uri.startswith("s3://"):
        raise SpecError(f"The {role} {uri!r} is on S3 but outside the storage root; it cannot be reached.")
    import pyarrow.fs as pafs

    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return pafs.LocalFileSystem(), os.path.abspath(path)


def sample_rows(num_rows: int, size: int | None, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded uniform sample of ``size`` rows; None when every row is kept."""
    import numpy as np

    if size is None or num_rows <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=size, replace=False))


def kind_of(arrow_type: pa.DataType) -> Kind | None:
    import pyarrow.types as pat

    if pat.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pat.is_boolean(arrow_type) or pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
        return "categorical"
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return "numeric"
    if pat.is_null(arrow_type):
        return None
    return None


def numeric_values(series: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    values = pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), copy=False)
    values[np.isinf(values.to_numpy())] = np.nan
    return values.dropna().reset_index(drop=True)


def categorical_values(series: pd.Series) -> pd.Series:
    """Non-null values as text, so 1, 1.0 and '1' from differently typed files are one category."""
    import numpy as np
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_float_dtype(values.dtype):
        array = values.to_numpy(dtype="float64")
        if np.all(np.floor(array) == array):
            values = pd.Series(array.astype("int64"), copy=False)
    if pd.api.types.is_object_dtype(values.dtype) and values.map(type).eq(str).all():
        return values.reset_index(drop=True)
    return values.astype(str).astype(object).reset_index(drop=True)
