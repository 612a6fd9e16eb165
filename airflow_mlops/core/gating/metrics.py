"""Metrics the gate computes, all with row weights, and a paired bootstrap over them.

Names follow the training stem's metrics (``roc_auc``, ``pr_auc``, ``log_loss`` ...), so a policy reads
like a training run's metrics. Every metric takes ``(y, prediction, weights)``: for classifiers ``y``
holds class indices (positions in the spec's ``classes``) and ``prediction`` the probability matrix
``[n, n_classes]``; for regressors both are float vectors. Weights are row multiplicities: ``None``
means one each, and a bootstrap resample is a vector of counts. One implementation serves the point
estimate and every resample, so the two can never disagree; a test holds each metric to
scikit-learn's on real data.

The bootstrap is paired: one resample of row counts is applied to the candidate and the champion at
once, so the spread reflects how the *difference* between the two varies over plausible evaluation
sets, not the noise of each model on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from airflow_mlops.core.errors import SpecError

if TYPE_CHECKING:
    import numpy as np

Task = Literal["binary", "multiclass", "regression"]
MetricFn = Callable[["np.ndarray", "np.ndarray", "np.ndarray | None"], float]

_EPS = 1e-15


@dataclass(frozen=True)
class Metric:
    """A metric the gate knows: its name, direction and the tasks it applies to."""

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
    )
}

DEFAULT_PRIMARY: dict[Task, str] = {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}


def metric(name: str, task: Task | None = None, *, where: str = "metric") -> Metric:
    """Look a metric up by name, checking that it applies to ``task``.

    :raises SpecError: unknown name, or a metric that does not apply to the task.
    """
    found = METRICS.get(str(name))
    if found is None:
        raise SpecError(f"The {where} {name!r} is not a metric the gate knows. Expected one of {sorted(METRICS)}.")
    if task is not None and task not in found.tasks:
        valid = sorted(n for n, m in METRICS.items() if task in m.tasks)
        raise SpecError(f"The {where} {name!r} does not apply to a {task} model. Expected one of {valid}.")
    return found


def metrics_for(task: Task) -> list[str]:
    return [n for n, m in METRICS.items() if task in m.tasks]


# -- weighted implementations -------------------------------------------------------------------
def _w(y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    import numpy as np

    return np.ones(len(y), dtype=np.float64) if weights is None else weights.astype(np.float64, copy=False)


def _auc_grouped(inverse: np.ndarray, groups: int, positive: np.ndarray, weights: np.ndarray) -> float:
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
    return _auc_grouped(inverse.reshape(-1), len(values), positive, weights)


def roc_auc(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    if proba.shape[1] == 2:
        return _binary_auc((y == 1).astype(np.float64), proba[:, 1], w)
    scores = [_binary_auc((y == k).astype(np.float64), proba[:, k], w) for k in range(proba.shape[1])]
    present = [s for s in scores if not np.isnan(s)]
    return float(np.mean(present)) if present else float("nan")


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
    p = p / p.sum(axis=1, keepdims=True)
    picked = p[np.arange(len(y)), y]
    return float(-np.sum(w * np.log(picked)) / w.sum())


def brier(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    return float(np.sum(w * (proba[:, 1].astype(np.float64) - (y == 1)) ** 2) / w.sum())


def accuracy(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    return float(np.sum(w * (np.argmax(proba, axis=1) == y)) / w.sum())


def _confusion(y: np.ndarray, proba: np.ndarray, w: np.ndarray, k: int) -> tuple[float, float, float]:
    import numpy as np

    predicted = np.argmax(proba, axis=1)
    tp = float(np.sum(w * ((predicted == k) & (y == k))))
    fp = float(np.sum(w * ((predicted == k) & (y != k))))
    fn = float(np.sum(w * ((predicted != k) & (y == k))))
    return tp, fp, fn


def _f1(tp: float, fp: float, fn: float) -> float:
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def f1(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    return _f1(*_confusion(y, proba, _w(y, weights), 1))


def precision(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    tp, fp, _ = _confusion(y, proba, _w(y, weights), 1)
    return 0.0 if tp + fp == 0 else tp / (tp + fp)


def recall(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    tp, _, fn = _confusion(y, proba, _w(y, weights), 1)
    return 0.0 if tp + fn == 0 else tp / (tp + fn)


def f1_macro(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    import numpy as np

    w = _w(y, weights)
    # like scikit-learn: average over the classes that occur in the truth or the predictions
    present = np.union1d(y[w > 0], np.argmax(proba, axis=1)[w > 0])
    return float(np.mean([_f1(*_confusion(y, proba, w, int(k))) for k in present]))


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
}


def compute(name: str, y: np.ndarray, prediction: np.ndarray, weights: np.ndarray | None = None) -> float:
    """One metric; ``nan`` when it is undefined on these rows (e.g. AUC with a single class)."""
    return FUNCTIONS[name](y, prediction, weights)


def compute_all(
    names: list[str], y: np.ndarray, prediction: np.ndarray, weights: np.ndarray | None = None
) -> dict[str, float]:
    return {name: compute(name, y, prediction, weights) for name in names}


def _prepared(name: str, y: np.ndarray, prediction: np.ndarray) -> Callable[[np.ndarray], float]:
    """A function of the weights alone; binary AUC sorts the scores once instead of per resample."""
    import numpy as np

    if name == "roc_auc" and prediction.shape[1] == 2:
        values, inverse = np.unique(prediction[:, 1], return_inverse=True)
        positive = (y == 1).astype(np.float64)
        flat, groups = inverse.reshape(-1), len(values)
        return lambda w: _auc_grouped(flat, groups, positive, w)
    function = FUNCTIONS[name]
    return lambda w: function(y, prediction, w)


@dataclass(frozen=True)
class PairedBootstrap:
    """Distribution of ``improvement(candidate, champion)`` over paired resamples of the rows.

    :ivar lower: the ``1 - confidence`` quantile of the improvement (one-sided lower bound).
    :ivar mean: mean improvement over the resamples.
    :ivar share_worse: share of resamples where the candidate was worse than the champion by more
        than the tolerance.
    """

    metric: str
    samples: int
    confidence: float
    seed: int
    lower: float
    mean: float
    share_worse: float
    tolerance: float

    @property
    def passed(self) -> bool:
        return self.lower >= -self.tolerance

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return {
            "metric": self.metric,
            "samples": self.samples,
            "confidence": self.confidence,
            "seed": self.seed,
            "lower": self.lower,
            "mean": self.mean,
            "share_worse": self.share_worse,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def paired_bootstrap(
    name: str,
    y: np.ndarray,
    candidate: np.ndarray,
    champion: np.ndarray,
    *,
    samples: int,
    confidence: float,
    seed: int,
    tolerance: float,
) -> PairedBootstrap:
    """Resample rows with replacement ``samples`` times; score both models on each resample.

    Resamples where the metric is undefined (a resample with one class, for AUC) are dropped; if
    fewer than half remain the bound is ``nan`` and the check fails for lack of evidence.
    """
    import numpy as np

    spec = METRICS[name]
    rng = np.random.default_rng(seed)
    n = len(y)
    score_candidate = _prepared(name, y, candidate)
    score_champion = _prepared(name, y, champion)
    diffs = np.empty(samples, dtype=np.float64)
    for i in range(samples):
        weights = np.bincount(rng.integers(0, n, n), minlength=n).astype(np.float64)
        diffs[i] = spec.improvement(score_candidate(weights), score_champion(weights))
    valid = diffs[~np.isnan(diffs)]
    if len(valid) < max(1, samples // 2):
        return PairedBootstrap(name, samples, confidence, seed, float("nan"), float("nan"), 1.0, tolerance)
    return PairedBootstrap(
        metric=name,
        samples=samples,
        confidence=confidence,
        seed=seed,
        lower=float(np.quantile(valid, 1.0 - confidence)),
        mean=float(valid.mean()),
        share_worse=float(np.mean(valid < -tolerance)),
        tolerance=tolerance,
    )
