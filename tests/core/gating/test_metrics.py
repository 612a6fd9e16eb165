"""The gate's metric lookup names the choices; the paired bootstrap is honest (the metrics themselves are
tested in tests/core/test_metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import metrics as gm
from tests.support.data import delay_scores


@pytest.fixture(scope="module")
def binary() -> tuple[np.ndarray, np.ndarray]:
    """Truth and a real, tie-heavy score: the historical delay rate of each flight's carrier and hour."""
    return delay_scores()


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
