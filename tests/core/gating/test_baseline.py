"""The baselines the candidate must beat (ML Test Score M5): a regularised linear model on the same
features, which it must beat by ``min_gain``, and the constant class prior; fitted on its training rows,
or cross-fitted on the evaluation rows."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import GatePolicy, evaluate
from airflow_mlops.core.gating.card import render_markdown
from tests.core.gating.support import Exported, candidate, evaluation_truth, failed, labelled, policy, train
from tests.support.data import flights


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return flights(months=[2, 3], sample=3000)


def test_by_default_the_simpler_model_is_a_logistic_regression_and_the_constant_a_second_baseline(
    good: Exported, evaluation: pd.DataFrame, sample: pd.DataFrame
) -> None:
    decision = evaluate(candidate(good, training_sample=sample), None, evaluation, policy())
    baseline = decision.baseline
    assert baseline is not None and baseline["kind"] == "linear" and baseline["fit_on"] == "train_sample"
    assert baseline["fit_rows"] == len(labelled(sample))
    constant = baseline["constant"]
    assert constant["kind"] == "prior"
    prior = labelled(sample)["arr_delayed_15"].astype(int).mean()
    assert constant["metrics"]["brier"] == pytest.approx(
        float(((evaluation_truth(evaluation) - prior) ** 2).mean()), rel=1e-9
    )  # a constant prediction of the training rows' delay rate, scored on the evaluation rows
    # the logistic regression on the same features learns something: far above the constant's 0.5 AUC
    assert baseline["metrics"]["roc_auc"] > 0.58 and constant["metrics"]["roc_auc"] == 0.5
    # the default gain asked of the candidate: 1% of the simpler model's AUC
    assert baseline["min_gain"] == pytest.approx(0.01 * baseline["metrics"]["roc_auc"])
    checks = {c.name: c for c in decision.reasons}
    assert {"baseline:roc_auc", "baseline:log_loss", "baseline:prior:roc_auc", "baseline:prior:log_loss"} <= set(checks)
    assert checks["baseline:roc_auc"].threshold == pytest.approx(baseline["metrics"]["roc_auc"] + baseline["min_gain"])
    assert not {name for name in failed(decision) if name.startswith("baseline")}  # the forest beats both
    card = render_markdown(decision)
    assert "baseline (linear)" in card and "baseline (prior)" in card and "Simpler model: linear baseline" in card


def test_a_crippled_candidate_that_beats_the_constant_but_not_the_simpler_model_is_rejected(
    evaluation: pd.DataFrame, sample: pd.DataFrame
) -> None:
    # one split of a decision tree on every feature: better than the class prior, worse than a logistic
    # regression of the same features
    stump = train(flights(months=[2, 3], sample=8000), estimator="stump")
    decision = evaluate(candidate(stump, training_sample=sample), None, evaluation, policy())
    assert decision.verdict == "rejected"
    assert "baseline:roc_auc" in failed(decision)
    assert not {"baseline:prior:roc_auc", "baseline:prior:log_loss"} & failed(decision)
    assert decision.baseline is not None
    assert decision.candidate_metrics["roc_auc"] < decision.baseline["metrics"]["roc_auc"]
    assert decision.candidate_metrics["roc_auc"] > decision.baseline["constant"]["metrics"]["roc_auc"]
    # with the constant alone (the former default) the same candidate would have passed
    prior_only = policy(baseline={"kind": "prior"})
    constant_only = evaluate(candidate(stump, training_sample=sample), None, evaluation, prior_only)
    assert not {name for name in failed(constant_only) if name.startswith("baseline")}


def test_min_gain_is_a_policy_key_the_candidate_must_clear(
    good: Exported, evaluation: pd.DataFrame, sample: pd.DataFrame
) -> None:
    decision = evaluate(candidate(good, training_sample=sample), None, evaluation, policy(baseline={"min_gain": 0.1}))
    check = next(c for c in decision.reasons if c.name == "baseline:roc_auc")
    assert check.status == "failed" and "required gain 0.1" in check.message
    assert decision.baseline is not None and decision.baseline["min_gain_setting"] == "0.1"
    assert GatePolicy.from_mapping({"baseline": {"min_gain": "2%"}}).baseline.min_gain.relative
    with pytest.raises(SpecError, match=r"'baseline.min_gain' parameter of GatePolicy must be a number >= 0"):
        GatePolicy.from_mapping({"baseline": {"min_gain": "-1"}})
    with pytest.raises(SpecError, match=r"'baseline.regularization' parameter of GatePolicy"):
        GatePolicy.from_mapping({"baseline": {"regularization": 0}})


def test_the_baselines_can_be_cross_fitted_on_the_evaluation_rows_and_beat_a_model_of_noise(
    good: Exported, shuffled: Exported, evaluation: pd.DataFrame, sample: pd.DataFrame
) -> None:
    cross = evaluate(
        candidate(good, training_sample=sample), None, evaluation, policy(baseline={"fit_on": "evaluation"})
    )
    assert cross.baseline is not None and cross.baseline["fit_on"] == "evaluation"
    assert cross.baseline["fit_rows"] == len(labelled(evaluation))
    no_constant = policy(baseline={"constant": False})
    beaten = evaluate(candidate(shuffled, training_sample=sample), None, evaluation, no_constant)
    assert "baseline:roc_auc" in failed(beaten) and "baseline:log_loss" in failed(beaten)
    assert beaten.baseline is not None and beaten.baseline["constant"] is None
    assert beaten.baseline["metrics"]["roc_auc"] > beaten.candidate_metrics["roc_auc"]
