"""Evaluation metrics per task, computed the same way for every split (and reusable by the gate).

Binary: ``roc_auc``, ``pr_auc`` (average precision), ``log_loss``, ``brier``, and at the model's own
decision (the most probable class, as the ONNX ``label`` output): ``accuracy``, ``f1``, ``precision``,
``recall``. The positive class is the larger of the two sorted classes (``1`` for 0/1 targets).
Multiclass: ``log_loss``, ``accuracy``, ``f1_macro``, ``roc_auc_ovr`` (macro, one-vs-rest).
Regression: ``rmse``, ``mae``, ``r2``, ``median_ae``.

A metric that is undefined on a split (AUC when the split holds one class) is left out rather than
reported as NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.training.spec import METRIC_DIRECTIONS

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class Predictions:
    """What a model said about some rows: class probabilities and labels, or regression values."""

    values: np.ndarray | None
    probabilities: np.ndarray | None
    labels: np.ndarray | None


def is_better(task: str, metric: str, candidate: float, incumbent: float) -> bool:
    """True when ``candidate`` is strictly better than ``incumbent`` for ``metric``."""
    higher = METRIC_DIRECTIONS[task][metric]
    return candidate > incumbent if higher else candidate < incumbent


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def compute_metrics(
    task: str, y_true: np.ndarray, predictions: Predictions, classes: tuple[Any, ...]
) -> dict[str, float]:
    """Metrics of ``predictions`` against ``y_true`` (see the module docstring for the names)."""
    import numpy as np
    from sklearn import metrics as skm

    if task == "regression":
        values = np.asarray(predictions.values, dtype=np.float64)
        truth = np.asarray(y_true, dtype=np.float64)
        result: dict[str, float] = {
            "rmse": float(np.sqrt(np.mean((truth - values) ** 2))),
            "mae": float(skm.mean_absolute_error(truth, values)),
            "median_ae": float(skm.median_absolute_error(truth, values)),
        }
        if len(truth) >= 2 and np.var(truth) > 0:
            result["r2"] = float(skm.r2_score(truth, values))
        return _finite(result)

    probabilities = np.asarray(predictions.probabilities, dtype=np.float64)
    labels = np.asarray(predictions.labels)
    truth = np.asarray(y_true)
    present = set(np.unique(truth).tolist())
    clipped = np.clip(probabilities, 1e-15, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)  # float32 models sum to 1 only within ~1e-7
    result = {
        "log_loss": float(skm.log_loss(truth, clipped, labels=list(classes))),
        "accuracy": float(skm.accuracy_score(truth, labels)),
    }
    if task == "binary":
        positive = classes[1]
        is_positive = truth == positive
        score = probabilities[:, 1]
        result["brier"] = float(np.mean((score - is_positive) ** 2))
        result["f1"] = float(skm.f1_score(is_positive, labels == positive, zero_division=0))
        result["precision"] = float(skm.precision_score(is_positive, labels == positive, zero_division=0))
        result["recall"] = float(skm.recall_score(is_positive, labels == positive, zero_division=0))
        if len(present) == 2:
            result["roc_auc"] = float(skm.roc_auc_score(is_positive, score))
            result["pr_auc"] = float(skm.average_precision_score(is_positive, score))
    else:
        result["f1_macro"] = float(skm.f1_score(truth, labels, labels=list(classes), average="macro", zero_division=0))
        if present == set(classes):
            result["roc_auc_ovr"] = float(
                skm.roc_auc_score(truth, probabilities, labels=list(classes), multi_class="ovr", average="macro")
            )
    return _finite(result)
