"""How well predicted probabilities match observed frequencies: expected calibration error, and the
Brier score of a multiclass model (the gate's metrics define the binary one).

Both take ``(y, proba, weights)`` like the gate's metrics: ``y`` holds class indices (positions in the
spec's ``classes``), ``proba`` the probability matrix ``[n, n_classes]``, and ``weights`` row
multiplicities (``None``: one each).

A model can rank rows well (a high ROC AUC) and still state probabilities that are far off: its
scores were sharpened or shifted. ROC AUC cannot see that; these can.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core.errors import SpecError

if TYPE_CHECKING:
    import numpy as np

DEFAULT_BINS = 10


def expected_calibration_error(
    y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None, *, bins: int = DEFAULT_BINS
) -> float:
    """Weighted mean gap between predicted probability and observed frequency, over equal-width bins.

    Binary models: the positive-class probability against the positive rate in each bin (the
    reliability diagram's reading). Multiclass models: the top-label confidence against the accuracy
    in each bin. Bins are ``[0, 1/bins], (1/bins, 2/bins] ...`` as scikit-learn's
    ``calibration_curve(strategy="uniform")`` cuts them; empty bins count for nothing.

    :return: a value in ``[0, 1]``; ``nan`` when the rows carry no weight.
    """
    import numpy as np

    if bins < 1:
        raise SpecError(f"The number of calibration bins must be >= 1. Got {bins} instead.")
    proba = np.asarray(proba, dtype=np.float64)
    w = np.ones(len(y), dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    if proba.shape[1] == 2:
        predicted, observed = proba[:, 1], (np.asarray(y) == 1).astype(np.float64)
    else:
        predicted = proba.max(axis=1)
        observed = (proba.argmax(axis=1) == np.asarray(y)).astype(np.float64)
    total = w.sum()
    if total <= 0:
        return float("nan")
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], predicted)
    predicted_per_bin = np.bincount(index, weights=w * predicted, minlength=bins)
    observed_per_bin = np.bincount(index, weights=w * observed, minlength=bins)
    # sum over bins of (bin weight / total) * |mean predicted - mean observed|; the bin weights cancel
    return float(np.sum(np.abs(predicted_per_bin - observed_per_bin)) / total)


def multiclass_brier(y: np.ndarray, proba: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean over rows of the squared distance between the probability vector and the one-hot truth.

    For a binary model this is twice the usual (positive-class) Brier score, which is why the gate
    reports the usual one for binary models and this one for multiclass models only.
    """
    import numpy as np

    proba = np.asarray(proba, dtype=np.float64)
    w = np.ones(len(y), dtype=np.float64) if weights is None else np.asarray(weights, dtype=np.float64)
    one_hot = np.zeros_like(proba)
    one_hot[np.arange(len(y)), np.asarray(y, dtype=np.int64)] = 1.0
    total = w.sum()
    if total <= 0:
        return float("nan")
    return float(np.sum(w * np.sum((proba - one_hot) ** 2, axis=1)) / total)
