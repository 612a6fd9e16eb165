"""Every evaluation metric of the package, computed in one place, with optional row weights.

Training, the gate and drift's quality check all call this module, so a metric has one definition,
one direction (higher or lower is better, in :data:`METRICS`) and one value wherever it is reported.

Binary: ``roc_auc``, ``pr_auc`` (average precision), ``log_loss``, ``brier``, and at the model's own
decision: ``accuracy``, ``f1``, ``precision``, ``recall``. The positive class is the second of the two
sorted classes (``1`` for 0/1 targets). Multiclass: ``log_loss``, ``accuracy``, ``f1_macro`` (over the
classes that occur in the truth or the decisions), ``roc_auc_ovr`` (macro, one-vs-rest; defined only
when every class occurs). Regression: ``rmse``, ``mae``, ``r2``, ``median_ae``.

Every metric takes ``(y, prediction, weights)``: for classifiers ``y`` holds class indices (positions
in the model's ``classes``) and ``prediction`` the probability matrix ``[n, n_classes]``; for
regressors both are float vectors. Weights are row multiplicities: ``None`` means one each, and a
bootstrap resample is a vector of counts. Metrics at the decision use the most probable class unless
``decided`` gives the class index each row was assigned (a model's own label output). A test holds
each metric to scikit-learn's on real data.

A metric that is undefined on the rows (AUC when they hold one class, R² of a constant target) is
``nan`` here; :func:`compute_metrics` leaves it out rather than reporting NaN.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np

Task = Literal["binary", "multiclass", "regression"]
TASKS: tuple[Task, ...] = ("binary", "multiclass", "regression")
MetricFn = Callable[["np.ndarray", "np.ndarray", "np.ndarray | None"], float]

_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """A metric: its name, direction and the tasks it applies to."""

    name: str
    higher_is_better: bool
    tasks: tuple[Task, ...]
    description: str

    def better_or_equal(self, value: float, bound: float) -> bool:
        """True when ``value`` is at least as good as ``bound`` in this metric's direction."""
        return value >= bound if self.higher_is_better else value <= bound

    def shift_worse(self, value: float, amount: float) -> float:
        """``value`` moved by ``amount`` in the worse direction (how a tolerance widens a bound)."""
        return value - amount if self.higher_is_better else value + amount

    def improvement(self, candidate: float, reference: float) -> float:
        """Positive when ``candidate`` is better than ``reference``, in metric units."""
        return candidate - reference if self.higher_is_better else reference - candidate


METRICS: dict[str, Metric] = {
    m.name: m
    for m in (
        Metric("roc_auc", True, ("binary",), "area under the ROC curve"),
        Metric("roc_auc_ovr", True, ("multiclass",), "area under the ROC curve, one-vs-rest, macro average"),
        Metric("pr_auc", True, ("binary",), "area under the precision-recall curve (average precision)"),
        Metric("log_loss", False, ("binary", "multiclass"), "cross-entropy of the predicted probabilities"),
        Metric("brier", False, ("binary",), "mean squared error of the positive-class probability"),
        Metric("accuracy", True, ("binary", "multiclass"), "share of rows whose most likely class is right"),
        Metric("f1", True, ("binary",), "F1 of the positive class at the most likely class"),
        Metric("precision", True, ("binary",), "precision of the positive class at the most likely class"),
        Metric("recall", True, ("binary",), "recall of the positive class at the most likely class"),
        Metric("f1_macro", True, ("multiclass",), "unweighted mean of per-class F1"),
        Metric("rmse", False, ("regression",), "root mean squared error"),
        Metric("mae", False, ("regression",), "mean absolute error"),
        Metric("r2", True, ("regression",), "coefficient of determination"),
        Metric("median_ae", False, ("regression",), "median absolute error"),
    )
}

# Metric name -> True when higher is better, per task (derived from METRICS, never written twice).
METRIC_DIRECTIONS: dict[str, dict[str, bool]] = {
    task: {m.name: m.higher_is_better for m in METRICS.values() if task in m.tasks} for task in TASKS
}
DEFAULT_PRIMARY: dict[Task, str] = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def metrics_for(task: Task) -> list[str]:
    """Names of the metrics that apply to ``task``, in :data:`METRICS` order."""
    return [n for n, m in METRICS.items() if task in m.tasks]


def is_better(task: str, metric: str, candidate: float, incumbent: float) -> bool:
    """True when ``candidate`` is strictly better than ``incumbent`` for ``metric``."""
    higher = METRIC_DIRECTIONS[task][metric]
    return candidate > incumbent if higher else candidate < incumbent


# -- weighted implementations -------------------------------------------------------------------
def _w(y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    import numpy as np

    return np.ones(len(y), dtype=np.float64) if weights is None else weights.astype(np.float64, copy=False)


def auc_grouped(inverse: np.ndarray, groups: int, positive: np.ndarray, weights: np.ndarray) -> float:
    """Weighted ROC AUC from score groups (ties share a group): the Mann-Whitney statistic."""
    import numpy as np

    pos = np.bincount(inverse, weights=weights * positive, minlength=groups)
    neg = np.bincount(inverse, weights=weights * (1.0 - positive), minlength=groups)
    total_pos, total_neg = pos.sum(), neg.sum()
    if total_pos <= 0 or total_neg <= 0:
        return float("nan")
    below = np.cumsum(neg) - neg
    return float(np.sum(pos * (below + 0.5 * neg)) / (total_pos * total_neg))


def _binary_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    import numpy as np

    values, inverse = np.unique(score, return_inverse=True)
    return auc_grouped(inverse.reshape(-1), len(values), positive, weights)


def roc_auc(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Binary ROC AUC, or the macro one-vs-rest average; ``nan`` when a class has no rows (as in
    scikit-learn, which refuses to average over fewer classes than the model has)."""
    import numpy as np

    w = _w(y, weights)
    if proba.shape[1] == 2:
        return _binary_auc((y == 1).astype(np.float64), proba[:, 1], w)
    scores = [_binary_auc((y == k).astype(np.float64), proba[:, k], w) for k in range(proba.shape[1])]
    return float("nan") if any(np.isnan(s) for s in scores) else float(np.mean(scores))


def pr_auc(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Step-wise area under the precision-recall curve, as scikit-learn defines it."""
    import numpy as np

    w = _w(y, weights)
    score = proba[:, 1]
    positive = (y == 1).astype(np.float64)
    order = np.argsort(-score, kind="mergesort")
    score, positive, w = score[order], positive[order], w[order]
    tp = np.cumsum(w * positive)
    fp = np.cumsum(w * (1.0 - positive))
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]  # end of each group of tied scores
    tp, fp = tp[last], fp[last]
    total = tp[-1] if len(tp) else 0.0
    if total <= 0:
        return float("nan")
    precision = tp / np.maximum(tp + fp, _EPS)
    recall = tp / total
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    p = np.clip(proba.astype(np.float64), _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)  # float32 models sum to 1 only within ~1e-7
    picked = p[np.arange(len(y)), y]
    return float(-np.sum(w * np.log(picked)) / w.sum())


def brier(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    return float(np.sum(w * (proba[:, 1].astype(np.float64) - (y == 1)) ** 2) / w.sum())


# -- at the decision (the class each row was assigned) ------------------------------------------
def _accuracy(y: np.ndarray, decided: np.ndarray, w: np.ndarray) -> float:
    import numpy as np

    return float(np.sum(w * (decided == y)) / w.sum())


def _confusion(y: np.ndarray, decided: np.ndarray, w: np.ndarray, k: int) -> tuple[float, float, float]:
    import numpy as np

    tp = float(np.sum(w * ((decided == k) & (y == k))))
    fp = float(np.sum(w * ((decided == k) & (y != k))))
    fn = float(np.sum(w * ((decided != k) & (y == k))))
    return tp, fp, fn


def _f1_of(tp: float, fp: float, fn: float) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _f1(y: np.ndarray, decided: np.ndarray, w: np.ndarray) -> float:
    return _f1_of(*_confusion(y, decided, w, 1))


def _precision(y: np.ndarray, decided: np.ndarray, w: np.ndarray) -> float:
    tp, fp, _ = _confusion(y, decided, w, 1)
    return 0.0 if tp + fp == 0 else tp / (tp + fp)


def _recall(y: np.ndarray, decided: np.ndarray, w: np.ndarray) -> float:
    tp, _, fn = _confusion(y, decided, w, 1)
    return 0.0 if tp + fn == 0 else tp / (tp + fn)


def _f1_macro(y: np.ndarray, decided: np.ndarray, w: np.ndarray) -> float:
    import numpy as np

    # like scikit-learn: average over the classes that occur in the truth or the decisions (a class
    # that occurs in neither has no F1; counting it as 0 would punish the model for the split's makeup)
    present = np.union1d(y[w > 0], decided[w > 0])
    return float(np.mean([_f1_of(*_confusion(y, decided, w, int(k))) for k in present if k >= 0]))


_AT_DECISION: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "precision": _precision,
    "recall": _recall,
    "f1_macro": _f1_macro,
}


def _argmax(proba: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray(np.argmax(proba, axis=1))


def accuracy(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _accuracy(y, _argmax(proba), _w(y, weights))


def f1(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _f1(y, _argmax(proba), _w(y, weights))


def precision(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _precision(y, _argmax(proba), _w(y, weights))


def recall(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _recall(y, _argmax(proba), _w(y, weights))


def f1_macro(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _f1_macro(y, _argmax(proba), _w(y, weights))


# -- regression ------------------------------------------------------------------------------------
def rmse(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    return float(np.sqrt(np.sum(w * (y - pred) ** 2) / w.sum()))


def mae(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    return float(np.sum(w * np.abs(y - pred)) / w.sum())


def r2(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    mean = np.sum(w * y) / w.sum()
    total = np.sum(w * (y - mean) ** 2)
    if total == 0:
        return float("nan")
    return float(1.0 - np.sum(w * (y - pred) ** 2) / total)


def median_ae(y: np.ndarray, pred: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Median absolute error; with weights, the median of the rows repeated by their counts."""
    import numpy as np

    errors = np.abs(np.asarray(y, dtype=np.float64) - pred)
    if weights is None:
        return float(np.median(errors))
    order = np.argsort(errors, kind="mergesort")
    cumulative = np.cumsum(_w(y, weights)[order])
    total = cumulative[-1] if len(cumulative) else 0.0
    if total <= 0:
        return float("nan")
    middle = (total - 1) / 2  # positions of the middle row(s) in the repeated rows
    low, high = np.searchsorted(cumulative, [math.floor(middle), math.ceil(middle)], side="right")
    return float((errors[order][low] + errors[order][high]) / 2)


FUNCTIONS: dict[str, MetricFn] = {
    "roc_auc": roc_auc,
    "roc_auc_ovr": roc_auc,
    "pr_auc": pr_auc,
    "log_loss": log_loss,
    "brier": brier,
    "accuracy": accuracy,
    "f1": f1,
    "precision": precision,
    "recall": recall,
    "f1_macro": f1_macro,
    "rmse": rmse,
    "mae": mae,
    "r2": r2,
    "median_ae": median_ae,
}


def compute(
    name: str,
    y: np.ndarray,
    prediction: np.ndarray | None,
    weights: np.ndarray | None = None,
    *,
    decided: np.ndarray | None = None,
) -> float:
    """One metric; ``nan`` when it is undefined on these rows (e.g. AUC with a single class).

    :param decided: the class index each row was assigned, for the metrics at the decision (default:
        the most probable class of ``prediction``, which may then be None for those metrics).
    """
    if decided is not None and name in _AT_DECISION:
        return _AT_DECISION[name](y, decided, _w(y, weights))
    if prediction is None:
        raise ValueError(f"The metric {name!r} needs the predicted probabilities or values.")
    return FUNCTIONS[name](y, prediction, weights)


def compute_all(
    names: Sequence[str],
    y: np.ndarray,
    prediction: np.ndarray | None,
    weights: np.ndarray | None = None,
    *,
    decided: np.ndarray | None = None,
) -> dict[str, float]:
    return {name: compute(name, y, prediction, weights, decided=decided) for name in names}


# -- a training split's metrics ----------------------------------------------------------------------
@dataclass(frozen=True)
class Predictions:
    """What a model said about some rows: class probabilities and labels, or regression values."""

    values: np.ndarray | None
    probabilities: np.ndarray | None
    labels: np.ndarray | None


def class_indices(values: np.ndarray, classes: Sequence[Any], *, unknown: int | None = None) -> np.ndarray:
    """Position of each value in ``classes`` (compared by value: ``1`` and ``1.0`` are one class).

    :param unknown: the index of a value that is no class; None raises ``ValueError`` for one.
    """
    import numpy as np

    lookup = {c: i for i, c in enumerate(classes)}
    distinct, inverse = np.unique(np.asarray(values), return_inverse=True)
    positions = []
    for value in distinct.tolist():
        if value not in lookup and unknown is None:
            raise ValueError(f"The label {value!r} is not one of the model's classes {list(classes)}.")
        positions.append(lookup.get(value, unknown))
    return np.asarray(positions, dtype=np.int64)[inverse.reshape(-1)]


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))}


def compute_metrics(
    task: Task | str, y_true: np.ndarray, predictions: Predictions, classes: tuple[Any, ...]
) -> dict[str, float]:
    """Metrics of ``predictions`` against ``y_true`` (see the module docstring for the names).

    Classifiers are scored at their own decision (``predictions.labels``, the ONNX ``label`` output).
    """
    import numpy as np

    if task == "regression":
        truth = np.asarray(y_true, dtype=np.float64)
        values = np.asarray(predictions.values, dtype=np.float64)
        return _finite(compute_all(metrics_for("regression"), truth, values))
    probabilities = np.asarray(predictions.probabilities, dtype=np.float64)
    y = class_indices(np.asarray(y_true), classes)
    decided = class_indices(np.asarray(predictions.labels), classes, unknown=-1)
    names = metrics_for("binary" if task == "binary" else "multiclass")
    return _finite(compute_all(names, y, probabilities, decided=decided))
