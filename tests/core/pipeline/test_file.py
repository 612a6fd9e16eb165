"""Pipeline files: the shipped ones load, bad ones fail naming the key, landing paths resolve."""

from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.pipeline import PipelineFile, discover, pipeline_of_asset_uri

REPO = Path(__file__).resolve().parents[3]
FOLDER = REPO / "include" / "pipelines"


def test_shipped_pipeline_files_load_with_their_stages() -> None:
    found = {p.name: p for p in discover(FOLDER)}
    assert sorted(found) == ["bike_sharing", "flights_delay"]
    flights = found["flights_delay"]
    assert flights.model_name == "flights_delay" and flights.serving and flights.schedule.text == "@monthly"
    assert flights.schedule.dag_id == "batch_serving"
    assert flights.suite == REPO / "include" / "expectations" / "flights.json" and flights.suite.is_file()
    assert "arr_delayed_15" in flights.passthrough_columns
    assert flights.drift_policy["trigger_columns"] == ["probability_1", "arr_delayed_15"]
    assert flights.gate_policy["floors"] == {"roc_auc": 0.6} and flights.on_reject == "skip"
    assert not found["bike_sharing"].serving and found["bike_sharing"].suite is None


def test_the_flights_pipeline_keeps_what_its_ml_test_score_counts() -> None:
    """docs/ml_test_score.md scores these settings of the flights file: turning one off lowers the score."""
    from airflow_mlops.core.gating.policy import GatePolicy
    from airflow_mlops.core.training.spec import TrainingSpec

    flights = {p.name: p for p in discover(FOLDER)}["flights_delay"]
    slices = GatePolicy.from_mapping(flights.gate_policy).slices
    assert slices.columns == ("origin",) and slices.floor is not None and slices.max_gap is not None  # M6
    spec = TrainingSpec.from_yaml(flights.path)
    assert spec.search is not None and spec.search.method == "tpe"  # M3: every parameter that matters
    tuned = {"learning_rate", "num_leaves", "max_depth", "min_child_samples", "reg_lambda", "reg_alpha"}
    assert tuned | {"subsample", "colsample_bytree"} <= set(spec.search.space)
    assert spec.ablation is not None  # D2
    baseline = GatePolicy.from_mapping(flights.gate_policy).baseline
    assert baseline.enabled and baseline.kinds("binary")[0] == "linear" and baseline.min_gain.value > 0  # M5
    assert flights.business_metric and flights.proxy_check  # M2
    assert flights.spec_review != "off"  # M1
    assert {"dep_delay", "arr_delay", "arr_delayed_15"} <= set(flights.feature_requirements.forbidden)  # D4
    assert flights.feature_cost  # D3
    assert flights.staleness_impact["max_versions"] >= 2  # M4: models of different ages on the same batch


def test_the_training_section_is_the_training_spec() -> None:
    from airflow_mlops.core.training.run import load_spec

    spec = load_spec(str(FOLDER / "flights_delay.yaml"))
    assert spec.target == "arr_delayed_15" and spec.task == "binary"


@pytest.mark.parametrize(
    ("landing", "expected"),
    [
        ("landing", "s3://b/p/flights_delay/landing"),
        ("/data/landing", "/data/landing"),
        ("file:///data/landing", "/data/landing"),
        ("s3://raw/flights", "s3://raw/flights"),
    ],
    ids=["relative", "absolute", "file-url", "s3"],
)
def test_landing_uri_is_under_the_pipeline_folder_unless_absolute(landing: str, expected: str) -> None:
    spec = PipelineFile.from_mapping(
        "flights_delay", {"training": {}, "data": {"landing": landing}}, path=Path("x.yaml"), project=REPO
    )
    assert spec.landing_uri("s3://b/p/") == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"data": {}}, "has no 'training' section"),
        ({"training": {}, "serving": {"schedul": "@daily"}}, r"serving has unknown key\(s\) \['schedul'\]"),
        ({"training": {}, "gate": {"on_reject": "maybe"}}, "gate.on_reject must be 'skip' or 'fail'"),
        ({"training": {}, "drift": ["x"]}, "drift must be a mapping"),
        ({"training": {}, "model_name": ""}, "model_name must be a non-empty string"),
    ],
    ids=["no-training", "typo", "on-reject", "not-mapping", "empty-name"],
)
def test_bad_pipeline_files_fail_naming_the_key(raw: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        PipelineFile.from_mapping("p", raw, path=Path("p.yaml"), project=REPO)


def test_missing_files_and_folders_are_named(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        PipelineFile.from_yaml(tmp_path / "nope.yaml")
    with pytest.raises(SourceNotFoundError, match="pipeline folder"):
        discover(tmp_path / "nope")
    (tmp_path / "bad.yaml").write_text("training: [\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        discover(tmp_path, tmp_path)


def test_asset_uris_name_their_pipeline() -> None:
    assert pipeline_of_asset_uri("x-mlops://flights_delay/drift") == "flights_delay"
    assert pipeline_of_asset_uri("s3://bucket/key") is None


def test_the_monitoring_section_sets_alerts_staleness_and_reproducibility() -> None:
    found = {p.name: p for p in discover(FOLDER)}
    flights, bikes = found["flights_delay"], found["bike_sharing"]
    assert (flights.max_model_age, flights.max_data_age, flights.retrain_when_stale) == ("90d", "75d", True)
    assert flights.alerts_conn_id == bikes.alerts_conn_id == "ml_alerts"
    assert flights.check_reproducibility is False and bikes.check_reproducibility is False
    assert bikes.max_model_age is None and bikes.max_data_age is None
    assert flights.staleness_impact == {"max_cost_per_month": 0.01, "max_versions": 3, "min_versions": 2}
    assert bikes.staleness_impact == {"max_cost_per_month": 0.01, "max_versions": 4, "min_versions": 2}  # defaults


@pytest.mark.parametrize(
    ("monitoring", "message"),
    [
        ({"max_age": "30d"}, r"monitoring has unknown key\(s\) \['max_age'\]"),
        ({"reproducibility": "yes"}, "monitoring.reproducibility must be true or false. Got 'yes'"),
        ({"max_data_age": True}, "monitoring.max_data_age must be a duration such as '75d'"),
        ({"alerts": ""}, "monitoring.alerts must be a non-empty string"),
        (
            {"staleness_impact": {"max_cost_per_month": "high"}},
            "monitoring.staleness_impact: The 'max_cost_per_month' parameter must be a number >= 0. Got 'high'",
        ),
        ({"staleness_impact": {"versions": 3}}, r"monitoring.staleness_impact: Unknown key\(s\) \['versions'\]"),
        ({"staleness_impact": 0.01}, "monitoring.staleness_impact: It must be a mapping"),
        (
            {"feature_cost": {"max_dimension_lag": "stale"}},
            "monitoring.feature_cost: The 'max_dimension_lag' parameter must be a duration",
        ),
        (
            {"feature_cost": {"max_unmatched_share": 2}},
            "monitoring.feature_cost: The 'max_unmatched_share' parameter must be a number >= 0 and <= 1",
        ),
        ({"feature_cost": {"repeats": 0}}, "monitoring.feature_cost: The 'repeats' parameter must be an integer"),
        ({"feature_cost": {"max_lag": "1d"}}, r"monitoring.feature_cost has unknown key\(s\) \['max_lag'\]"),
    ],
)
def test_a_bad_monitoring_setting_is_refused_naming_it(monitoring: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        PipelineFile.from_mapping("p", {"training": {}, "monitoring": monitoring}, path=Path("p.yaml"), project=REPO)


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("{}", "warn"),
        ("{spec_review: require}", "require"),
        ("{spec_review: WARN}", "warn"),
        ("{spec_review: off}", "off"),  # YAML 1.1 reads a bare off as false
        ("{spec_review: 'off'}", "off"),
    ],
    ids=["default", "require", "any-case", "bare-off", "quoted-off"],
)
def test_spec_review_is_require_warn_or_off(tmp_path: Path, yaml_text: str, expected: str) -> None:
    file = tmp_path / "include" / "pipelines" / "p.yaml"
    file.parent.mkdir(parents=True)
    file.write_text(f"training: {{}}\nmonitoring: {yaml_text}\n")
    assert PipelineFile.from_yaml(file).spec_review == expected


@pytest.mark.parametrize("value", ["block", True, 1])
def test_a_bad_spec_review_is_refused_naming_it(value: object) -> None:
    with pytest.raises(SpecError, match=r"monitoring.spec_review must be 'require', 'warn' or 'off'"):
        PipelineFile.from_mapping(
            "p", {"training": {}, "monitoring": {"spec_review": value}}, path=Path("p.yaml"), project=REPO
        )


def test_the_flights_pipeline_warns_about_an_unreviewed_spec() -> None:
    assert {p.name: p.spec_review for p in discover(FOLDER)} == {"bike_sharing": "warn", "flights_delay": "warn"}


def test_the_monitoring_section_sets_the_feature_cost_check() -> None:
    from airflow_mlops.core.feature_cost import CostPolicy

    found = {p.name: p for p in discover(FOLDER)}
    flights = found["flights_delay"]
    assert flights.feature_cost == {"max_cost_ratio": 3, "min_cost_share": 0.02}
    assert CostPolicy.from_mapping(flights.feature_cost) == CostPolicy(max_cost_ratio=3.0, min_cost_share=0.02)
    assert found["bike_sharing"].feature_cost == {}  # the check runs with its defaults
    with pytest.raises(SpecError, match=r"monitoring.feature_cost has unknown key\(s\) \['max_ratio'\]"):
        PipelineFile.from_mapping(
            "p", {"training": {}, "monitoring": {"feature_cost": {"max_ratio": 3}}}, path=Path("p.yaml"), project=REPO
        )


def test_the_serving_section_names_the_non_feature_columns_watched_for_drift() -> None:
    def load(serving: dict[str, object]) -> PipelineFile:
        return PipelineFile.from_mapping("p", {"training": {}, "serving": serving}, path=Path("p.yaml"), project=REPO)

    assert load({"monitor_columns": ["fee", "surcharge"]}).monitor_columns == ("fee", "surcharge")
    assert load({}).monitor_columns is None  # every column the batch has besides the features


def test_the_serving_section_chooses_the_runtime() -> None:
    def load(serving: dict[str, object]) -> PipelineFile:
        return PipelineFile.from_mapping("p", {"training": {}, "serving": serving}, path=Path("p.yaml"), project=REPO)

    assert load({}).runtime == "onnx"
    assert load({"runtime": "compiled"}).runtime == "compiled"
    with pytest.raises(SpecError, match=r"serving\.runtime must be"):
        load({"runtime": "jit"})


def test_the_gate_section_sets_the_canary_and_refuses_one_without_a_shadow() -> None:
    def read(gate: dict[str, object], serving: dict[str, object] | None = None) -> PipelineFile:
        raw = {"training": {}, "gate": gate, **({"serving": serving} if serving is not None else {})}
        return PipelineFile.from_mapping("p", raw, path=Path("p.yaml"), project=REPO)

    assert read({}).canary == {} and all(p.canary == {} for p in discover(FOLDER))  # off unless asked
    canary = read({"canary_batches": 2, "canary": {"max_quality_drop": 0.02}}, {}).canary
    assert (canary["batches"], canary["min_agreement"], canary["max_quality_drop"], canary["max_batches"]) == (
        2, 0.9, 0.02, 4)  # fmt: skip
    with pytest.raises(SpecError, match=r"p.yaml: gate.canary_batches needs a 'serving' section with shadow: true"):
        read({"canary_batches": 2}, {"shadow": False})
    with pytest.raises(SpecError, match=r"p.yaml: gate.canary_batches must be an integer in \[0, 24\]. Got -1"):
        read({"canary_batches": -1}, {})
