"""The gate's metrics agree with scikit-learn, with and without row weights; the bootstrap is honest."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import metrics as gm
from tests.support.data import flights


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    """Truth and a real, tie-heavy score: the historical delay rate of each flight's carrier and hour."""
    frame = flights(months=[5], sample=6000)
    frame = frame[frame["arr_delayed_15"].notna()]
    y = frame["arr_delayed_15"].astype(int).to_numpy()
    rate = frame.groupby(["carrier", "hour"])["arr_delayed_15"].transform("mean").astype(float).to_numpy()
    score = np.round(0.8 * rate + 0.1, 2)  # rounding makes ties, which AUC and AP must handle like sklearn
    return y, np.column_stack([1 - score, score])


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
    assert gm.compute(name, y, proba, w) == pytest.approx(SKLEARN_BINARY[name](y, proba, w), abs=1e-9)


def test_multiclass_and_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 500)
    logits = rng.normal(size=(500, 3)) + np.eye(3)[y] * 1.5
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert gm.compute("log_loss", y, proba) == pytest.approx(skm.log_loss(y, proba), abs=1e-9)
    assert gm.compute("accuracy", y, proba) == pytest.approx(skm.accuracy_score(y, proba.argmax(1)))
    assert gm.compute("f1_macro", y, proba) == pytest.approx(skm.f1_score(y, proba.argmax(1), average="macro"))
    assert gm.compute("roc_auc_ovr", y, proba) == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr"))
    truth = rng.normal(10, 3, 400)
    pred = truth + rng.normal(0, 1, 400)
    w = rng.integers(0, 3, 400).astype(float)
    expected_rmse = np.sqrt(skm.mean_squared_error(truth, pred, sample_weight=w))
    assert gm.compute("rmse", truth, pred, w) == pytest.approx(expected_rmse)
    assert gm.compute("mae", truth, pred, w) == pytest.approx(skm.mean_absolute_error(truth, pred, sample_weight=w))
    assert gm.compute("r2", truth, pred, w) == pytest.approx(skm.r2_score(truth, pred, sample_weight=w))


def test_auc_is_nan_when_only_one_class_is_present() -> None:
    y = np.zeros(10, dtype=int)
    assert np.isnan(gm.compute("roc_auc", y, np.full((10, 2), 0.5)))


def test_unknown_or_misapplied_metric_names_the_choices() -> None:
    with pytest.raises(SpecError, match=r"'auc' is not a metric the gate knows. Expected one of \["):
        gm.metric("auc")
    with pytest.raises(SpecError, match="'rmse' does not apply to a binary model"):
        gm.metric("rmse", "binary")


def test_bootstrap_of_a_model_against_itself_is_exactly_zero(binary) -> None:  # type: ignore[no-untyped-def]
    y, proba = binary
    result = gm.paired_bootstrap("roc_auc", y, proba, proba, samples=200, confidence=0.95, seed=1, tolerance=0.0)
    assert result.lower == 0.0 and result.mean == 0.0 and result.passed


def test_bootstrap_separates_better_from_worse_and_is_seeded(binary) -> None:  # type: ignore[no-untyped-def]
    y, proba = binary
    rng = np.random.default_rng(7)
    noisy = np.clip(proba[:, 1] + rng.normal(0, 0.15, len(y)), 0.01, 0.99)
    worse = np.column_stack([1 - noisy, noisy])
    up = gm.paired_bootstrap("roc_auc", y, proba, worse, samples=300, confidence=0.95, seed=5, tolerance=0.0)
    down = gm.paired_bootstrap("roc_auc", y, worse, proba, samples=300, confidence=0.95, seed=5, tolerance=0.0)
    assert up.passed and up.lower > 0
    assert not down.passed and down.mean < 0 and down.share_worse > 0.95
    again = gm.paired_bootstrap("roc_auc", y, proba, worse, samples=300, confidence=0.95, seed=5, tolerance=0.0)
    assert again == up
    # a tolerance as large as the gap lets the worse model through: the bound moves, not the data
    lenient = gm.paired_bootstrap("roc_auc", y, worse, proba, samples=300, confidence=0.95, seed=5, tolerance=0.2)
    assert lenient.passed and lenient.lower == down.lower


def test_bootstrap_lower_bound_matches_a_direct_resampling(binary) -> None:  # type: ignore[no-untyped-def]
    """The fast grouped AUC used per resample gives what sklearn gives on the materialised resample."""
    y, proba = binary
    other = np.column_stack([1 - proba[:, 1] ** 1.3, proba[:, 1] ** 1.3])
    rng = np.random.default_rng(11)
    n = len(y)
    direct = []
    for _ in range(50):
        rows = rng.integers(0, n, n)
        direct.append(skm.roc_auc_score(y[rows], other[rows, 1]) - skm.roc_auc_score(y[rows], proba[rows, 1]))
    result = gm.paired_bootstrap("roc_auc", y, other, proba, samples=50, confidence=0.9, seed=11, tolerance=0.0)
    assert result.mean == pytest.approx(float(np.mean(direct)), abs=1e-12)
    assert result.lower == pytest.approx(float(np.quantile(direct, 0.1)), abs=1e-12)
