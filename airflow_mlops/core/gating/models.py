"""The models the gate evaluates and how each is run: ONNX predictions on the evaluation rows, scoring
latency, and the training stem's parity measure.

Both models are ONNX graphs run through :class:`~airflow_mlops.core.onnx_model.OnnxModel`, exactly as
scoring will run them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.onnx_model import OnnxInput, OnnxModel

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NativePredict = Callable[["pd.DataFrame"], "np.ndarray"]

PARITY_MEASURES: dict[str, str] = {
    "binary": "max_abs_probability_diff",
    "multiclass": "max_abs_probability_diff",
    "regression": "max_rel_diff",
}


@dataclass(frozen=True)
class ModelUnderTest:
    """A model the gate evaluates: ONNX bytes plus the training spec artifact that describes them.

    :param role: ``candidate`` or ``champion``.
    :param onnx_bytes: the exported model.
    :param spec: the training spec artifact (task, target, classes, onnx_inputs ...).
    :param run_id: the MLflow run that produced it.
    :param version: its registered version (champion).
    :param expected_sha256: the recorded sha256; the bytes are refused when they differ.
    :param native_predict: the native model's prediction function for the parity check (probabilities
        ``[n, n_classes]`` for classifiers, values for regressors), when the native model is available.
    :param logged_parity: the ONNX parity the training run measured (in the training stem's measure).
    :param training_sample: a sample of the rows the model was trained on, with the target (the run's
        reference artifact); the baseline learns from it.
    """

    role: Literal["candidate", "champion"]
    onnx_bytes: bytes
    spec: Mapping[str, Any]
    run_id: str | None = None
    version: str | None = None
    expected_sha256: str | None = None
    native_predict: NativePredict | None = field(default=None, compare=False, repr=False)
    logged_parity: float | None = None
    training_sample: pd.DataFrame | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Scored:
    """One model's predictions on the evaluation rows, and the metrics they earn."""

    prediction: np.ndarray
    metrics: dict[str, float]


@dataclass(frozen=True)
class ChampionComparison:
    """The champion on the candidate's evaluation rows: scored when it can be compared, else why not.

    :ivar info: what describes the champion in the decision (:func:`model_info`).
    :ivar scored: its predictions and metrics; None when it is not comparable.
    :ivar latency: its scoring latency (ms per 1,000 rows) when it was scored.
    :ivar reason: why it cannot be compared, or None.
    """

    info: dict[str, Any]
    scored: Scored | None
    latency: float | None
    reason: str | None


def model_info(model: ModelUnderTest) -> dict[str, Any]:
    """What describes a model in the decision: its run, version, checksum, size, task and features."""
    from airflow_mlops.core.storage import sha256_bytes

    spec = model.spec
    return {
        "role": model.role,
        "run_id": model.run_id,
        "version": model.version,
        "sha256": sha256_bytes(model.onnx_bytes),
        "size_bytes": len(model.onnx_bytes),
        "task": spec.get("task"),
        "target": spec.get("target"),
        "features": [i.get("column", i.get("name")) for i in spec.get("onnx_inputs") or [] if isinstance(i, Mapping)],
        "estimator": spec.get("estimator") or spec.get("model"),
        "judged_model": spec.get("judged_model", "registered"),  # "selection": a refit_all run's selection model
    }


def _predictions(task: gm.Task, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
    from airflow_mlops.core.contracts import ONNX_OUTPUT_PROBABILITIES, ONNX_OUTPUT_REGRESSION

    key = ONNX_OUTPUT_REGRESSION if task == "regression" else ONNX_OUTPUT_PROBABILITIES
    if key not in outputs:
        raise SpecError(
            f"The ONNX graph of a {task} model must have an output named {key!r}. It has {sorted(outputs)}."
        )
    values = outputs[key]
    return values.reshape(-1).astype("float64") if task == "regression" else values.astype("float64")


def score(model: OnnxModel, task: gm.Task, frame: pd.DataFrame, n_classes: int) -> np.ndarray:
    """The model's predictions for ``frame``: class probabilities ``[n, n_classes]``, or values."""
    prediction = _predictions(task, model.run(frame))
    if task != "regression" and (prediction.ndim != 2 or prediction.shape[1] != n_classes):
        raise SpecError(
            f"The ONNX 'probabilities' output has shape {prediction.shape}; the spec lists {n_classes} classes."
        )
    return prediction


def measure_latency(
    model_bytes: bytes, inputs: Sequence[OnnxInput], frame: pd.DataFrame, *, rows: int, repeats: int
) -> float:
    """Median milliseconds to score 1,000 rows, frame to outputs, in a fresh one-thread session."""
    import statistics

    import pandas as pd

    sample = frame.head(rows)
    if len(sample) < rows:  # few evaluation rows: repeat them so the batch has the budgeted size
        sample = pd.concat([sample] * (rows // max(1, len(sample)) + 1), ignore_index=True).head(rows)
    model = OnnxModel(model_bytes, inputs, threads=1)
    model.run(sample)  # warm-up: the first run pays for allocations
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.run(sample)
        timings.append(time.perf_counter() - start)
    return statistics.median(timings) * 1000.0 * 1000.0 / rows


def parity_difference(task: gm.Task, native: np.ndarray, onnx: np.ndarray) -> float:
    """The training stem's parity measure: largest absolute probability difference for classifiers,
    largest difference relative to ``max(|native|, 1)`` for regressors."""
    import numpy as np

    if len(native) == 0:
        return 0.0
    difference = np.abs(native - onnx)
    if task == "regression":
        difference = difference / np.maximum(np.abs(native), 1.0)
    if np.isnan(difference).any():
        return float("inf")
    return float(difference.max())
