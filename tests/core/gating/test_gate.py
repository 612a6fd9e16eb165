"""The gate's decision on real flights models: it rejects what is worse and passes what is better."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from airflow_mlops.core.errors import IntegrityError
from airflow_mlops.core.gating import evaluate, render_markdown
from airflow_mlops.core.gating.models import ModelUnderTest
from tests.core.gating.support import Exported, candidate, champion, failed, policy, recalibrated, train
from tests.support.data import flights


def test_a_model_trained_on_shuffled_labels_is_rejected(shuffled: Exported, evaluation: pd.DataFrame) -> None:
    decision = evaluate(candidate(shuffled), None, evaluation, policy(floors={"roc_auc": 0.6}))
    assert decision.verdict == "rejected" and not decision.passed
    assert {"floor:roc_auc", "baseline:log_loss"} <= failed(decision)
    assert decision.candidate_metrics["roc_auc"] < 0.56
    # even with no floor at all, the class-prior baseline exposes it: its log loss is worse than a constant
    bare = evaluate(candidate(shuffled), None, evaluation, policy())
    assert "baseline:log_loss" in failed(bare) and all(name.startswith("baseline:") for name in failed(bare))


def test_first_run_applies_absolute_checks_only(good: Exported, evaluation: pd.DataFrame) -> None:
    decision = evaluate(candidate(good), None, evaluation, policy(floors={"roc_auc": 0.6}))
    assert decision.passed and decision.verdict == "passed" and decision.first_run
    assert decision.champion_metrics is None and decision.champion is None
    regression = next(c for c in decision.reasons if c.name == "non_regression:roc_auc")
    assert regression.status == "skipped" and "first-run" in regression.message
    strict = evaluate(candidate(good), None, evaluation, policy(first_run="reject"))
    assert failed(strict) == {"champion_required"}


def test_better_candidate_passes_and_worse_one_is_rejected_on_the_same_rows(
    good: Exported, weak: Exported, evaluation: pd.DataFrame
) -> None:
    rules = policy(floors={"roc_auc": 0.55}, bootstrap={"enabled": True, "samples": 300})
    up = evaluate(candidate(good), champion(weak), evaluation, rules)
    down = evaluate(candidate(weak), champion(good), evaluation, rules)
    assert up.passed and not up.first_run
    assert up.candidate_metrics["roc_auc"] > up.champion_metrics["roc_auc"]  # type: ignore[index]
    assert not down.passed
    assert {"non_regression:roc_auc", "bootstrap:roc_auc"} <= failed(down)
    # the same rows: each side's metrics are the other side's, swapped
    assert down.champion_metrics == up.candidate_metrics and down.candidate_metrics == up.champion_metrics
    assert up.bootstrap[0]["lower"] > 0 > down.bootstrap[0]["lower"]
    assert up.data["rows"] == down.data["rows"] == int(evaluation["arr_delayed_15"].notna().sum())


def test_a_tolerance_admits_a_candidate_that_is_slightly_worse(good: Exported, evaluation: pd.DataFrame) -> None:
    """The single-metric rule (no proper scoring rule): ROC AUC alone, within its tolerance."""
    other = train(flights(months=[2, 3], sample=8000), seed=1)
    strict = policy(compare={"proper_scoring_rule": "none", "tolerance": {"primary": 0}})
    decision = evaluate(candidate(other), champion(good), evaluation, strict)
    gap = decision.champion_metrics["roc_auc"] - decision.candidate_metrics["roc_auc"]  # type: ignore[index]
    if gap <= 0:
        other, good = good, other  # make "other" the slightly worse one
        decision = evaluate(candidate(other), champion(good), evaluation, strict)
        gap = -gap
    assert 0 < gap < 0.03 and "non_regression:roc_auc" in failed(decision)
    assert decision.comparison is not None and decision.comparison["rule"] == "primary_only"
    lenient = policy(compare={"proper_scoring_rule": "none", "tolerance": {"primary": gap + 0.001}})
    assert "non_regression:roc_auc" not in failed(evaluate(candidate(other), champion(good), evaluation, lenient))


def test_a_champion_whose_calibration_collapsed_loses_to_a_calibrated_candidate(evaluation: pd.DataFrame) -> None:
    """The champion ranks flights as well as ever (same ROC AUC) but its probabilities went wrong: its
    scores were stretched and shifted. The candidate ranks a little worse and states honest probabilities."""
    months = flights(months=[2, 3], sample=8000)
    base = train(months, estimator="logistic")
    collapsed = recalibrated(base, scale=3.0, shift=-2.0)
    calibrated = train(months, estimator="logistic", categorical=["carrier", "origin"])
    # both models are logistic regressions themselves: only the constant baseline is asked of them here
    decision = evaluate(candidate(calibrated), champion(collapsed), evaluation, policy(baseline={"kind": "prior"}))
    ours, theirs = decision.candidate_metrics, decision.champion_metrics
    assert theirs is not None and decision.calibration is not None and decision.comparison is not None
    assert 0 < theirs["roc_auc"] - ours["roc_auc"] < 0.01  # the champion still ranks a little better
    assert theirs["log_loss"] > ours["log_loss"] + 0.5 and theirs["recall"] < 0.05
    assert decision.passed and decision.comparison["preferred"] and decision.comparison["scoring_rule"] == "log_loss"
    check = next(c for c in decision.reasons if c.name == "non_regression:roc_auc")
    assert check.passed and "better on log_loss, roc_auc within tolerance" in check.message
    assert decision.calibration["champion"]["ece"] > decision.calibration["candidate"]["ece"] + 0.2
    assert decision.calibration["champion"]["brier"] > decision.calibration["candidate"]["brier"]
    assert decision.calibration["candidate"]["brier"] == pytest.approx(ours["brier"])
    card = render_markdown(decision)
    assert "## Comparison with the champion and calibration" in card and "expected calibration error" in card
    # judged on ROC AUC alone, as the gate used to, the champion is kept for its slightly better ranking
    single = policy(compare={"proper_scoring_rule": "none", "tolerance": {"primary": 0}}, baseline={"kind": "prior"})
    kept = evaluate(candidate(calibrated), champion(collapsed), evaluation, single)
    assert not kept.passed and failed(kept) == {"non_regression:roc_auc"}
    # a ceiling on the calibration error refuses the collapsed model whatever its ranking
    capped = evaluate(candidate(collapsed), None, evaluation, policy(compare={"max_ece": 0.1}))
    assert "calibration:ece" in failed(capped)


def test_min_gain_keeps_the_champion_unless_the_candidate_beats_it_by_the_margin(
    good: Exported, weak: Exported, evaluation: pd.DataFrame
) -> None:
    plain = evaluate(candidate(good), champion(weak), evaluation, policy())
    assert plain.passed and plain.champion_metrics is not None
    champion_auc = plain.champion_metrics["roc_auc"]
    gain = plain.candidate_metrics["roc_auc"] - champion_auc
    assert gain > 0.02
    margin = round(gain + 0.01, 3)
    short = evaluate(candidate(good), champion(weak), evaluation, policy(compare={"min_gain": margin}))
    assert not short.passed and failed(short) == {"min_gain:roc_auc"}
    check = next(c for c in short.reasons if c.name == "min_gain:roc_auc")
    assert check.message == f"gain {gain:.4g} below min_gain {margin:g}"
    enough = evaluate(candidate(good), champion(weak), evaluation, policy(compare={"min_gain": "2%"}))
    assert enough.passed
    check = next(c for c in enough.reasons if c.name == "min_gain:roc_auc")
    assert check.passed and check.threshold == pytest.approx(0.02 * champion_auc)
    first = evaluate(candidate(good), None, evaluation, policy(compare={"min_gain": 0.5}))
    assert first.passed and next(c for c in first.reasons if c.name == "min_gain:roc_auc").status == "skipped"


def test_force_passes_a_rejected_candidate_and_says_so(shuffled: Exported, evaluation: pd.DataFrame) -> None:
    decision = evaluate(
        candidate(shuffled), None, evaluation, policy(floors={"roc_auc": 0.6}), force=True, force_reason="INC-42"
    )
    assert decision.passed and decision.forced and decision.verdict == "forced"
    assert decision.force_reason == "INC-42"
    assert "floor:roc_auc" in failed(decision)  # the overridden checks stay on record
    assert decision.summary().startswith("FORCED")
    good_enough = evaluate(candidate(shuffled), None, evaluation, policy(), force=True)
    assert good_enough.forced  # the baseline check still failed, so force was needed
    assert good_enough.force_reason == "forced without a stated reason"


def test_a_champion_that_cannot_be_compared_fails_the_gate_with_the_reason(
    good: Exported, weak: Exported, evaluation: pd.DataFrame
) -> None:
    other_target = dataclasses.replace(champion(weak), spec={**weak.spec, "target": "cancelled"})
    decision = evaluate(candidate(good), other_target, evaluation, policy())
    check = next(c for c in decision.reasons if c.name == "champion_comparable")
    assert check.status == "failed" and "'cancelled'" in check.message
    assert next(c for c in decision.reasons if c.name.startswith("non_regression")).status == "skipped"
    missing = evaluation.drop(columns=["distance"])
    no_distance = train(flights(months=[2, 3], sample=4000), estimator="logistic", numeric=["hour"], categorical=[])
    decision = evaluate(candidate(no_distance), champion(weak), missing, policy())
    check = next(c for c in decision.reasons if c.name == "champion_comparable")
    assert check.status == "failed" and "missing feature column(s) ['distance']" in check.message


def test_a_changed_model_file_is_refused(good: Exported, evaluation: pd.DataFrame) -> None:
    with pytest.raises(IntegrityError, match="was changed"):
        evaluate(candidate(good, expected_sha256="0" * 64), None, evaluation, policy())


def test_a_regressor_is_gated_on_rmse_with_a_mean_baseline_and_relative_parity() -> None:
    """Bike sharing (hourly rentals): a ridge regression on hour-of-day one-hot beats the mean."""
    import numpy as np
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tests.support.data import bike_sharing

    bikes = bike_sharing()
    train_rows, test_rows = bikes.iloc[:8000], bikes.iloc[8000:11000]
    numeric, categorical = ["temp", "hum"], ["hr", "workingday"]
    x = train_rows[numeric + categorical].astype({c: "float32" for c in numeric}).astype({c: str for c in categorical})
    model = Pipeline([
        ("features", ColumnTransformer([("num", "passthrough", numeric), ("cat", OneHotEncoder(), categorical)])),
        ("model", Ridge(alpha=1.0)),
    ])  # fmt: skip
    model.fit(x, train_rows["cnt"].astype(float))
    types = [(c, FloatTensorType([None, 1])) for c in numeric] + [(c, StringTensorType([None, 1])) for c in categorical]
    onnx_bytes = to_onnx(model, initial_types=types, target_opset=17).SerializeToString()
    spec = {"task": "regression", "target": "cnt", "primary_metric": "rmse",
            "onnx_inputs": [{"name": c, "column": c, "type": "float"} for c in numeric]
            + [{"name": c, "column": c, "type": "string"} for c in categorical]}  # fmt: skip

    def native(frame: pd.DataFrame) -> np.ndarray:
        rows = (
            frame[numeric + categorical].astype({c: "float32" for c in numeric}).astype({c: str for c in categorical})
        )
        return model.predict(rows)

    model_under_test = ModelUnderTest("candidate", onnx_bytes, spec, run_id="bikes", native_predict=native,
                                      training_sample=train_rows)  # fmt: skip
    gate = {"floors": {"r2": 0.4}, "max_parity_diff": 1e-4}
    decision = evaluate(model_under_test, None, test_rows, policy(**gate, baseline={"kind": "mean"}))
    assert decision.passed and decision.primary_metric == "rmse"
    assert decision.baseline is not None and decision.baseline["kind"] == "mean"
    assert decision.candidate_metrics["rmse"] < decision.baseline["metrics"]["rmse"]
    assert decision.parity["measure"] == "max_rel_diff" and decision.parity["value"] < 1e-4
    assert decision.data["target_mean"] == pytest.approx(float(test_rows["cnt"].mean()))
    worse = evaluate(model_under_test, None, test_rows, policy(floors={"rmse": 10.0}, baseline={"kind": "mean"}))
    assert [c.name for c in worse.failed_checks] == ["floor:rmse"]  # a ceiling for a lower-is-better metric
    # The default simpler model is a ridge on the same inputs: this candidate is one, so it gains nothing over it.
    same_as_linear = evaluate(model_under_test, None, test_rows, policy(**gate))
    assert same_as_linear.baseline is not None and same_as_linear.baseline["kind"] == "linear"
    assert "baseline:rmse" in failed(same_as_linear)
