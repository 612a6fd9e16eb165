"""Drift comparison: parity with Evidently's DataDriftPreset, bad input as verdicts, sampling, and the
training stem's artifacts as the reference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.drift import DriftPolicy, DriftSpec, compute_drift, decide, observe
from airflow_mlops.core.errors import DataError, SourceNotFoundError
from tests.support import drift as flights_drift
from tests.support.data import flights

FEATURES = {"numeric_features": flights_drift.NUMERIC, "categorical_features": flights_drift.CATEGORICAL}


# -- parity with Evidently -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flights_with_weather() -> pd.DataFrame:
    frame = flights_drift.with_weather(flights())
    frame["is_jfk"] = (frame["origin"] == "JFK").astype("int64")  # two values: Evidently's Z-test below 1,000 rows
    frame["quarter"] = frame["minute"] // 15  # four values: chi-square below 1,000 rows
    return frame


def _evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, numeric: list[str], categorical: list[str]):  # type: ignore[no-untyped-def]
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    columns = numeric + categorical
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        current_data=Dataset.from_pandas(current[columns], data_definition=definition),
        reference_data=Dataset.from_pandas(reference[columns], data_definition=definition),
    )
    found = snapshot.dict()
    scores = {m["config"]["column"]: m["value"] for m in found["metrics"] if "column" in m["config"]}
    share = next(m["value"]["share"] for m in found["metrics"] if "DriftedColumnsCount" in m["metric_name"])
    drifted = {
        t["metric_config"]["params"]["column"]: t["status"] == "FAIL"
        for t in found["tests"]
        if t["name"].startswith("Value Drift for column")
    }
    return scores, drifted, share


@pytest.mark.parametrize("month", [4, 12], ids=["april", "december-surge"])
def test_verdicts_equal_evidentlys_on_full_flights_months(flights_with_weather: pd.DataFrame, month: int) -> None:
    """Reference January-March (80k rows) against a whole month: same scores, verdicts and share."""
    frame = flights_with_weather
    reference, current = frame[frame["month"] <= 3], frame[frame["month"] == month]
    result = compute_drift(reference, current, DriftSpec.from_mapping(FEATURES))
    scores, drifted, share = _evidently_drift(reference, current, flights_drift.NUMERIC, flights_drift.CATEGORICAL)
    assert {c.column: c.score for c in result.features} == pytest.approx(scores, rel=1e-9)
    assert {c.column: c.drifted for c in result.features} == drifted
    assert result.drift_share == pytest.approx(share)
    assert result.reference_rows_compared == len(reference)  # the default bound keeps every row here


def test_small_reference_uses_evidentlys_small_sample_tests(flights_with_weather: pd.DataFrame) -> None:
    """Below 1,000 reference rows Evidently switches to K-S, chi-square and the Z-test: so do we."""
    frame = flights_with_weather
    reference = frame[frame["month"] == 1].sample(800, random_state=1)
    current = frame[frame["month"] == 7].sample(600, random_state=2)
    numeric, categorical = ["temp", "is_jfk", "quarter"], ["carrier", "origin"]
    result = compute_drift(
        reference, current, DriftSpec.from_mapping({"numeric_features": numeric, "categorical_features": categorical})
    )
    methods = {c.column: c.method for c in result.features}
    assert methods == {
        "temp": "ks",
        "is_jfk": "z",
        "quarter": "chisquare",
        "carrier": "chisquare",
        "origin": "chisquare",
    }
    scores, drifted, _ = _evidently_drift(reference, current, numeric, categorical)
    assert {c.column: c.score for c in result.features} == pytest.approx(scores, rel=1e-9)
    assert {c.column: c.drifted for c in result.features} == drifted


# -- bad input: verdicts, not crashes ---------------------------------------------------------------
@pytest.fixture(scope="module")
def april() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = flights_drift.with_weather(flights([1, 2, 3, 4], sample=6000))
    return frame[frame["month"] <= 3].reset_index(drop=True), frame[frame["month"] == 4].reset_index(drop=True)


def test_reference_missing_is_a_clear_error(tmp_path: Path, april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    missing = tmp_path / "champion" / "reference.parquet"
    with pytest.raises(SourceNotFoundError, match=r"The reference '.*champion/reference\.parquet' does not exist"):
        compute_drift(str(missing), april[1], DriftSpec.from_mapping(FEATURES))


def test_reference_without_rows_is_a_clear_error(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    with pytest.raises(DataError, match="has no rows: there is nothing to compare against"):
        compute_drift(april[0].iloc[:0], april[1], DriftSpec.from_mapping(FEATURES))


def test_unreadable_reference_is_a_clear_error(tmp_path: Path, april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    bad = tmp_path / "reference.parquet"
    bad.write_text("not parquet")
    with pytest.raises(DataError, match=r"The reference '.*reference.parquet' could not be read as Parquet"):
        compute_drift(str(bad), april[1], DriftSpec.from_mapping(FEATURES))


def test_column_sets_that_differ_are_schema_skew(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = april
    current = current.drop(columns=["temp"]).assign(extra=1)
    result = compute_drift(reference, current, DriftSpec.from_mapping(FEATURES))
    assert result.verdict == "schema_skew"
    assert result.schema_skew.missing_in_current == ("temp",)
    assert "temp" not in [c.column for c in result.features]
    assert result.drift_share is not None and "schema skew: missing in the current batch: ['temp']" in result.reasons


def test_without_a_spec_every_shared_column_is_compared_and_the_rest_is_skew(
    april: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference = april[0][["temp", "carrier", "distance"]]
    current = april[1][["temp", "carrier", "dest"]]
    result = compute_drift(reference, current, DriftSpec.from_mapping({}))
    assert [(c.column, c.kind) for c in result.features] == [("carrier", "categorical"), ("temp", "numeric")]
    assert result.schema_skew.missing_in_current == ("distance",)
    assert result.schema_skew.missing_in_reference == ("dest",)


def test_numeric_feature_holding_text_is_schema_skew(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = april
    current = current.assign(distance=current["distance"].astype(str) + " mi")
    result = compute_drift(reference, current, DriftSpec.from_mapping(FEATURES))
    assert result.verdict == "schema_skew"
    assert [c for c, _, _ in result.schema_skew.type_mismatch] == ["distance"]


def test_all_null_column_drifts_and_is_counted(tmp_path: Path, april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = april
    current = current.assign(temp=np.nan, carrier=None)
    path = tmp_path / "current.parquet"
    current.to_parquet(path)  # carrier becomes an all-null column of Arrow type null
    for batch in (current, str(path)):
        result = compute_drift(reference, batch, DriftSpec.from_mapping(FEATURES))
        temp, carrier = result.column("temp"), result.column("carrier")
        assert temp is not None and carrier is not None
        assert (temp.status, temp.drifted, temp.current_missing_share) == ("empty_current", True, 1.0)
        assert (carrier.status, carrier.drifted) == ("empty_current", True)
        assert {"temp", "carrier"} <= set(result.drifted_columns)
        assert result.verdict in ("ok", "drift")


def test_column_null_on_both_sides_is_not_counted(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = (f.assign(precip=np.nan) for f in april)
    result = compute_drift(reference, current, DriftSpec.from_mapping(FEATURES))
    precip = result.column("precip")
    assert precip is not None and (precip.status, precip.drifted) == ("empty_both", False)
    counted = len(flights_drift.NUMERIC) + len(flights_drift.CATEGORICAL) - 1
    assert result.drift_share == len(result.drifted_columns) / counted


def test_constant_columns(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = april
    same = compute_drift(
        reference.assign(k=3.0, c="x"), current.assign(k=3.0, c="x"),
        DriftSpec.from_mapping({"numeric_features": ["k"], "categorical_features": ["c"]}),
    )  # fmt: skip
    assert [(c.column, c.drifted) for c in same.features] == [("k", False), ("c", False)]
    # Constant in the reference: tested and reported, but left out of the drift share.
    assert same.left_out == ("k", "c") and same.drift_share is None
    moved = compute_drift(
        reference.assign(k=3.0), current.assign(k=4.0), DriftSpec.from_mapping({"numeric_features": ["k"]})
    )
    assert moved.features[0].drifted and moved.features[0].constant_in_reference
    assert moved.verdict == "ok" and moved.drift_share is None and moved.left_out == ("k",)
    assert "left out: constant in the reference: k" in moved.reasons


@pytest.mark.parametrize("rows", [0, 1], ids=["empty-batch", "one-row"])
def test_tiny_batches_are_insufficient_data(april: tuple[pd.DataFrame, pd.DataFrame], rows: int) -> None:
    result = compute_drift(april[0], april[1].iloc[:rows], DriftSpec.from_mapping(FEATURES))
    assert result.verdict == "insufficient_data" and result.drift_share is None
    assert result.reasons == (f"the current batch has {rows} rows; at least 100 are needed",)


def test_one_row_batch_still_computes_when_allowed(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    result = compute_drift(april[0], april[1].iloc[:1], DriftSpec.from_mapping({**FEATURES, "min_rows": 1}))
    assert all(c.status == "tested" and c.current_values == 1 for c in result.features if c.column != "precip")
    assert result.drift_share is not None


def test_categorical_column_with_only_new_values(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = april
    current = current.assign(carrier=[f"NEW{i % 7}" for i in range(len(current))])
    result = compute_drift(reference, current, DriftSpec.from_mapping(FEATURES))
    carrier = result.column("carrier")
    assert carrier is not None and carrier.status == "tested" and carrier.drifted
    assert (carrier.new_values, carrier.new_value_share) == (7, 1.0)
    assert carrier.detail == "every current value is a category the reference never had"
    assert set(carrier.new_values_sample) == {f"NEW{i}" for i in range(7)}


def test_no_comparable_column_is_a_clear_error() -> None:
    stamps = pd.DataFrame({"ts": pd.date_range("2013-01-01", periods=200, freq="h")})
    with pytest.raises(DataError, match="No feature column could be compared"):
        compute_drift(stamps, stamps, DriftSpec.from_mapping({}))


def test_categories_compare_as_text_across_file_types(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """1 in an int column and 1.0 in a nullable float column are the same category."""
    reference = april[0].assign(code=np.arange(len(april[0])) % 3)
    current = april[1].assign(code=(np.arange(len(april[1])) % 3).astype("float64"))
    result = compute_drift(reference, current, DriftSpec.from_mapping({"categorical_features": ["code"]}))
    assert result.features[0].new_values == 0 and not result.features[0].drifted


# -- memory bound: the stated sample ---------------------------------------------------------------
def test_sampling_keeps_the_full_datas_method_choice_and_is_exact_under_the_bound(
    april: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, current = april
    exact = compute_drift(reference, current, DriftSpec.from_mapping({**FEATURES, "sample_size": None}))
    bounded = compute_drift(reference, current, DriftSpec.from_mapping({**FEATURES, "sample_size": len(reference)}))
    assert bounded.to_dict() == exact.to_dict()
    sampled = compute_drift(reference, current, DriftSpec.from_mapping({**FEATURES, "sample_size": 600}))
    assert sampled.reference_rows_compared == 600 and sampled.current_rows_compared == 600
    # 600 rows alone would pick K-S / chi-square; the method is chosen from the full reference count.
    assert [c.method for c in sampled.features] == [c.method for c in exact.features]


# -- the champion's artifacts as the training stem writes them ------------------------------------------
def test_training_artifacts_plug_into_the_drift_check() -> None:
    """Reference and spec artifact from ``train_model``; a serving log scored through the ONNX contract."""
    from airflow_mlops.core.onnx_model import OnnxModel, inputs_from_spec
    from airflow_mlops.core.training.run import train_model
    from airflow_mlops.core.training.spec import TrainingSpec

    training = {
        "task": "binary", "target": "arr_delayed_15",
        "features": {"numeric": ["hour", "distance"], "categorical": ["carrier", "origin"]},
        "estimator": {"params": {"n_estimators": 30, "num_leaves": 15}},
        "split": {"method": "time", "column": "sched_dep_ts"}, "reference_rows": 2000, "seed": 1,
    }  # fmt: skip
    trained = train_model(flights([1], sample=5000), TrainingSpec.from_mapping(training))
    artifact = trained.spec_artifact()
    july = flights([7], sample=3000)
    model = OnnxModel(trained.onnx_bytes, inputs_from_spec(artifact), expected_sha256=trained.onnx_sha256)
    outputs = model.run(july)
    scored = july.assign(prediction=outputs["label"], **{
        f"probability_{c}": outputs["probabilities"][:, i] for i, c in enumerate(artifact["classes"])
    })  # fmt: skip
    spec = DriftSpec.from_mapping({}, json.loads(json.dumps(artifact)))
    assert spec.quality_metric == "roc_auc" and spec.quality_baseline_from == "training"
    assert spec.quality_baseline == pytest.approx(artifact["metrics"]["test"]["roc_auc"])
    serving = compute_drift(trained.reference, scored.drop(columns=["arr_delayed_15"]), spec)
    assert [c.column for c in serving.features] == ["hour", "distance", "carrier", "origin"]
    assert [c.column for c in serving.predictions] == ["prediction", "probability_1"]
    assert serving.schema_skew.any is False and serving.quality is None
    labelled = compute_drift(trained.reference, scored, spec)
    assert labelled.quality is not None and labelled.quality.baseline_source == "training"
    assert labelled.quality.labelled_rows == int(scored["arr_delayed_15"].notna().sum())


# -- drift that goes quiet, and every column watched -------------------------------------------------------
@pytest.fixture(scope="module")
def same_months(scored: tuple[pd.DataFrame, pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two halves of the champion's January-March reference: no feature drifts between them."""
    reference = scored[0]
    return reference.iloc[::2].reset_index(drop=True), reference.iloc[1::2].reset_index(drop=True)


def test_a_feature_constant_in_the_reference_is_left_out_of_the_share(
    same_months: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    """A placeholder (visibility 10 before the weather feed came online) varies later: tested, named, not counted."""
    reference, current = same_months
    spec = DriftSpec.from_mapping({"html_report": False}, flights_drift.training_spec())
    result = compute_drift(reference.assign(visib=10.0), current, spec)
    visib = result.column("visib")
    assert visib is not None and visib.drifted and visib.constant_in_reference and visib.reference_top_share == 1.0
    assert result.left_out == ("visib",) and "visib" not in result.drifted_columns
    assert "left out: constant in the reference: visib" in result.reasons
    counted = len(flights_drift.NUMERIC) + len(flights_drift.CATEGORICAL) - 1
    assert result.drift_share == len(result.drifted_columns) / counted < 0.15
    # Counted, the placeholder would have pushed the share over a 0.15 policy; left out, the policy stays quiet.
    assert (len(result.drifted_columns) + 1) / (counted + 1) >= 0.15
    decision, _ = decide(DriftPolicy.from_mapping({"drift_share": 0.15}), {}, observe(result, "q2", "2013-04-01", "v1"))
    assert decision.status == "ok" and not decision.retrain
    # one value above 99 % of the non-null rows counts as constant too; at 98 % it is counted again
    almost = reference.assign(visib=10.0)
    almost.loc[: len(almost) // 200 - 1, "visib"] = 3.0  # 0.5 % of the rows
    assert compute_drift(almost, current, spec).left_out == ("visib",)
    mixed = reference.assign(visib=10.0)
    mixed.loc[: len(mixed) // 50, "visib"] = 3.0  # 2 % of the rows
    assert compute_drift(mixed, current, spec).left_out == ()


def test_weighted_share_weighs_drifted_features_by_importance(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, current = april
    spec = DriftSpec.from_mapping(FEATURES)
    plain = compute_drift(reference, current, spec)
    assert plain.weighted_drift_share == plain.drift_share and plain.weighting.startswith("plain")
    drifted = set(plain.drifted_columns)
    features = [c.column for c in plain.features]
    importance = {c: (0.9 if c == features[0] else 0.1 / (len(features) - 1)) for c in features}
    weighted = compute_drift(reference, current, spec, importance=importance)
    expected = sum(v for c, v in importance.items() if c in drifted) / sum(importance.values())
    assert weighted.weighting == "importance" and weighted.weighted_drift_share == pytest.approx(expected, abs=1e-6)
    assert weighted.drift_share == plain.drift_share
    assert weighted.to_dict()["weighted_drift_share"] == weighted.weighted_drift_share


def test_a_non_feature_column_that_shifts_is_input_drift(same_months: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """A tariff change in a fee column the model does not read: reported with its test and score, not counted."""
    reference, current = same_months
    reference = reference.assign(fee=reference["distance"] * 0.10)
    current = current.assign(fee=current["distance"] * 0.13)
    spec = DriftSpec.from_mapping({"html_report": False}, flights_drift.training_spec())
    result = compute_drift(reference, current, spec)
    (fee,) = result.inputs
    assert fee.column == "fee" and fee.role == "input" and fee.drifted and fee.method == "wasserstein"
    assert fee.score is not None and fee.score > fee.threshold
    assert [c.column for c in result.input_drift] == ["fee"] and "fee" not in result.drifted_columns
    assert result.scores()["fee"] == fee.score
    decision, _ = decide(DriftPolicy(drift_share=0.5), {}, observe(result, "q2", "2013-04-01", "v1"))
    assert decision.status == "ok" and not decision.retrain and decision.conditions["input_drift"] == []
    opted_in = DriftPolicy.from_mapping({"drift_share": 0.5, "retrain_on_input_drift": "true"})
    decision, _ = decide(opted_in, {}, observe(result, "q2", "2013-04-01", "v1"))
    assert decision.retrain and decision.reasons == ("input drift in column(s) the model does not read: ['fee']",)
    assert result.to_dict()["input_drift"] == ["fee"]
    named = DriftSpec.from_mapping({"monitor_columns": ["dep_delay"]}, flights_drift.training_spec())
    assert compute_drift(reference, current, named).inputs == ()  # only the named columns are watched
