"""The baseline the candidate must beat: fitted on its training rows, or cross-fitted on the evaluation rows."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.gating import evaluate
from tests.core.gating.support import Exported, candidate, evaluation_truth, failed, labelled, policy
from tests.support.data import flights


def test_the_baseline_learns_from_the_candidates_training_rows_or_the_evaluation_rows(
    good: Exported, shuffled: Exported, evaluation: pd.DataFrame
) -> None:
    sample = flights(months=[2, 3], sample=3000)
    own = evaluate(candidate(good, training_sample=sample), None, evaluation, policy())
    assert own.baseline is not None and own.baseline["fit_on"] == "train_sample"
    assert own.baseline["fit_rows"] == len(labelled(sample))
    prior = labelled(sample)["arr_delayed_15"].astype(int).mean()
    assert own.baseline["metrics"]["brier"] == pytest.approx(
        float(((evaluation_truth(evaluation) - prior) ** 2).mean()), rel=1e-9
    )  # a constant prediction of the training rows' delay rate, scored on the evaluation rows
    cross = evaluate(
        candidate(good, training_sample=sample), None, evaluation, policy(baseline={"fit_on": "evaluation"})
    )
    assert cross.baseline is not None and cross.baseline["fit_on"] == "evaluation"
    # a small linear model on the candidate's features, fitted on clean rows, beats a model of noise
    linear = {"kind": "linear", "metrics": ["roc_auc"]}
    beaten = evaluate(candidate(shuffled, training_sample=sample), None, evaluation, policy(baseline=linear))
    assert "baseline:roc_auc" in failed(beaten)
    assert beaten.baseline["metrics"]["roc_auc"] > beaten.candidate_metrics["roc_auc"]  # type: ignore[index]
