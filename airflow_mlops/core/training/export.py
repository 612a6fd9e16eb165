"""Export the fitted pipeline to one ONNX graph and prove it computes what the native model computes.

The graph follows the ONNX model contract in :mod:`airflow_mlops.core.contracts`: one input per
feature named like the column (``float`` numeric, ``string`` categorical, shape ``[None, 1]``);
classifiers output ``label`` and ``probabilities`` (no ZipMap), regressors ``variable``.

LightGBM models go through onnxmltools' converter, registered with skl2onnx so that the whole
pipeline (ColumnTransformer + LGBM) converts as one graph, with its tree ensembles in double
precision (see :func:`_convert_lightgbm`).

Parity is checked through :class:`~airflow_mlops.core.onnx_model.OnnxModel`, fed from the raw test
rows exactly as scoring feeds it.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, SpecError
from airflow_mlops.core.metrics import Predictions
from airflow_mlops.core.onnx_model import OnnxInput, OnnxModel
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}
_registered = threading.Lock()


class ParityError(ArtifactError):
    """The ONNX graph does not compute what the native model computes (beyond the tolerance)."""

    def __init__(self, message: str, report: ParityReport | None = None) -> None:
        super().__init__(message)
        self.report = report


@dataclass(frozen=True)
class ParityReport:
    """Native model vs ONNX graph on the test split.

    :param measure: ``max_abs_probability_diff`` for classifiers; ``max_rel_diff`` for regressors,
        where each row's difference is divided by ``max(|native|, 1)``.
    :param label_agreement: share of rows where the ONNX ``label`` equals the native decision.
    """

    measure: Literal["max_abs_probability_diff", "max_rel_diff"]
    value: float
    tolerance: float
    rows: int
    label_agreement: float | None = None

    @property
    def passed(self) -> bool:
        return self.value <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        return {
            "measure": self.measure,
            "value": self.value,
            "tolerance": self.tolerance,
            "rows": self.rows,
            "label_agreement": self.label_agreement,
            "passed": self.passed,
        }


_TREE_ENSEMBLES = {"TreeEnsembleRegressor": "target_weights", "TreeEnsembleClassifier": "class_weights"}


def _convert_lightgbm(scope: Any, operator: Any, container: Any) -> None:
    """onnxmltools' LightGBM converter, emitting double-precision tree ensembles.

    onnxmltools writes thresholds and leaf values as float32 attributes, so a tree ensemble sums
    hundreds of rounded leaves in float32: regressors drift by ~1e-5 relative and a threshold can
    round across a data value. LightGBM compares ``double(x) <= threshold`` and sums in double. The
    tree nodes are intercepted as they are added: their input is cast to double (exact for float32
    features) and thresholds and leaf weights become double tensors (``*_as_tensor``), so ONNX Runtime
    runs the double kernel and matches LightGBM to float32 output rounding.
    """
    import numpy as np
    from onnx import TensorProto, numpy_helper
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

    add_node = container.add_node

    def add_double_node(
        op_type: str, inputs: Any, outputs: Any, op_domain: str = "", op_version: Any = None, **attrs: Any
    ) -> Any:
        weights = _TREE_ENSEMBLES.get(op_type)
        if weights is not None and op_domain == "ai.onnx.ml":
            for name in ("nodes_values", weights, "base_values"):
                if name in attrs:
                    values = np.asarray(attrs.pop(name), dtype=np.float64)
                    attrs[f"{name}_as_tensor"] = numpy_helper.from_array(values)
            as_double = scope.get_unique_variable_name("tree_input_double")
            add_node(
                "Cast", inputs, as_double, name=scope.get_unique_operator_name("CastToDouble"), to=TensorProto.DOUBLE
            )
            inputs = [as_double]
        return add_node(op_type, inputs, outputs, op_domain=op_domain, op_version=op_version, **attrs)

    operator.split = None  # read by onnxmltools; one ensemble, summed in double by the kernel
    container.add_node = add_double_node
    try:
        convert_lightgbm(scope, operator, container)
    finally:
        container.add_node = add_node


def _copy_flat(value: Any) -> Any:
    """``copy.deepcopy`` for the flat lists of numbers onnxmltools copies (a plain list copy is the same
    thing there, and ~20x faster); anything else goes to ``copy.deepcopy``."""
    # onnxmltools' lists are homogeneous (node ids, thresholds, weights): the first item tells.
    if type(value) is list and (not value or type(value[0]) in (int, float, str)):
        return list(value)
    return copy.deepcopy(value)


def register_lightgbm_converters() -> None:
    """Teach skl2onnx to convert LGBMClassifier and LGBMRegressor inside a pipeline (idempotent, and
    restored when something else replaced them since).

    onnxmltools' converter deep-copies every per-node attribute list (hundreds of thousands of ints
    for a few hundred trees), which is about half of its run time; the module's ``copy`` is pointed at
    a namespace whose ``deepcopy`` copies flat lists of numbers directly. Nothing else changes.

    The registration is renewed on every call rather than once per process: skl2onnx keeps one global
    converter per model type, and any other code in the process (a user's own export, a library) may
    register onnxmltools' plain converter, whose float32 trees miss the parity tolerance.
    """
    with _registered:
        import types

        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters import LightGbm

        LightGbm.copy = types.SimpleNamespace(deepcopy=_copy_flat)
        from skl2onnx import update_registered_converter
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
            calculate_linear_regressor_output_shapes,
        )

        update_registered_converter(
            lightgbm.LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            _convert_lightgbm,
            options={"nocl": [True, False], "zipmap": [True, False, "columns"]},
        )
        update_registered_converter(
            lightgbm.LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            _convert_lightgbm,
        )


def expected_outputs(spec: TrainingSpec) -> list[str]:
    if spec.is_classifier:
        return [contracts.ONNX_OUTPUT_LABEL, contracts.ONNX_OUTPUT_PROBABILITIES]
    return [contracts.ONNX_OUTPUT_REGRESSION]


def export_onnx(pipeline: Pipeline, spec: TrainingSpec, inputs: list[OnnxInput], classes: tuple[Any, ...]) -> bytes:
    """Serialise the whole fitted pipeline to ONNX bytes (deterministic for a given pipeline).

    :raises SpecError: the estimator cannot be converted by skl2onnx.
    :raises ArtifactError: the graph does not follow the ONNX model contract.
    """
    import onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_lightgbm_converters()
    initial_types = [
        (i.name, FloatTensorType([None, 1]) if i.type == "float" else StringTensorType([None, 1])) for i in inputs
    ]
    estimator = pipeline.named_steps["model"]
    options: dict[int, dict[str, Any]] = {}
    if spec.is_classifier:
        options[id(estimator)] = {"zipmap": False}
    try:
        model = to_onnx(pipeline, initial_types=initial_types, options=options, target_opset=TARGET_OPSET)
    except Exception as exc:  # skl2onnx raises RuntimeError, NotImplementedError and its own types
        raise SpecError(
            f"The fitted pipeline with estimator {spec.estimator.type!r} cannot be exported to ONNX: "
            f"{type(exc).__name__}: {exc}. Pick an estimator skl2onnx supports."
        ) from exc
    outputs = [o.name for o in model.graph.output]
    if outputs != expected_outputs(spec):
        raise ArtifactError(
            f"The exported ONNX graph has outputs {outputs}; the model contract needs {expected_outputs(spec)}."
        )
    metadata = {
        "mlops.task": spec.task,
        "mlops.target": spec.target,
        "mlops.classes": json.dumps(list(classes)),
        "mlops.onnx_inputs": json.dumps([i.to_dict() for i in inputs]),
    }
    onnx.helper.set_model_props(model, metadata)
    # skl2onnx lists opsets in set order, which follows the process's string-hash seed: sort them so
    # the same model gives the same bytes (and sha256) on every worker.
    opsets = sorted(model.opset_import, key=lambda o: (o.domain, o.version))
    del model.opset_import[:]
    model.opset_import.extend(opsets)
    return bytes(model.SerializeToString())


def check_parity(
    model_bytes: bytes,
    inputs: list[OnnxInput],
    spec: TrainingSpec,
    rows: pd.DataFrame,
    native: Predictions,
    classes: tuple[Any, ...],
) -> ParityReport:
    """Run the graph on ``rows`` (raw test rows) and compare with the native predictions on them.

    :raises ParityError: the difference exceeds ``spec.parity_tolerance``, or the outputs have the
        wrong shape; the message gives the figures and the worst row.
    """
    outputs = OnnxModel(model_bytes, inputs, threads=1).run(rows)
    return parity_report(outputs, native, inputs, spec, rows, classes)


def parity_report(
    outputs: Mapping[str, Any],
    native: Predictions,
    inputs: list[OnnxInput],
    spec: TrainingSpec,
    rows: pd.DataFrame,
    classes: tuple[Any, ...],
    positions: Any = None,
) -> ParityReport:
    """Compare the graph's ``outputs`` on ``rows`` with the native predictions of the rows at ``positions``
    (every row when None), in that order.

    :raises ParityError: as :func:`check_parity`; the worst row is named by its position in ``rows``.
    """
    import numpy as np

    picked = np.arange(len(rows)) if positions is None else np.asarray(positions, dtype=np.int64)
    n = len(picked)
    if spec.is_classifier:
        onnx_probabilities = np.asarray(outputs[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float64)[picked]
        expected = np.asarray(native.probabilities, dtype=np.float64)
        if onnx_probabilities.shape != expected.shape:
            raise ParityError(
                f"The ONNX 'probabilities' output has shape {onnx_probabilities.shape}; the native model gives "
                f"{expected.shape} ({len(classes)} classes)."
            )
        difference = np.abs(onnx_probabilities - expected).max(axis=1)
        onnx_labels = np.asarray(outputs[contracts.ONNX_OUTPUT_LABEL]).ravel()[picked]
        agreement = float(np.mean(onnx_labels.astype(str) == np.asarray(native.labels).astype(str))) if n else 1.0
        report = ParityReport("max_abs_probability_diff", _worst(difference), spec.parity_tolerance, n, agreement)
    else:
        onnx_values = np.asarray(outputs[contracts.ONNX_OUTPUT_REGRESSION], dtype=np.float64)
        if onnx_values.shape != (len(rows), 1):
            raise ParityError(f"The ONNX 'variable' output has shape {onnx_values.shape}; expected ({len(rows)}, 1).")
        expected = np.asarray(native.values, dtype=np.float64)
        difference = np.abs(onnx_values[picked, 0] - expected) / np.maximum(np.abs(expected), 1.0)
        report = ParityReport("max_rel_diff", _worst(difference), spec.parity_tolerance, n)
    if not report.passed:
        worst = int(picked[int(np.nanargmax(np.where(np.isnan(difference), np.inf, difference)))])
        raise ParityError(
            f"ONNX parity failed on the test split: {report.measure} = {report.value:.3g} > tolerance "
            f"{report.tolerance:g} over {n} rows (worst at test row {worst}: "
            f"{rows.iloc[worst][[i.column for i in inputs]].to_dict()}). The exported graph does not compute what "
            "the native model computes; the model is not published.",
            report,
        )
    return report


def graph_predictions(outputs: Mapping[str, Any], spec: TrainingSpec, classes: tuple[Any, ...]) -> Predictions:
    """The graph's outputs as :class:`Predictions`, labelled as the native model's are (the class of the
    highest probability), so metrics read them alike."""
    import numpy as np

    if spec.is_classifier:
        probabilities = np.asarray(outputs[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float64)
        return Predictions(None, probabilities, np.asarray(classes)[probabilities.argmax(axis=1)])
    return Predictions(np.asarray(outputs[contracts.ONNX_OUTPUT_REGRESSION], dtype=np.float64).ravel(), None, None)


def _worst(difference: Any) -> float:
    import numpy as np

    if len(difference) == 0:
        return 0.0
    if np.isnan(difference).any():
        return float("inf")
    return float(difference.max())
