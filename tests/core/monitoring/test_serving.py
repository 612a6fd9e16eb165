"""The checks on a running pipeline (core.monitoring.serving): values that pass and values that must alert."""

from __future__ import annotations

import numpy as np

from airflow_mlops.core import monitoring as m
from tests.support.data import flights


def test_finite_check_on_real_flight_features() -> None:
    frame = flights(months=[1], sample=3000)
    columns = {c: frame[c].to_numpy() for c in ("hour", "distance", "dep_delay")}
    assert int(np.isnan(columns["dep_delay"]).sum()) > 0  # cancelled flights: missing, not broken
    strict = m.check_finite(columns, what="features")
    assert strict.is_alert and "dep_delay" in strict.message and "hour" not in strict.details["non_finite"]
    assert m.check_finite(columns, what="features", allow_nan={"dep_delay"}).severity == "ok"
    columns["distance"] = columns["distance"].astype("float64")
    columns["distance"][5] = np.inf  # infinity is never a missing value
    broken = m.check_finite(columns, what="features", allow_nan={"dep_delay", "distance"})
    assert broken.is_alert and broken.details["non_finite"] == {"distance": {"nan": 0, "inf": 1}}


def test_finite_check_ignores_string_columns() -> None:
    assert m.check_finite({"carrier": np.array(["UA", "AA"], dtype=object)}, what="features").severity == "ok"


def test_metrics_check_alerts_on_nan_and_on_a_missing_loss() -> None:
    losses = m.loss_metrics("binary")
    good = dict.fromkeys(losses, 0.6) | {"test_roc_auc": 0.7}
    assert m.check_metrics_finite(good, losses, what="run").severity == "ok"
    assert m.check_metrics_finite(good | {"test_brier": float("nan")}, losses, what="run").is_alert
    missing = m.check_metrics_finite({k: v for k, v in good.items() if k != "validation_log_loss"}, losses, what="run")
    assert missing.is_alert and "validation_log_loss" in missing.message
    assert m.loss_metrics("regression") == ["train_rmse", "validation_rmse", "test_rmse"]


def test_performance_against_the_trailing_median() -> None:
    history = [1000.0, 1100.0, 900.0, 1050.0, 5.0]  # one slow outlier does not move the median much
    ok = m.check_performance(history, 950.0, metric="throughput", higher_is_better=True, max_drop=0.5)
    assert ok.severity == "ok" and ok.details["trailing_median"] == 1000.0
    drop = m.check_performance(history, 400.0, metric="throughput", higher_is_better=True, max_drop=0.5)
    assert drop.is_alert and drop.details["drop"] == 0.6
    slower = m.check_performance(
        [10.0, 12.0, 11.0], 30.0, metric="training_seconds", higher_is_better=False, max_drop=1.0
    )
    assert slower.is_alert and "above" in slower.message
    window = m.check_performance(
        [1.0] * 20 + [100.0] * 3, 100.0, metric="x", higher_is_better=True, max_drop=0.1, window=3
    )
    assert window.severity == "ok" and window.details["history_points"] == 3


def test_performance_without_enough_history_is_ok_and_says_so() -> None:
    first = m.check_performance([], 10.0, metric="throughput", higher_is_better=True, max_drop=0.1)
    assert first.severity == "ok" and "needed for a baseline" in first.message
    assert m.check_performance([1.0], float("nan"), metric="x", higher_is_better=True, max_drop=0.1).is_alert
