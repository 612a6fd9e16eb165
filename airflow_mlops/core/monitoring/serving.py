"""Checks on a running pipeline: NaN or infinity in features, predictions or a training run's losses
(:func:`check_finite`, :func:`check_metrics_finite`), and a run's throughput or duration against the
trailing median of earlier runs (:func:`check_performance`). Pure functions returning a
:class:`~airflow_mlops.core.monitoring.findings.Finding`."""

from __future__ import annotations

import math
import statistics
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.monitoring.findings import Finding

if TYPE_CHECKING:
    import numpy as np


# -- numerical stability ----------------------------------------------------------------------------
def count_non_finite(values: np.ndarray) -> tuple[int, int]:
    """``(nan, inf)`` counts of a numeric array; 0, 0 for non-numeric ones (strings cannot be NaN here)."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind not in "fc":
        return 0, 0
    return int(np.isnan(array).sum()), int(np.isinf(array).sum())


def check_finite(
    columns: Mapping[str, np.ndarray], *, what: str, allow_nan: Collection[str] = (), rows: int | None = None
) -> Finding:
    """Alert when a column holds infinity, or NaN where NaN is not allowed.

    Missing values in a feature are ordinary tabular data (the model imputes or routes them), so the
    feature columns the model accepts missing are listed in ``allow_nan``; infinity is never allowed:
    no scaler or tree split was fitted on it. Predictions allow neither.
    """
    bad: dict[str, dict[str, int]] = {}
    for name, values in columns.items():
        nan, inf = count_non_finite(values)
        if name in allow_nan:
            nan = 0
        if nan or inf:
            bad[name] = {"nan": nan, "inf": inf}
    details: dict[str, Any] = {"what": what, "columns_checked": len(columns), "non_finite": bad}
    if rows is not None:
        details["rows"] = rows
    if bad:
        listed = ", ".join(f"{name} ({c['nan']} NaN, {c['inf']} inf)" for name, c in sorted(bad.items()))
        return Finding("numerical_stability", "alert", f"Non-finite values in the {what}: {listed}.", details)
    return Finding("numerical_stability", "ok", f"All {len(columns)} column(s) of the {what} are finite.", details)


def check_metrics_finite(metrics: Mapping[str, float], required: Sequence[str], *, what: str) -> Finding:
    """Alert when a logged metric is NaN/inf, or a required one (a loss) is missing.

    Training leaves a metric out rather than logging NaN, so a missing loss means it was not finite.
    """
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
    missing = sorted(k for k in required if k not in metrics)
    details = {"what": what, "non_finite": bad, "missing": missing, "checked": len(metrics)}
    if bad or missing:
        parts = []
        if bad:
            parts.append(f"non-finite metric(s) {bad}")
        if missing:
            parts.append(f"missing loss metric(s) {missing} (left out when NaN)")
        return Finding("numerical_stability", "alert", f"The {what} has " + " and ".join(parts) + ".", details)
    return Finding("numerical_stability", "ok", f"All {len(metrics)} metric(s) of the {what} are finite.", details)


def loss_metrics(task: str) -> list[str]:
    """The loss metrics a training run of ``task`` logs for each split."""
    loss = "rmse" if task == "regression" else "log_loss"
    return [f"{split}_{loss}" for split in ("train", "validation", "test")]


# -- computational performance ----------------------------------------------------------------------
def check_performance(
    history: Sequence[float],
    current: float,
    *,
    metric: str,
    higher_is_better: bool,
    max_drop: float,
    window: int = 10,
    min_history: int = 3,
) -> Finding:
    """Compare ``current`` with the median of the last ``window`` values of ``history``.

    The drop is relative: ``(median - current) / median`` when higher is better (throughput),
    ``(current - median) / median`` when lower is better (seconds). Above ``max_drop`` is an alert.
    With fewer than ``min_history`` earlier values there is no baseline yet: ``ok``, said so.
    """
    if window < 1 or min_history < 1:
        raise SpecError(f"'window' and 'min_history' must be at least 1. Got {window} and {min_history}.")
    if not math.isfinite(current):
        return Finding("performance", "alert", f"{metric} is not a finite number ({current}).", {"metric": metric})
    earlier = [float(v) for v in history if math.isfinite(float(v))][-window:]
    details: dict[str, Any] = {
        "metric": metric,
        "current": current,
        "history_points": len(earlier),
        "higher_is_better": higher_is_better,
        "max_drop": max_drop,
    }
    if len(earlier) < min_history:
        message = f"{metric} = {current:.4g}; {len(earlier)} earlier run(s), {min_history} needed for a baseline."
        return Finding("performance", "ok", message, details)
    median = statistics.median(earlier)
    if median == 0:
        drop = 0.0 if current == 0 else (math.inf if not higher_is_better else 0.0)
    else:
        drop = (median - current) / abs(median) if higher_is_better else (current - median) / abs(median)
    details.update(trailing_median=median, drop=round(drop, 4))
    direction = "below" if higher_is_better else "above"
    text = f"{metric} = {current:.4g}, {abs(drop):.1%} {direction if drop > 0 else 'better than'} the trailing median"
    text += f" {median:.4g} of {len(earlier)} run(s)"
    if drop > max_drop:
        return Finding("performance", "alert", f"Performance drop: {text} (limit {max_drop:.0%}).", details)
    return Finding("performance", "ok", text + ".", details)
