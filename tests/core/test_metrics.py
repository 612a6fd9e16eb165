"""Every metric, with and without row weights, agrees with scikit-learn; directions are defined once;
where two former implementations disagreed, the chosen value is pinned here."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.exceptions import UndefinedMetricWarning

from airflow_mlops.core import metrics
from airflow_mlops.core.metrics import Predictions, compute_metrics
from tests.support.data import delay_scores


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    """Truth and a real, tie-heavy score: the historical delay rate of each flight's carrier and hour."""
    return delay_scores()


@pytest.fixture(scope="module")
def weights(binary: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    n = len(binary[0])
    return np.bincount(np.random.default_rng(3).integers(0, n, n), minlength=n).astype(float)


SKLEARN_BINARY = {
    "roc_auc": lambda y, p, w: skm.roc_auc_score(y, p[:, 1], sample_weight=w),
    "pr_auc": lambda y, p, w: skm.average_precision_score(y, p[:, 1], sample_weight=w),
    "log_loss": lambda y, p, w: skm.log_loss(y, p, sample_weight=w),
    "brier": lambda y, p, w: skm.brier_score_loss(y, p[:, 1], sample_weight=w),
    "accuracy": lambda y, p, w: skm.accuracy_score(y, p.argmax(1), sample_weight=w),
    "f1": lambda y, p, w: skm.f1_score(y, p.argmax(1), sample_weight=w),
    "precision": lambda y, p, w: skm.precision_score(y, p.argmax(1), sample_weight=w, zero_division=0),
    "recall": lambda y, p, w: skm.recall_score(y, p.argmax(1), sample_weight=w),
}


@pytest.mark.parametrize("name", sorted(SKLEARN_BINARY))
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "bootstrap-weights"])
def test_binary_metrics_match_sklearn(binary, weights, name: str, weighted: bool) -> None:  # type: ignore[no-untyped-def]
    y, proba = binary
    w = weights if weighted else None
    assert metrics.compute(name, y, proba, w) == pytest.approx(SKLEARN_BINARY[name](y, proba, w), abs=1e-9)


def test_multiclass_and_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3)) + np.eye(3)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert metrics.compute("log_loss", y, proba) == pytest.approx(skm.log_loss(y, proba), abs=1e-9)
    assert metrics.compute("accuracy", y, proba) == pytest.approx(skm.accuracy_score(y, proba.argmax(1)))
    assert metrics.compute("f1_macro", y, proba) == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))
    assert metrics.compute("roc_auc_ovr", y, proba) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    truth = rng.normal(10, 3, 400)
    pred = truth + rng.normal(0, 1, 400)
    w = rng.integers(0, 3, 400).astype(float)
    expected_rmse = np.sqrt(skm.mean_squared_error(truth, pred, sample_weight=w))
    assert metrics.compute("rmse", truth, pred, w) == pytest.approx(expected_rmse)
    assert metrics.compute("mae", truth, pred, w) == pytest.approx(
        skm.mean_absolute_error(truth, pred, sample_weight=w)
    )
    assert metrics.compute("r2", truth, pred, w) == pytest.approx(skm.r2_score(truth, pred, sample_weight=w))


def test_auc_is_nan_when_only_one_class_is_present() -> None:
    y = np.zeros(10, dtype=int)
    assert np.isnan(metrics.compute("roc_auc", y, np.full((10, 2), 0.5)))


def test_median_absolute_error_matches_sklearn_and_weights_repeat_rows() -> None:
    rng = np.random.default_rng(4)
    truth = rng.normal(10, 3, 301)
    pred = truth + rng.standard_t(3, 301)
    assert metrics.compute("median_ae", truth, pred) == skm.median_absolute_error(truth, pred)
    for seed in range(5):
        counts = np.random.default_rng(seed).integers(0, 4, 301).astype(float)
        repeated = np.repeat(np.arange(301), counts.astype(int))
        expected = np.median(np.abs(truth[repeated] - pred[repeated]))
        assert metrics.compute("median_ae", truth, pred, counts) == pytest.approx(expected, abs=1e-12)


def test_directions_are_defined_once_and_shared() -> None:
    from airflow_mlops.core.drift.spec import QUALITY_METRICS
    from airflow_mlops.core.gating import metrics as gm
    from airflow_mlops.core.training import spec as training_spec

    assert training_spec.METRIC_DIRECTIONS is metrics.METRIC_DIRECTIONS
    assert all(gm.METRICS[name] is metrics.METRICS[name] for name in gm.METRICS)
    for task, names in QUALITY_METRICS.items():
        assert set(names) <= set(metrics.METRIC_DIRECTIONS[task])
    assert metrics.METRIC_DIRECTIONS["regression"] == {"rmse": False, "mae": False, "r2": True, "median_ae": False}
    assert not metrics.METRICS["log_loss"].higher_is_better and metrics.METRICS["roc_auc"].higher_is_better


def test_training_metrics_score_the_models_own_labels() -> None:
    """Accuracy and F1 use the label output, which can differ from the most probable class at a tie."""
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.5, 0.5], [0.2, 0.8], [0.6, 0.4], [0.9, 0.1]])
    labels = np.array([1, 1, 0, 0])  # row 0: a tie the model broke towards class 1
    result = compute_metrics("binary", y, Predictions(None, proba, labels), (0, 1))
    assert result["accuracy"] == skm.accuracy_score(y, labels) == 0.5
    assert result["f1"] == skm.f1_score(y, labels) and result["precision"] == 0.5
    assert metrics.compute("accuracy", y, proba) == 0.75  # the most probable class takes class 0 at the tie


def test_training_metrics_on_text_classes() -> None:
    y = np.array(["early", "late", "late", "early", "early"])
    proba = np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.8, 0.2], [0.4, 0.6]])
    labels = np.array(["early", "late", "early", "early", "late"])
    result = compute_metrics("binary", y, Predictions(None, proba, labels), ("early", "late"))
    positive = y == "late"
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(positive, proba[:, 1]))
    assert result["log_loss"] == pytest.approx(skm.log_loss(positive, proba[:, 1]))
    assert result["recall"] == 0.5
    with pytest.raises(ValueError, match="'maybe' is not one of the model's classes"):
        compute_metrics("binary", np.array(["maybe"]), Predictions(None, proba[:1], labels[:1]), ("early", "late"))


def test_macro_f1_averages_over_the_classes_that_occur() -> None:
    """Training counted a class absent from both truth and labels as F1 0; the gate and drift averaged over
    the classes that occur, as scikit-learn does by default. An absent class has no F1: the latter holds."""
    y = np.array([0, 1, 1, 0, 1, 0])
    labels = np.array([0, 1, 0, 0, 1, 1])
    proba = np.eye(3)[labels] * 0.8 + 0.2 / 3  # class 2 never occurs
    result = compute_metrics("multiclass", y, Predictions(None, proba, labels), (0, 1, 2))
    assert result["f1_macro"] == pytest.approx(skm.f1_score(y, labels, average="macro"))
    assert result["f1_macro"] > skm.f1_score(y, labels, labels=[0, 1, 2], average="macro", zero_division=0)
    assert metrics.compute("f1_macro", y, proba) == result["f1_macro"]


def test_one_vs_rest_auc_is_undefined_when_a_class_is_absent() -> None:
    """The gate averaged the classes present; training (like scikit-learn, which warns and returns NaN)
    left it out. A macro average over fewer classes than the model has is another number: undefined holds."""
    rng = np.random.default_rng(1)
    proba = rng.dirichlet([1, 1, 1], 200)
    y = rng.integers(0, 2, 200)  # class 2 absent
    with pytest.warns(UndefinedMetricWarning):
        assert np.isnan(skm.roc_auc_score(y, proba, labels=[0, 1, 2], multi_class="ovr"))
    assert np.isnan(metrics.compute("roc_auc_ovr", y, proba))
    labels = proba.argmax(1)
    assert "roc_auc_ovr" not in compute_metrics("multiclass", y, Predictions(None, proba, labels), (0, 1, 2))
    y[:5] = 2
    assert metrics.compute("roc_auc_ovr", y, proba) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))


def test_undefined_metrics_are_left_out_of_a_training_split() -> None:
    truth = np.full(10, 4.0)
    result = compute_metrics("regression", truth, Predictions(truth + 1, None, None), ())
    assert set(result) == {"rmse", "mae", "median_ae"} and result["rmse"] == 1.0


def test_class_indices() -> None:
    assert metrics.class_indices(np.array([1.0, 0.0, 1.0]), (0, 1)).tolist() == [1, 0, 1]
    assert metrics.class_indices(np.array(["b", "z"]), ("a", "b"), unknown=-1).tolist() == [1, -1]
