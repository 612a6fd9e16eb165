"""The monitoring rules (core.monitoring): each check on values that pass and on values that must alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.monitoring import checks as m
from tests.support.data import flights

NOW = datetime(2013, 6, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("36h", timedelta(hours=36)), ("7d", timedelta(days=7)), (90, timedelta(seconds=90)),
     ("1.5w", timedelta(weeks=1.5)), (None, None), ("", None)],
    ids=["hours", "days", "seconds", "weeks", "none", "empty"],
)  # fmt: skip
def test_parse_duration(raw: object, expected: timedelta | None) -> None:
    assert m.parse_duration(raw, "max_model_age") == expected


@pytest.mark.parametrize("raw", ["soon", "-3d", 0, True, "3y"], ids=["word", "negative", "zero", "bool", "unit"])
def test_parse_duration_names_the_parameter(raw: object) -> None:
    with pytest.raises(SpecError, match="'max_model_age'"):
        m.parse_duration(raw, "max_model_age")


def test_parse_timestamp_reads_iso_epoch_and_naive_as_utc() -> None:
    assert m.parse_timestamp("2013-05-01T00:00:00Z", "t") == datetime(2013, 5, 1, tzinfo=UTC)
    assert m.parse_timestamp("2013-05-01 00:00:00", "t") == datetime(2013, 5, 1, tzinfo=UTC)
    assert m.parse_timestamp(0, "t") == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(SpecError, match="'data_timestamp'"):
        m.parse_timestamp("last tuesday", "data_timestamp")


def test_staleness_alerts_on_an_old_model_and_old_data_separately() -> None:
    fresh = m.check_staleness(model_created_at=NOW - timedelta(days=2), now=NOW, max_model_age=timedelta(days=7))
    assert fresh.severity == "ok" and fresh.details["model_age_hours"] == 48.0
    old = m.check_staleness(model_created_at=NOW - timedelta(days=8), now=NOW, max_model_age=timedelta(days=7))
    assert old.is_alert and "192 h old (limit 168 h)" in old.message
    old_data = m.check_staleness(
        model_created_at=NOW - timedelta(days=1),
        now=NOW,
        max_model_age=timedelta(days=7),
        data_at=NOW - timedelta(days=40),
        max_data_age=timedelta(days=31),
    )
    assert old_data.is_alert and "training data is 960 h old" in old_data.message and "model is" not in old_data.message


def test_staleness_needs_a_limit_and_a_data_timestamp_for_a_data_limit() -> None:
    with pytest.raises(SpecError, match="needs a limit"):
        m.check_staleness(model_created_at=NOW, now=NOW, max_model_age=None)
    with pytest.raises(SpecError, match="data_timestamp"):
        m.check_staleness(model_created_at=NOW, now=NOW, max_model_age=None, max_data_age=timedelta(days=1))


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


def test_dependencies_name_what_changed() -> None:
    recorded = {"onnxruntime": "1.18.0", "scikit-learn": "1.5.2", "airflow_mlops": "0.1.0"}
    same = m.check_dependencies(recorded, dict(recorded))
    assert same.severity == "ok"
    changed = m.check_dependencies(recorded, {**recorded, "onnxruntime": "1.19.1", "scikit-learn": None})
    assert changed.severity == "warn"
    assert changed.details["changed"]["onnxruntime"] == {
        "recorded": "1.18.0",
        "serving": "1.19.1",
        "release_changed": True,
    }
    assert "scikit-learn 1.5.2 -> not installed" in changed.message
    patch = m.check_dependencies(recorded, {**recorded, "onnxruntime": "1.18.1"}, packages=["onnxruntime", "pandas"])
    assert not patch.details["changed"]["onnxruntime"]["release_changed"] and patch.details["not_recorded"] == [
        "pandas"
    ]


def test_installed_versions_reads_this_environment() -> None:
    import onnxruntime

    found = m.installed_versions(["onnxruntime", "no-such-distribution-here"])
    assert found == {"onnxruntime": onnxruntime.__version__, "no-such-distribution-here": None}


def test_schema_change_alerts_only_when_a_feature_breaks() -> None:
    before = {"carrier": "string", "distance": "double", "tailnum": "string"}
    assert m.check_schema_change(before, dict(before), features=["carrier"]).severity == "ok"
    added = m.check_schema_change(before, {**before, "wind": "double"}, features=["carrier", "distance"])
    assert added.severity == "warn" and added.details["added"] == ["wind"]
    gone = {k: v for k, v in before.items() if k != "tailnum"}
    assert m.check_schema_change(before, gone, features=["carrier", "distance"]).severity == "warn"
    retyped = m.check_schema_change(before, {**before, "distance": "string"}, features=["carrier", "distance"])
    assert retyped.is_alert and retyped.details["breaking_features"] == ["distance"]


def test_worst_orders_severities() -> None:
    findings = [m.Finding("a", "ok", ""), m.Finding("b", "alert", ""), m.Finding("c", "warn", "")]
    assert m.worst(findings) == "alert" and m.worst([]) == "ok"


def test_feature_importance_names_the_weak_features() -> None:
    importance = {"distance": 0.5, "carrier": 0.495, "minute": 0.005}
    weak = m.check_feature_importance(importance, min_share=0.01)
    assert weak.severity == "warn" and weak.details["weak"] == {"minute": 0.005} and "minute (0.50%)" in weak.message
    assert m.check_feature_importance(importance, min_share=0.001).severity == "ok"
    with pytest.raises(SpecError, match="no feature importance"):
        m.check_feature_importance({}, min_share=0.01)


def test_staleness_impact_fits_the_decay_of_quality_with_age() -> None:
    # roc_auc losing 0.02 per 30 days, with noise
    points = [
        (age, 0.72 - 0.02 * age / 30 + noise) for age, noise in [(5, 0.002), (35, -0.001), (65, 0.001), (95, 0.0)]
    ]
    decay = m.staleness_impact(points, metric="roc_auc", higher_is_better=True, max_loss_per_30_days=0.01)
    assert decay.is_alert and decay.details["loss_per_30_days"] == pytest.approx(0.02, abs=0.002)
    assert (
        m.staleness_impact(points, metric="roc_auc", higher_is_better=True, max_loss_per_30_days=0.05).severity == "ok"
    )
    # an error metric that grows is a loss too
    errors = [(a, 10 + a / 10) for a in (0, 30, 60)]
    assert m.staleness_impact(errors, metric="rmse", higher_is_better=False, max_loss_per_30_days=1.0).is_alert
    few = m.staleness_impact(points[:2], metric="roc_auc", higher_is_better=True, max_loss_per_30_days=0.01)
    assert few.severity == "ok" and "too few" in few.message


def test_personal_data_is_found_in_real_text_columns_only_when_present() -> None:
    frame = flights(months=[1], sample=2000)
    text = {c: frame[c].tolist() for c in ("carrier", "tailnum", "origin", "dest")}
    assert m.check_personal_data(text).severity == "ok"  # codes and tail numbers are not personal data
    rng = np.random.default_rng(0)
    contacts = {
        "contact": [f"user{i}@example.org" for i in range(100)],
        "card": ["4111 1111 1111 1111"] * 50 + ["1234 5678 9012 3456"] * 50,  # Luhn-valid, then not
        "passenger_name": ["x"] * 100,
        "misc": [f"{rng.integers(100, 999)}-{rng.integers(10, 99)}-{rng.integers(1000, 9999)}" for _ in range(100)],
    }
    found = m.check_personal_data({**text, **contacts})
    assert found.is_alert
    suspect = found.details["suspect"]
    assert suspect["contact"]["patterns"] == {"email": 1.0} and suspect["card"]["patterns"] == {"payment_card": 0.5}
    assert suspect["passenger_name"]["name_suggests_personal_data"] and suspect["misc"]["patterns"] == {"us_ssn": 1.0}
    assert set(suspect) == {"contact", "card", "passenger_name", "misc"}
    reviewed = m.check_personal_data({**text, **contacts}, allow=["contact", "card", "passenger_name", "misc"])
    assert reviewed.severity == "ok"
