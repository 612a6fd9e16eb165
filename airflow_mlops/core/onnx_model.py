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

    missing = [i.column for i in inputs if i.column not in frame.columns]
    if missing:
        raise DataError(
            f"The input is missing feature column(s) {missing} that the model needs. "
            f"Columns present: {sorted(map(str, frame.columns))}."
        )
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
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # converters leave shape warnings that say nothing to a user
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
        outputs = self.session.run(self.output_names, feed(frame, self.inputs))
        return dict(zip(self.output_names, outputs, strict=True))
