"""The gate's decision on real flights models: it rejects what is worse and passes what is better."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError, IntegrityError, SourceNotFoundError, SpecError
from airflow_mlops.core.gating.evaluate import (
    ModelUnderTest,
    evaluate,
    evidence_location,
    prepare_data,
    read_evaluation_frame,
    write_evidence,
)
from airflow_mlops.core.gating.policy import GatePolicy
from airflow_mlops.core.storage import StorageRoot
from tests.core.gating.support import Exported, labelled, train
from tests.support.data import flights

LOOSE_PARITY = 0.05  # random forests in ONNX compute in float32: tree thresholds flip a few rows


@pytest.fixture(scope="module")
def evaluation() -> pd.DataFrame:
    return flights(months=[4], sample=5000)


@pytest.fixture(scope="module")
def good() -> Exported:
    return train(flights(months=[2, 3], sample=8000))


@pytest.fixture(scope="module")
def weak() -> Exported:
    """A real but poor model: logistic regression on distance alone."""
    return train(flights(months=[2, 3], sample=8000), estimator="logistic", numeric=["distance"], categorical=[])


@pytest.fixture(scope="module")
def shuffled() -> Exported:
    return train(flights(months=[2, 3], sample=8000), shuffle_labels=True)


def candidate(model: Exported, **extra: object) -> ModelUnderTest:
    base = {"run_id": "cand", "native_predict": model.native_predict}
    return ModelUnderTest("candidate", model.onnx_bytes, model.spec, **{**base, **extra})  # type: ignore[arg-type]


def champion(model: Exported, version: str = "1") -> ModelUnderTest:
    return ModelUnderTest("champion", model.onnx_bytes, model.spec, run_id="champ", version=version)


def policy(**raw: object) -> GatePolicy:
    return GatePolicy.from_mapping({"max_parity_diff": LOOSE_PARITY, "latency_repeats": 2, **raw})


def failed(decision) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in decision.failed_checks}


# -- verdicts ----------------------------------------------------------------------------------------
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
    other = train(flights(months=[2, 3], sample=8000), seed=1)
    decision = evaluate(candidate(other), champion(good), evaluation, policy())
    gap = decision.champion_metrics["roc_auc"] - decision.candidate_metrics["roc_auc"]  # type: ignore[index]
    if gap <= 0:
        other, good = good, other  # make "other" the slightly worse one
        decision = evaluate(candidate(other), champion(good), evaluation, policy())
        gap = -gap
    assert 0 < gap < 0.03 and "non_regression:roc_auc" in failed(decision)
    lenient = evaluate(candidate(other), champion(good), evaluation, policy(tolerance={"roc_auc": gap + 0.001}))
    assert "non_regression:roc_auc" not in failed(lenient)


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


def test_slice_floors_and_gap_name_the_worst_slice(good: Exported, evaluation: pd.DataFrame) -> None:
    rules = policy(slices={"columns": ["origin", "carrier"], "floor": 0.99, "max_gap": 0.0, "min_rows": 300})
    decision = evaluate(candidate(good), None, evaluation, rules)
    assert {"slice_floor:origin", "slice_gap:origin", "slice_floor:carrier", "slice_gap:carrier"} <= failed(decision)
    origin = next(t for t in decision.slices if t["column"] == "origin")
    assert {s["value"] for s in origin["slices"]} == {"EWR", "JFK", "LGA"}
    worst = min(origin["slices"], key=lambda s: s["candidate"])
    floor = next(c for c in decision.reasons if c.name == "slice_floor:origin")
    assert floor.observed == worst["candidate"] and repr(worst["value"]) in floor.message
    carrier = next(t for t in decision.slices if t["column"] == "carrier")
    small = [s for s in carrier["slices"] if s["rows"] < 300]
    assert small and not any(s["judged"] for s in small)
    fine = evaluate(candidate(good), None, evaluation, policy(slices={"columns": ["origin"], "floor": 0.5}))
    assert not failed(fine)
    with pytest.raises(DataError, match="slice column 'runway' is not in the evaluation data"):
        evaluate(candidate(good), None, evaluation, policy(slices={"columns": ["runway"], "floor": 0.5}))


def test_parity_uses_the_native_model_then_the_logged_figure(good: Exported, evaluation: pd.DataFrame) -> None:
    native = evaluate(candidate(good), None, evaluation, policy())
    assert native.parity["source"] == "native" and 0 < native.parity["value"] < LOOSE_PARITY
    assert native.parity["measure"] == "max_abs_probability_diff"
    tight = evaluate(candidate(good), None, evaluation, policy(max_parity_diff=1e-7))
    assert "parity" in failed(tight)  # float32 trees really differ from float64 ones: the check sees it
    logged = evaluate(candidate(good, native_predict=None, logged_parity=1e-6), None, evaluation, policy())
    assert logged.parity == {
        "source": "logged",
        "measure": "max_abs_probability_diff",
        "value": 1e-6,
        "threshold": LOOSE_PARITY,
        "rows": 0,
    }
    unknown = evaluate(candidate(good, native_predict=None), None, evaluation, policy())
    check = next(c for c in unknown.reasons if c.name == "parity")
    assert check.status == "failed" and "unproven" in check.message


def test_latency_and_size_budgets_are_measured_on_the_onnx_bytes(good: Exported, evaluation: pd.DataFrame) -> None:
    generous = evaluate(candidate(good), None, evaluation, policy(max_latency_ms_per_1k=60_000, max_model_bytes=10**9))
    assert not failed(generous)
    assert generous.latency["candidate_ms_per_1k"] > 0
    assert generous.candidate["size_bytes"] == len(good.onnx_bytes)
    tight = evaluate(candidate(good), None, evaluation, policy(max_latency_ms_per_1k=1e-6, max_model_bytes=100))
    assert {"latency_ms_per_1k", "model_size_bytes"} <= failed(tight)


def test_a_changed_model_file_is_refused(good: Exported, evaluation: pd.DataFrame) -> None:
    with pytest.raises(IntegrityError, match="was changed"):
        evaluate(candidate(good, expected_sha256="0" * 64), None, evaluation, policy())


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


def evaluation_truth(frame: pd.DataFrame) -> pd.Series:
    return labelled(frame)["arr_delayed_15"].astype(float)


# -- data ---------------------------------------------------------------------------------------------
def test_evaluation_data_problems_are_named(good: Exported, evaluation: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no target column 'arr_delayed_15'"):
        evaluate(candidate(good), None, evaluation.drop(columns=["arr_delayed_15"]), policy())
    with pytest.raises(DataError, match="no row with a value in the target column"):
        evaluate(candidate(good), None, evaluation.assign(arr_delayed_15=pd.NA), policy())
    odd = evaluation.astype({"arr_delayed_15": "object"})
    odd.loc[0, "arr_delayed_15"] = "late"
    with pytest.raises(DataError, match=r"label\(s\) \['late'\] that are not among the model's classes \['0', '1'\]"):
        evaluate(candidate(good), None, odd, policy())


def test_large_evaluation_sets_are_sampled_with_a_seed(good: Exported, evaluation: pd.DataFrame) -> None:
    first = prepare_data(evaluation, good.spec, max_rows=1000, seed=3)
    again = prepare_data(evaluation, good.spec, max_rows=1000, seed=3)
    assert first.info["sampled"] and first.info["rows"] == 1000
    assert first.info["rows_without_label"] == len(evaluation) - len(labelled(evaluation))
    pd.testing.assert_frame_equal(first.frame, again.frame)


def test_read_evaluation_frame_reads_parquet_csv_and_folders(tmp_path: Path, evaluation: pd.DataFrame) -> None:
    storage = StorageRoot(str(tmp_path))
    small = evaluation.head(50)[["distance", "carrier", "arr_delayed_15"]]
    small.to_parquet(tmp_path / "one.parquet")
    small.to_csv(tmp_path / "one.csv", index=False)
    (tmp_path / "parts").mkdir()
    small.head(20).to_parquet(tmp_path / "parts" / "a.parquet")
    small.tail(30).to_parquet(tmp_path / "parts" / "b.parquet")
    frame, sha = read_evaluation_frame(storage, storage.join("one.parquet"))
    assert len(frame) == 50 and sha == storage.sha256(storage.join("one.parquet"))
    assert len(read_evaluation_frame(storage, storage.join("one.csv"))[0]) == 50
    parts, parts_sha = read_evaluation_frame(storage, storage.join("parts"))
    assert len(parts) == 50 and parts_sha == read_evaluation_frame(storage, storage.join("parts"))[1]
    with pytest.raises(SourceNotFoundError, match="No evaluation data"):
        read_evaluation_frame(storage, storage.join("nope.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="could not be read as Parquet or CSV"):
        read_evaluation_frame(storage, storage.join("bad.parquet"))


# -- policy ---------------------------------------------------------------------------------------------
def test_policy_coerces_rendered_strings() -> None:
    rules = GatePolicy.from_mapping(
        {"floors": {"roc_auc": "0.6", "log_loss": "0.7"}, "tolerance": "0.01", "bootstrap": {"samples": "500"},
         "slices": {"columns": "origin, carrier", "floor": "0.5"}, "max_model_bytes": "2000000",
         "baseline": {"enabled": "false"}}
    )  # fmt: skip
    assert rules.floors == {"roc_auc": 0.6, "log_loss": 0.7} and rules.tolerance == 0.01
    assert rules.bootstrap.enabled and rules.bootstrap.samples == 500
    assert rules.slices.columns == ("origin", "carrier") and rules.max_model_bytes == 2_000_000
    assert not rules.baseline.enabled
    assert GatePolicy.from_mapping(None) == GatePolicy()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"floor": {}}, r"Unknown key\(s\) \['floor'\] in the gate policy"),
        ({"floors": {"auc": 0.6}}, r"'auc' is not a metric the gate knows"),
        ({"floors": {"roc_auc": "high"}}, r"'floors.roc_auc' parameter of GatePolicy must be a number. Got 'high'"),
        ({"tolerance": -0.1}, r"'tolerance' parameter of GatePolicy must be a number >= 0. Got -0.1"),
        ({"bootstrap": {"confidence": 1.3}}, r"'bootstrap.confidence' .* must be a number >= 0.5 and <= 0.999"),
        ({"bootstrap": {"samples": 10.5}}, r"'bootstrap.samples' .* must be an integer >= 100"),
        ({"slices": {"colums": ["origin"]}}, r"Unknown key\(s\) \['colums'\] in the 'slices' section"),
        ({"slices": {"columns": 3}}, r"'slices.columns' parameter of GatePolicy must be a list of names"),
        ({"baseline": {"kind": "forest"}}, r"'baseline.kind' .* must be one of \['auto', 'prior', 'mean', 'linear'\]"),
        ({"first_run": "allow"}, r"'first_run' .* must be one of \['floors_only', 'reject'\]"),
        ({"max_latency_ms_per_1k": 0}, r"'max_latency_ms_per_1k' .* must be a number > 0"),
        ({"bootstrap": {"enabled": "maybe"}}, r"'bootstrap.enabled' .* must be true or false. Got 'maybe'"),
        ([1, 2], r"gate policy must be a mapping of settings. Got list"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_policy_rejects_bad_values_naming_the_key(raw: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        GatePolicy.from_mapping(raw)  # type: ignore[arg-type]


def test_policy_metrics_must_suit_the_model(good: Exported, evaluation: pd.DataFrame) -> None:
    with pytest.raises(SpecError, match="'floors' metric of the gate policy 'rmse' does not apply to a binary model"):
        evaluate(candidate(good), None, evaluation, policy(floors={"rmse": 3}))
    with pytest.raises(SpecError, match="baseline kind 'mean' applies to regressors"):
        evaluate(candidate(good), None, evaluation, policy(baseline={"kind": "mean"}))


# -- evidence ---------------------------------------------------------------------------------------------
def test_evidence_is_written_atomically_and_is_self_contained(
    tmp_path: Path, good: Exported, weak: Exported, evaluation: pd.DataFrame
) -> None:
    storage = StorageRoot(str(tmp_path / "root"))
    frame = evaluation.copy()
    frame["origin"] = frame["origin"].replace({"EWR": "<script>alert(1)</script>"})
    decision = evaluate(candidate(good), champion(weak), frame, policy(slices={"columns": ["origin"], "floor": 0.5}))
    folder = evidence_location(storage, "flights", "2013-05-01", "cand")
    decision, evidence = write_evidence(storage, decision, folder)
    assert decision.evidence_uri == evidence.decision_uri == f"{folder}/decision.json"
    names = sorted(Path(p).name for p in storage.list_files(folder))
    assert names == ["decision.json", "model_card.html", "model_card.md"]
    record = json.loads(storage.read_bytes(evidence.decision_uri))
    assert record == json.loads(json.dumps(decision.to_dict()))
    assert record["passed"] is True and record["reasons"][0].keys() >= {"name", "passed", "observed", "threshold"}
    page = storage.read_bytes(evidence.html_uri).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page  # nothing fetched from outside
    card = storage.read_bytes(evidence.markdown_uri).decode()
    for section in ("## Evaluation data", "## Metrics", "## Checks", "## Slices", "## Parity, latency and size"):
        assert section in card
    assert f"{decision.candidate_metrics['roc_auc']:.4g}" in card
    # rerun of the same partition replaces the files in place, leaving no temporary names behind
    write_evidence(storage, decision, folder)
    assert len(storage.list_files(folder)) == 3
    assert not [p for p in (tmp_path / "root").rglob("*") if p.name.startswith(".tmp")]


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
    decision = evaluate(model_under_test, None, test_rows, policy(floors={"r2": 0.4}, max_parity_diff=1e-4))
    assert decision.passed and decision.primary_metric == "rmse"
    assert decision.baseline is not None and decision.baseline["kind"] == "mean"
    assert decision.candidate_metrics["rmse"] < decision.baseline["metrics"]["rmse"]
    assert decision.parity["measure"] == "max_rel_diff" and decision.parity["value"] < 1e-4
    assert decision.data["target_mean"] == pytest.approx(float(test_rows["cnt"].mean()))
    worse = evaluate(model_under_test, None, test_rows, policy(floors={"rmse": 10.0}))
    assert [c.name for c in worse.failed_checks] == ["floor:rmse"]  # a ceiling for a lower-is-better metric
