"""What is gate-specific about metrics: the metrics the gate compares, and a paired bootstrap over them.

Every metric is computed by :mod:`airflow_mlops.core.metrics` (names, directions and the weighted
implementations live there, shared with training and drift), so a policy reads like a training run's
metrics. Weights are row multiplicities: ``None`` means one each, and a bootstrap resample is a vector
of counts. One implementation serves the point estimate and every resample, so the two can never
disagree.

The bootstrap is paired: one resample of row counts is applied to the candidate and the champion at
once, so the spread reflects how the *difference* between the two varies over plausible evaluation
sets, not the noise of each model on its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops.core import metrics as core_metrics
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import DEFAULT_PRIMARY, Metric, Task, compute, compute_all

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DEFAULT_PRIMARY",
    "METRICS",
    "Metric",
    "PairedBootstrap",
    "Task",
    "compute",
    "compute_all",
    "metric",
    "metrics_for",
    "paired_bootstrap",
]

# The metrics a gate policy may name and a decision reports (median_ae stays a training metric).
GATE_METRICS = (
    "roc_auc", "roc_auc_ovr", "pr_auc", "log_loss", "brier", "accuracy", "f1", "precision", "recall", "f1_macro",
    "rmse", "mae", "r2",
)  # fmt: skip
METRICS: dict[str, Metric] = {name: core_metrics.METRICS[name] for name in GATE_METRICS}


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


def _prepared(name: str, y: np.ndarray, prediction: np.ndarray) -> Callable[[np.ndarray], float]:
    """A function of the weights alone; binary AUC sorts the scores once instead of per resample, and
    the metrics at the decision take the most probable class once."""
    import numpy as np

    if name == "roc_auc" and prediction.shape[1] == 2:
        values, inverse = np.unique(prediction[:, 1], return_inverse=True)
        positive = (y == 1).astype(np.float64)
        flat, groups = inverse.reshape(-1), len(values)
        return lambda w: core_metrics.auc_grouped(flat, groups, positive, w)
    decided = np.argmax(prediction, axis=1) if prediction.ndim == 2 else None
    return lambda w: compute(name, y, prediction, w, decided=decided)


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
