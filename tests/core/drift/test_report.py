"""Drift core: spec validation, parity with Evidently's DataDriftPreset, bad input, sampling, quality."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.drift import report as drift
from airflow_mlops.core.drift.report import DriftSpec, compute_drift
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot
from tests.support import drift as flights_drift
from tests.support.data import flights

FEATURES = {"numeric_features": flights_drift.NUMERIC, "categorical_features": flights_drift.CATEGORICAL}


# -- spec ----------------------------------------------------------------------------------------
def test_spec_coerces_templated_strings_and_fills_from_the_training_spec() -> None:
    spec = DriftSpec.from_mapping(
        {"drift_share": "0.3", "sample_size": "50000", "per_column_threshold": {"temp": "0.2"}, "html_report": "false"},
        flights_drift.training_spec(),
    )
    assert spec.drift_share == 0.3 and spec.sample_size == 50_000 and spec.html_report is False
    assert spec.numeric_features == tuple(flights_drift.NUMERIC) and spec.target == "arr_delayed_15"
    assert spec.classes == ("0", "1") and spec.primary_metric == "roc_auc"
    assert spec.threshold_for("temp", "numeric") == 0.2 and spec.threshold_for("humid", "numeric") is None


def test_method_and_threshold_resolve_like_evidently() -> None:
    spec = DriftSpec.from_mapping(
        {"method": "psi", "num_method": "ks", "per_column_method": {"dest": "chisquare"}, "threshold": 0.2,
         "cat_threshold": 0.3, "per_column_threshold": {"temp": 0.01}}
    )  # fmt: skip
    assert spec.method_for("temp", "numeric") == "ks"
    assert spec.method_for("carrier", "categorical") == "psi"
    assert spec.method_for("dest", "categorical") == "chisquare"
    assert spec.threshold_for("temp", "numeric") == 0.01
    assert spec.threshold_for("carrier", "categorical") == 0.3
    assert spec.threshold_for("humid", "numeric") == 0.2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"drift_share": "1.5"}, "'drift_share' parameter of DriftSpec must be a number in \\[0.0, 1.0\\]"),
        ({"method": "kolmogorov"}, "must name an Evidently stattest"),
        ({"per_column_method": {"temp": "nope"}}, "per_column_method\\['temp'\\]"),
        ({"sample_size": "ten"}, "'sample_size' parameter of DriftSpec must be an integer"),
        ({"min_rows": 0}, "'min_rows' parameter of DriftSpec must be an integer >= 1"),
        ({"colums": ["x"]}, "Unknown DriftSpec parameter\\(s\\) \\['colums'\\]"),
        ({"numeric_features": ["a"], "categorical_features": ["a"]}, "both numeric and categorical"),
        ({"task": "ranking"}, "must be binary, multiclass or regression"),
        ({"task": "regression", "quality_metric": "roc_auc"}, "'quality_metric' of DriftSpec must be one of"),
    ],
    ids=["share-range", "unknown-method", "per-column-method", "sample-size", "min-rows", "unknown-key",
         "both-kinds", "task", "metric-for-task"],
)  # fmt: skip
def test_bad_spec_is_refused_with_a_clear_message(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        DriftSpec.from_mapping(raw)


def test_a_method_that_does_not_fit_the_column_kind_is_refused() -> None:
    spec = DriftSpec.from_mapping({"numeric_features": ["temp"], "method": "chisquare"})
    with pytest.raises(SpecError, match="'chisquare' configured for column 'temp' does not accept numeric"):
        spec.method_for("temp", "numeric")


# -- parity with Evidently -------------------------------------------------------------------------
def test_the_stattest_table_matches_evidentlys_registry() -> None:
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    kinds = {"num": "numeric", "cat": "categorical"}
    registry = {
        name: frozenset(kinds[t.value] for t in types if t.value in kinds)
        for name, types in _registered_stat_tests.items()
        if any(t.value in kinds for t in types)
    }
    assert registry == drift.STATTESTS


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
    assert same.drift_share == 0.0
    moved = compute_drift(
        reference.assign(k=3.0), current.assign(k=4.0), DriftSpec.from_mapping({"numeric_features": ["k"]})
    )
    assert moved.features[0].drifted and moved.verdict == "drift"


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


# -- memory bound: column-wise Parquet reading and the stated sample ---------------------------------
def test_parquet_columns_are_read_one_at_a_time_and_sampled_by_row_group(tmp_path: Path) -> None:
    frame = flights_drift.with_weather(flights([5], sample=5000))
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)
    table = drift.open_table(str(path))
    rows = drift.sample_rows(table.num_rows, 1234, seed=3)
    assert rows is not None and len(rows) == 1234
    for column in ("temp", "dest", "sched_dep_ts"):
        expected = frame[column].iloc[rows].reset_index(drop=True)
        pd.testing.assert_series_equal(table.column(column, rows).reset_index(drop=True), expected, check_names=False)
    assert table.non_null_count("temp") == int(frame["temp"].notna().sum())


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


# -- predictions, target, quality -----------------------------------------------------------------
@pytest.fixture(scope="module")
def scored() -> tuple[pd.DataFrame, pd.DataFrame]:
    model, reference = flights_drift.model_and_reference()
    labelled = model.score(flights_drift.with_weather(flights([12], sample=4000)))
    return reference, labelled


def test_prediction_drift_target_drift_and_quality_on_a_labelled_batch(
    scored: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    reference, labelled = scored
    spec = DriftSpec.from_mapping({}, flights_drift.training_spec())
    result = compute_drift(reference, labelled, spec)
    assert [c.column for c in result.predictions] == ["prediction", "probability_1"]
    assert [c.kind for c in result.predictions] == ["categorical", "numeric"]
    assert result.target is not None and result.target.column == "arr_delayed_15"
    quality = result.quality
    assert quality is not None and quality.metric == "roc_auc" and quality.baseline_source == "reference"
    assert quality.labelled_rows == int(labelled["arr_delayed_15"].notna().sum())
    assert quality.current is not None and quality.baseline is not None
    assert quality.drop == pytest.approx(quality.baseline - quality.current, abs=1e-6)
    # December's delay surge: many more late arrivals than in January-March.
    assert quality.current_metrics["positive_rate"] > quality.reference_metrics["positive_rate"] + 0.05  # type: ignore[operator]


def test_serving_log_without_labels_has_no_quality(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, labelled = scored
    result = compute_drift(
        reference, labelled.drop(columns=["arr_delayed_15"]), DriftSpec.from_mapping({}, flights_drift.training_spec())
    )
    assert result.target is None and result.quality is None and result.labelled_rows == 0
    assert result.schema_skew.any is False


def test_quality_baseline_from_the_spec(scored: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    reference, labelled = scored
    spec = DriftSpec.from_mapping({"quality_baseline": "0.9", "quality_metric": "f1"}, flights_drift.training_spec())
    quality = compute_drift(reference, labelled, spec).quality
    assert quality is not None and quality.baseline == 0.9 and quality.baseline_source == "spec"
    assert quality.metric == "f1" and quality.drop == pytest.approx(0.9 - quality.current, abs=1e-6)  # type: ignore[operator]


def test_regression_quality_drop_is_positive_when_error_grows() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(100, 20, 3000)
    reference = pd.DataFrame({"x": y + rng.normal(0, 5, 3000), "cnt": y, "prediction": y + rng.normal(0, 5, 3000)})
    current = pd.DataFrame({"x": y + rng.normal(0, 5, 3000), "cnt": y, "prediction": y + rng.normal(0, 15, 3000)})
    spec = DriftSpec.from_mapping({"task": "regression", "target": "cnt", "numeric_features": ["x"]})
    quality = compute_drift(reference, current, spec).quality
    assert quality is not None and quality.metric == "rmse" and not quality.higher_is_better
    assert quality.current > quality.baseline and quality.drop > 5  # type: ignore[operator]


def test_multiclass_quality() -> None:
    labels = np.array(["a", "b", "c"] * 400)
    reference = pd.DataFrame({"x": np.arange(1200) % 7, "y": labels, "prediction": labels})
    wrong = np.roll(labels, 1)
    current = pd.DataFrame(
        {"x": np.arange(1200) % 7, "y": labels, "prediction": np.where(np.arange(1200) % 2, labels, wrong)}
    )
    spec = DriftSpec.from_mapping(
        {"task": "multiclass", "target": "y", "numeric_features": ["x"], "classes": ["a", "b", "c"]}
    )
    quality = compute_drift(reference, current, spec).quality
    assert quality is not None and quality.metric == "f1_macro" and quality.baseline == 1.0
    assert quality.current_metrics["accuracy"] == pytest.approx(0.5)


# -- reports and outputs ---------------------------------------------------------------------------
def test_reports_and_summary_are_written_under_the_root(
    tmp_path: Path, scored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, labelled = scored
    labelled = labelled.assign(visib=np.nan)  # an empty column must not reach Evidently (it would refuse it)
    root = StorageRoot(str(tmp_path))
    spec = DriftSpec.from_mapping({"report_sample_size": 2000}, flights_drift.training_spec())
    outcome = drift.check_batch(root, reference, labelled, spec, pipeline="flights", partition="2013-12-01")
    outputs = outcome.outputs
    assert outputs.summary_uri == f"{tmp_path}/flights/drift/2013-12-01/labelled/summary.json"
    assert outputs.report_uri and outputs.quality_report_uri
    for uri in (outputs.report_uri, outputs.quality_report_uri):
        html = Path(uri).read_text(encoding="utf-8")
        assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
    assert "sched_dep_time" in Path(outputs.report_uri).read_text(encoding="utf-8")
    summary = json.loads(Path(outputs.summary_uri).read_text())
    assert summary["result"] == json.loads(json.dumps(outcome.result.to_dict()))
    assert summary["report_uri"] == outputs.report_uri and summary["spec"]["report_sample_size"] == 2000
    assert [p.name for p in Path(outputs.summary_uri).parent.iterdir() if p.name.startswith(".tmp")] == []


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
