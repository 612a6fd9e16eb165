"""Drift quality: prediction and target drift, quality on labelled rows against a baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from airflow_mlops.core.drift import DriftSpec, compute_drift, quality_metrics
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


def test_quality_metrics_are_the_core_metrics(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """Drift measures quality with the metrics training and the gate report, to the last bit."""
    from airflow_mlops.core import metrics

    _, labelled = scored
    labelled = labelled[labelled["arr_delayed_15"].notna()]
    found = quality_metrics(
        labelled["arr_delayed_15"], labelled["prediction"], labelled[["probability_1"]], "binary", ("0", "1")
    )
    y = labelled["arr_delayed_15"].astype(int).to_numpy()
    score = labelled["probability_1"].to_numpy(dtype="float64")
    decided = labelled["prediction"].astype(int).to_numpy()
    proba = np.column_stack([1 - score, score])
    for name in ("roc_auc", "log_loss"):
        assert found[name] == metrics.compute(name, y, proba)
    for name in ("accuracy", "precision", "recall", "f1"):
        assert found[name] == metrics.compute(name, y, None, decided=decided)
    assert found["roc_auc"] == pytest.approx(skm.roc_auc_score(y, score), abs=1e-12)


def test_r2_of_a_constant_target_is_undefined() -> None:
    """Drift used scikit-learn's r2_score, which reports 0.0 (or 1.0) for a constant target; training and
    the gate left it undefined. R² divides by the target's variance: with none it is undefined (None)."""
    target = pd.Series([3.0] * 5)
    found = quality_metrics(target, pd.Series([3.0, 3.0, 3.0, 3.0, 4.0]), None, "regression", ())
    assert found["r2"] is None and found["rmse"] == pytest.approx(np.sqrt(0.2)) and found["mae"] == 0.2
    assert quality_metrics(target[:1], target[:1], None, "regression", ())["r2"] is None


def test_multiclass_quality_over_labels_outside_the_classes() -> None:
    y = pd.Series(["a", "b", "c", "a", "b", "c"])
    predicted = pd.Series(["a", "b", "x", "a", "c", "c"])  # "x" is no class of the model
    found = quality_metrics(y, predicted, None, "multiclass", ("a", "b", "c"))
    assert found["accuracy"] == pytest.approx(skm.accuracy_score(y, predicted))
    assert found["f1_macro"] == pytest.approx(skm.f1_score(y, predicted, average="macro", zero_division=0))
