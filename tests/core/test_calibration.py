"""Expected calibration error and the multiclass Brier score, held to scikit-learn's reliability curve and
to their definitions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss

from airflow_mlops.core.calibration import expected_calibration_error, multiclass_brier
from airflow_mlops.core.errors import SpecError


@pytest.fixture(scope="module")
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    """Labels drawn with exactly the stated probability: a calibrated model, up to sampling noise."""
    rng = np.random.default_rng(7)
    p = rng.uniform(0.0, 1.0, 20_000)
    y = (rng.uniform(0.0, 1.0, p.size) < p).astype(int)
    return y, np.column_stack([1 - p, p])


def test_ece_agrees_with_scikit_learns_reliability_curve(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = calibrated
    sharpened = 1 / (1 + np.exp(-4 * np.log(proba[:, 1] / proba[:, 0])))  # same ranking, overconfident
    for p in (proba[:, 1], sharpened):
        rate, mean_predicted = calibration_curve(y, p, n_bins=10, strategy="uniform")
        counts = np.bincount(np.searchsorted(np.linspace(0, 1, 11)[1:-1], p), minlength=10)
        expected = np.sum(counts[counts > 0] * np.abs(rate - mean_predicted)) / len(y)
        assert expected_calibration_error(y, np.column_stack([1 - p, p])) == pytest.approx(expected, abs=1e-12)
    assert expected_calibration_error(y, proba) < 0.02
    assert expected_calibration_error(y, np.column_stack([1 - sharpened, sharpened])) > 0.1


def test_ece_of_a_constant_wrong_probability_is_its_distance_from_the_rate() -> None:
    y = np.array([1] + [0] * 9)
    proba = np.tile([0.1, 0.9], (10, 1))
    assert expected_calibration_error(y, proba) == pytest.approx(0.8)


def test_weights_are_row_multiplicities(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = calibrated[0][:500], calibrated[1][:500]
    counts = np.random.default_rng(1).integers(0, 3, len(y))
    repeated = np.repeat(np.arange(len(y)), counts)
    assert expected_calibration_error(y, proba, counts.astype(float)) == pytest.approx(
        expected_calibration_error(y[repeated], proba[repeated])
    )
    assert multiclass_brier(y, proba, counts.astype(float)) == pytest.approx(
        multiclass_brier(y[repeated], proba[repeated])
    )
    assert np.isnan(expected_calibration_error(y, proba, np.zeros(len(y))))


def test_multiclass_ece_compares_top_label_confidence_with_accuracy() -> None:
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.7, 0.2], [0.2, 0.1, 0.7], [0.7, 0.2, 0.1]])
    y = np.array([0, 1, 0, 1])  # right on half the rows, 70% confident on all: off by 0.2
    assert expected_calibration_error(y, proba) == pytest.approx(0.2)


def test_multiclass_brier_is_twice_the_binary_score_on_two_classes(calibrated: tuple[np.ndarray, np.ndarray]) -> None:
    y, proba = calibrated
    assert multiclass_brier(y, proba) == pytest.approx(2 * brier_score_loss(y, proba[:, 1]))
    three = np.array([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    assert multiclass_brier(np.array([0, 1]), three) == pytest.approx(((0.16 + 0.09 + 0.01) + (0.04 + 0.64 + 0.36)) / 2)


def test_ece_refuses_no_bins() -> None:
    with pytest.raises(SpecError, match=r"must be >= 1\. Got 0"):
        expected_calibration_error(np.array([0, 1]), np.array([[0.5, 0.5], [0.5, 0.5]]), bins=0)
