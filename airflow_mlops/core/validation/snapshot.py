"""Reading a Parquet snapshot into pandas, and the checks every frame passes before GX sees it."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.storage import StorageRoot


def read_snapshot(uri: str, root: StorageRoot | None = None) -> pd.DataFrame:
    """Read a Parquet snapshot (file or dataset folder) into pandas, keeping nullable dtypes."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    if root is not None and root.contains(uri):
        filesystem, path = root.filesystem, root.fs_path(uri)
    elif uri.startswith("s3://"):
        raise SpecError(f"The snapshot {uri!r} is on S3 but outside the storage root {getattr(root, 'uri', None)!r}.")
    else:
        filesystem, path = pafs.LocalFileSystem(), os.path.abspath(uri.removeprefix("file://"))
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        raise SourceNotFoundError(f"No snapshot at {uri!r}.")
    try:
        table = pq.read_table(path, filesystem=filesystem)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"The snapshot {uri!r} is not a readable Parquet file or dataset: {exc}") from exc
    return table.to_pandas()


def check_frame(frame: pd.DataFrame, what: str) -> None:
    """Refuse column names GX cannot address: names that are not text, or a name given twice."""
    names = list(frame.columns)
    not_text = [c for c in names if not isinstance(c, str)]
    if not_text:
        raise DataError(f"Column names of {what} must be strings. Got {not_text[:5]!r}.")
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise DataError(f"{what} has duplicate column names {duplicated}: each column must have one name.")
