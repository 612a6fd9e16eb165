"""The checks on the champion model (core.monitoring.model): values that pass and values that must alert."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_mlops.core import monitoring as m
from airflow_mlops.core.errors import SpecError

NOW = datetime(2013, 6, 1, tzinfo=UTC)


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


def test_feature_importance_names_the_weak_features() -> None:
    importance = {"distance": 0.5, "carrier": 0.495, "minute": 0.005}
    weak = m.check_feature_importance(importance, min_share=0.01)
    assert weak.severity == "warn" and weak.details["weak"] == {"minute": 0.005} and "minute (0.50%)" in weak.message
    assert m.check_feature_importance(importance, min_share=0.001).severity == "ok"
    with pytest.raises(SpecError, match="no feature importance"):
        m.check_feature_importance({}, min_share=0.01)
