"""Run an exported model through ONNX Runtime: the one way training (parity), the gate and scoring feed
frames to a model, so that all three compute exactly the same thing.

The graph follows the contract in :mod:`airflow_mlops.core.contracts`: one input per feature column,
numeric as ``tensor(float)``, categorical as ``tensor(string)``, shape ``[None, 1]``. Missing
categorical values are fed as :data:`MISSING_CATEGORY`; training fills them the same way before
fitting, so serving and training see the same value.

Nothing here unpickles: the model is ONNX bytes, checked against a recorded sha256 before use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core.errors import DataError, IntegrityError, SpecError
from airflow_mlops.core.storage import sha256_bytes

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

MISSING_CATEGORY = ""


@dataclass(frozen=True)
class OnnxInput:
    """One graph input fed from one frame column."""

    name: str
    column: str
    type: Literal["float", "string"]

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> OnnxInput:
        kind = raw.get("type")
        if kind not in ("float", "string"):
            raise SpecError(f"An ONNX input's 'type' must be 'float' or 'string'. Got {kind!r} in {dict(raw)!r}.")
        return cls(name=str(raw["name"]), column=str(raw.get("column", raw["name"])), type=kind)

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "column": self.column, "type": self.type}


def inputs_from_spec(spec: Mapping[str, Any]) -> list[OnnxInput]:
    """The ``onnx_inputs`` of a training spec artifact (JSON), validated."""
    raw = spec.get("onnx_inputs")
    if not isinstance(raw, list) or not raw:
        raise SpecError("The training spec has no 'onnx_inputs' list: it was not written by a compatible trainer.")
    return [OnnxInput.from_mapping(item) for item in raw]


def feed(frame: pd.DataFrame, inputs: Sequence[OnnxInput]) -> dict[str, np.ndarray]:
    """Build the ONNX Runtime feed for ``frame``; extra columns are ignored.

    :raises DataError: a feature column is missing, or a numeric column holds values that cannot
        be read as numbers (the message names the column and shows an offending value).
    """
    import numpy as np
    import pandas as pd

    _check_columns(list(frame.columns), inputs)
    result: dict[str, np.ndarray] = {}
    for item in inputs:
        column = frame[item.column]
        if item.type == "float":
            try:
                values = pd.to_numeric(column, errors="raise")
            except (ValueError, TypeError) as exc:
                bad = column[pd.to_numeric(column, errors="coerce").isna() & column.notna()]
                example = bad.iloc[0] if len(bad) else "?"
                raise DataError(
                    f"Feature column {item.column!r} must be numeric; it holds {example!r} "
                    f"(dtype {column.dtype}) that cannot be read as a number."
                ) from exc
            array = values.to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            array = column.astype("object").where(column.notna(), MISSING_CATEGORY).astype(str).to_numpy()
        result[item.name] = array.reshape(-1, 1)
    return result


def _check_columns(columns: Sequence[object], inputs: Sequence[OnnxInput]) -> None:
    present = set(columns)
    missing = [i.column for i in inputs if i.column not in present]
    if missing:
        raise DataError(
            f"The input is missing feature column(s) {missing} that the model needs. "
            f"Columns present: {sorted(map(str, columns))}."
        )


def feed_arrow(batch: pa.RecordBatch | pa.Table, inputs: Sequence[OnnxInput]) -> dict[str, np.ndarray]:
    """Build the ONNX Runtime feed straight from Arrow data, without a pandas frame; extra columns are ignored.

    Gives exactly what :func:`feed` gives for the same data (a test holds the two together): numeric
    columns of integer, floating, boolean or decimal type are cast to float32 with nulls as NaN, string
    and dictionary-of-string columns become strings with nulls as :data:`MISSING_CATEGORY`. Any other
    type (numbers stored as text, timestamps, ...) goes through :func:`feed` column by column, so the
    coercion rules stay those of the pandas path. Strings are decoded once per distinct value, which is
    what makes this path several times faster than going through pandas.

    :raises DataError: as :func:`feed`.
    """
    import pyarrow as pa

    _check_columns(batch.schema.names, inputs)
    block = _float_block(batch, [i for i in inputs if i.type == "float"])
    result: dict[str, np.ndarray] = {}
    for item in inputs:
        if item.name in block:
            result[item.name] = block[item.name]
            continue
        column = batch.column(item.column)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        fast = _float_from_arrow(column) if item.type == "float" else _string_from_arrow(column)
        if fast is None:  # a type only the pandas rules know how to coerce
            frame = pa.table({item.column: column}).to_pandas()
            fast = feed(frame, [item])[item.name].reshape(-1)
        result[item.name] = fast.reshape(-1, 1)
    return result


def _float_block(batch: pa.RecordBatch | pa.Table, numeric: Sequence[OnnxInput]) -> dict[str, np.ndarray]:
    """The numeric features that are plain numbers without nulls, as one float32 ``(features, rows)``
    block filled in one pass, each feed entry a contiguous ``(rows, 1)`` view of its row of the block.

    numpy's float64/integer/boolean to float32 conversion rounds as Arrow's cast does (to nearest), so
    this gives exactly what :func:`_float_from_arrow` gives; columns with nulls, decimals and any other
    type are left to it (nulls become NaN there).
    """
    import numpy as np
    import pyarrow as pa

    plain = []
    for item in numeric:
        column = batch.column(item.column)
        kind = column.type
        if column.null_count == 0 and (
            pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
        ):
            plain.append((item.name, column))
    if not plain:
        return {}
    block = np.empty((len(plain), batch.num_rows), dtype=np.float32)
    with np.errstate(over="ignore"):  # beyond float32's range becomes an infinity, as Arrow's cast gives
        for row, (_, column) in enumerate(plain):
            block[row] = column.to_numpy(zero_copy_only=False)
    return {name: block[row].reshape(-1, 1) for row, (name, _) in enumerate(plain)}


def _float_from_arrow(column: pa.Array) -> np.ndarray | None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_null(kind):
        return np.full(len(column), np.nan, dtype=np.float32)
    if pa.types.is_decimal(kind):
        column = pc.cast(column, pa.float64())  # pandas reads decimals as float64 first
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)):
        return None
    values = pc.cast(column, pa.float32(), safe=False)
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float32)  # nulls become NaN


def _string_from_arrow(column: pa.Array) -> np.ndarray | None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        column = column.dictionary_encode()
    elif not (pa.types.is_dictionary(kind) and pa.types.is_string(kind.value_type)):
        return None
    values = pc.fill_null(column.dictionary, MISSING_CATEGORY).to_numpy(zero_copy_only=False)
    lookup = np.empty(len(values) + 1, dtype=object)  # one more slot: the missing category
    lookup[:-1] = values
    lookup[-1] = MISSING_CATEGORY
    indices = pc.fill_null(column.indices, len(values)).to_numpy(zero_copy_only=False)
    return np.asarray(lookup[indices])


class OnnxModel:
    """An ONNX graph ready to score frames.

    :param model_bytes: the serialized ONNX model.
    :param inputs: how frame columns map to graph inputs.
    :param expected_sha256: when given, the bytes must hash to it or :class:`IntegrityError` is raised
        before a session is even created.
    :param threads: intra-op threads of the ONNX Runtime session (1 gives deterministic timing on a
        shared machine; raise it for throughput).
    """

    def __init__(
        self,
        model_bytes: bytes,
        inputs: Sequence[OnnxInput],
        *,
        expected_sha256: str | None = None,
        threads: int = 1,
    ) -> None:
        import onnxruntime as ort

        self.sha256 = sha256_bytes(model_bytes)
        if expected_sha256 is not None and self.sha256 != expected_sha256:
            raise IntegrityError(
                f"The ONNX model has sha256 {self.sha256}, but {expected_sha256} was recorded at "
                "registration: the file was changed. Refusing to load it."
            )
        if threads < 1:
            raise SpecError(f"'threads' must be a positive integer. Got {threads!r} instead.")
        self.inputs = list(inputs)
        self.threads = threads
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # converters leave shape warnings that say nothing to a user
        # Idle pool threads sleep instead of spinning: a worker runs several tasks at once, and spinning
        # threads take the cores the others need (measured on a busy 2-core machine: 2 threads took 1.6
        # times as long with spinning as without).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own non-Exception-hierarchy-specific errors
            raise IntegrityError(f"The ONNX model could not be loaded by ONNX Runtime: {exc}") from exc
        graph_inputs = {i.name for i in self.session.get_inputs()}
        declared = {i.name for i in self.inputs}
        if graph_inputs != declared:
            raise SpecError(
                f"The ONNX graph expects inputs {sorted(graph_inputs)}, but the spec declares {sorted(declared)}."
            )
        self.output_names = [o.name for o in self.session.get_outputs()]

    def run(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        """All graph outputs for ``frame``, by output name."""
        return self.run_feed(feed(frame, self.inputs))

    def run_arrow(self, batch: pa.RecordBatch | pa.Table) -> dict[str, np.ndarray]:
        """All graph outputs for an Arrow batch or table, by output name (see :func:`feed_arrow`)."""
        return self.run_feed(feed_arrow(batch, self.inputs))

    def run_feed(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """All graph outputs for a prepared feed (graph input name -> array), by output name."""
        outputs = self.session.run(self.output_names, dict(inputs))
        return dict(zip(self.output_names, outputs, strict=True))
