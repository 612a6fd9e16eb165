"""Drift quality: prediction and target drift, quality on labelled rows against a baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.drift import DriftSpec, compute_drift
from tests.support import drift as flights_drift


# -- predictions, target, quality -----------------------------------------------------------------
def test_prediction_drift_target_drift_and_quality_on_a_labelled_batch(
    scored: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, labelled = scored
    spec = DriftSpec.from_mapping({}, flights_drift.training_spec())
    result = compute_drift(reference, labelled, spec)
    assert [c.column for c in result.predictions] == ["prediction", "probability_1"]
    assert [c.kind for c in result.predictions] == ["categorical", "numeric"]
    assert result.target is not None and result.target.column == "arr_delayed_15"
    quality = result.quality
    assert quality is not None and quality.metric == "roc_auc" and quality.baseline_source == "reference"
    assert quality.labelled_rows == int(labelled["arr_delayed_15"].notna().sum())
    assert quality.current is not None and quality.baseline is not None
    assert quality.drop == pytest.approx(quality.baseline - quality.current, abs=1e-6)
    # December's delay surge: many more late arrivals than in January-March.
    assert quality.current_metrics["positive_rate"] > quality.reference_metrics["positive_rate"] + 0.05  # type: ignore[operator]


def test_serving_log_without_labels_has_no_quality(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, labelled = scored
    result = compute_drift(
        reference, labelled.drop(columns=["arr_delayed_15"]), DriftSpec.from_mapping({}, flights_drift.training_spec())
    )
    assert result.target is None and result.quality is None and result.labelled_rows == 0
    assert result.schema_skew.any is False


def test_quality_baseline_from_the_spec(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, labelled = scored
    spec = DriftSpec.from_mapping({"quality_baseline": "0.9", "quality_metric": "f1"}, flights_drift.training_spec())
    quality = compute_drift(reference, labelled, spec).quality
    assert quality is not None and quality.baseline == 0.9 and quality.baseline_source == "spec"
    assert quality.metric == "f1" and quality.drop == pytest.approx(0.9 - quality.current, abs=1e-6)  # type: ignore[operator]


def test_regression_quality_drop_is_positive_when_error_grows() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(100, 20, 3000)
    reference = pd.DataFrame({"x": y + rng.normal(0, 5, 3000), "cnt": y, "prediction": y + rng.normal(0, 5, 3000)})
    current = pd.DataFrame({"x": y + rng.normal(0, 5, 3000), "cnt": y, "prediction": y + rng.normal(0, 15, 3000)})
    spec = DriftSpec.from_mapping({"task": "regression", "target": "cnt", "numeric_features": ["x"]})
    quality = compute_drift(reference, current, spec).quality
    assert quality is not None and quality.metric == "rmse" and not quality.higher_is_better
    assert quality.current > quality.baseline and quality.drop > 5  # type: ignore[operator]


def test_multiclass_quality() -> None:
    labels = np.array(["a", "b", "c"] * 400)
    reference = pd.DataFrame({"x": np.arange(1200) % 7, "y": labels, "prediction": labels})
    wrong = np.roll(labels, 1)
    current = pd.DataFrame(
        {"x": np.arange(1200) % 7, "y": labels, "prediction": np.where(np.arange(1200) % 2, labels, wrong)}
    )
    spec = DriftSpec.from_mapping(
        {"task": "multiclass", "target": "y", "numeric_features": ["x"], "classes": ["a", "b", "c"]}
    )
    quality = compute_drift(reference, current, spec).quality
    assert quality is not None and quality.metric == "f1_macro" and quality.baseline == 1.0
    assert quality.current_metrics["accuracy"] == pytest.approx(0.5)
