"""Feature requirements: declared in the pipeline file, refused when it is read and at every training."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.pipeline import FeatureRequirements, PipelineFile, discover, suite_columns
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import feature_samples, parquet_bytes, run_training
from airflow_mlops.core.training.spec import TrainingSpec
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[3]
FOLDER = REPO / "include" / "pipelines"
SUITE = REPO / "include" / "expectations" / "flights.json"


def flights_file() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((FOLDER / "flights_delay.yaml").read_text())
    return document


def read(raw: dict[str, Any], name: str = "flights_delay") -> PipelineFile:
    return PipelineFile.from_mapping(name, raw, path=Path(f"{name}.yaml"), project=REPO)


def test_the_shipped_pipeline_files_declare_requirements_and_meet_them() -> None:
    found = {p.name: p for p in discover(FOLDER)}
    flights_rules = found["flights_delay"].feature_requirements
    assert {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time", "arr_delayed_15"} <= set(
        flights_rules.forbidden
    )
    assert flights_rules.serving_columns == suite_columns(SUITE) and len(flights_rules.serving_columns) == 22
    assert flights_rules.serving_source == "the validation suite flights.json"
    bike_rules = found["bike_sharing"].feature_requirements
    assert {"casual", "registered", "cnt"} <= set(bike_rules.forbidden) and bike_rules.serving_columns is None
    for pipeline in found.values():
        spec = TrainingSpec.from_yaml(pipeline.path)
        produced, read = spec.transforms.outputs, spec.transforms.readers()
        assert pipeline.feature_requirements.violations(spec.features, produced=produced, read=read) == []
        assert FeatureRequirements.from_mapping(pipeline.feature_requirements.to_dict()) == (
            pipeline.feature_requirements
        )


@pytest.mark.parametrize(
    ("feature", "message"),
    [
        ("dep_delay", r"feature 'dep_delay' breaks forbidden: known only after departure"),
        ("tailnum", r"feature 'tailnum' breaks forbidden: the aircraft that actually flew"),
        (
            "dep_delay_minutes",
            r"feature 'dep_delay_minutes' breaks forbidden_patterns '\^\(dep\|arr\)_': actual departure and arrival",
        ),
        ("weather_score", r"feature 'weather_score' breaks serving_columns: not a column of the validation suite"),
    ],
    ids=["forbidden", "judged", "pattern", "not-served"],
)
def test_a_pipeline_file_whose_feature_breaks_a_requirement_is_refused_naming_both(feature: str, message: str) -> None:
    raw = flights_file()
    raw["training"]["features"]["numeric"].append(feature)
    with pytest.raises(SpecError, match=message) as refused:
        read(raw)
    assert str(refused.value).startswith("flights_delay.yaml: ")  # the file, then what to do about it
    assert str(refused.value).endswith("change feature_requirements if the requirement no longer holds.")


def test_every_broken_requirement_is_listed_at_once() -> None:
    raw = flights_file()
    raw["training"]["features"]["numeric"] += ["arr_delay", "air_time"]
    with pytest.raises(SpecError, match=r"3 feature requirement\(s\) broken") as refused:
        read(raw)
    message = str(refused.value)
    assert "'arr_delay' breaks forbidden" in message and "'arr_delay' breaks forbidden_patterns" in message
    assert "'air_time' breaks forbidden: known only after arrival" in message


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (["dep_delay"], "must be a mapping"),
        ({"forbidden": ["dep_delay"]}, r"forbidden must map each column to the reason"),
        ({"forbidden": {"dep_delay": ""}}, r"'dep_delay' needs its reason"),
        ({"forbidden_patterns": {"(dep": "x"}}, r"'\(dep' is not a valid regular expression"),
        ({"serving_columns": "all"}, r"serving_columns must be 'suite' or a list of column names"),
        ({"personal_data": "yes"}, r"personal_data must be true or false"),
        ({"forbiden": {"x": "y"}}, r"unknown key\(s\) \['forbiden'\]"),
    ],
    ids=["not-mapping", "no-reasons", "empty-reason", "bad-regex", "bad-serving", "bad-flag", "typo"],
)
def test_a_malformed_section_is_refused_naming_the_key(section: Any, message: str) -> None:
    raw = flights_file()
    raw["feature_requirements"] = section
    with pytest.raises(SpecError, match=message):
        read(raw)


def test_serving_columns_from_the_suite_needs_a_readable_suite(tmp_path: Path) -> None:
    raw = flights_file()
    del raw["validation"]
    with pytest.raises(SpecError, match=r"'suite', but the pipeline file has no validation\.suite"):
        read(raw)
    raw["validation"] = {"suite": str(tmp_path / "missing.json")}
    with pytest.raises(SourceNotFoundError, match=r"missing\.json"):
        read(raw)
    raw["feature_requirements"]["serving_columns"] = ["hour", "minute"]
    with pytest.raises(SpecError, match="'sched_dep_time' breaks serving_columns: not a column of the declared"):
        read(raw)


def test_a_file_without_the_section_checks_only_personal_data() -> None:
    raw = flights_file()
    del raw["feature_requirements"]
    rules = read(raw).feature_requirements
    assert rules == FeatureRequirements() and rules.personal_data and rules.violations(["dep_delay"]) == []


def test_personal_data_is_refused_as_a_feature_even_when_reviewed_for_the_snapshot() -> None:
    rules = FeatureRequirements()
    columns = {
        "carrier": ["UA", "AA", "B6"] * 10,
        "contact": [f"p{i}@example.com" for i in range(30)],
        "passenger_name": [],  # a numeric column: judged by its name only
    }
    found = {v.feature: v.reason for v in rules.personal_data_violations(columns)}
    assert set(found) == {"contact", "passenger_name"}
    assert found["contact"].startswith("values look like email 100%")
    assert found["passenger_name"].startswith("its name suggests personal data")
    assert FeatureRequirements(personal_data=False).personal_data_violations(columns) == []


def test_feature_samples_read_text_values_and_numeric_names() -> None:
    frame = flights(months=[1], sample=50)
    samples = feature_samples(frame, ("carrier", "distance"), rows=20)
    assert samples["distance"] == [] and len(samples["carrier"]) == 20 and isinstance(samples["carrier"][0], str)


def test_training_refuses_a_broken_requirement_before_reading_or_logging(tmp_path: Path) -> None:
    """A spec edited after the DAG parsed its file: training itself refuses it, before a run is opened."""
    spec = TrainingSpec.from_mapping({**flights_file()["training"], "features": {"numeric": ["hour", "dep_delay"]}})
    rules = {p.name: p for p in discover(FOLDER)}["flights_delay"].feature_requirements
    with pytest.raises(
        SpecError,
        match=r"pipeline 'flights_delay': 2 feature requirement\(s\) broken:\n- feature 'dep_delay' breaks forbidden",
    ):
        run_training(
            spec,
            root=StorageRoot(str(tmp_path)),
            snapshot_uri=str(tmp_path / "never-read.parquet"),  # it does not exist: the refusal comes first
            snapshot_sha256=None,
            pipeline="flights_delay",
            partition="p",
            experiment_id="0",
            requirements=rules,
        )


def test_training_refuses_a_feature_whose_values_look_like_personal_data(tmp_path: Path) -> None:
    frame = flights(months=[1], sample=300)
    frame["carrier"] = [f"crew{i}@airline.example" for i in range(len(frame))]  # the values, not the name
    root = StorageRoot(str(tmp_path))
    uri = root.layout("flights_delay", "snapshots", "p", "snapshot.parquet")
    root.write_bytes(uri, parquet_bytes(frame))
    spec = TrainingSpec.from_yaml(FOLDER / "flights_delay.yaml")
    with pytest.raises(SpecError, match="'carrier' breaks personal_data: values look like email 100%"):
        run_training(
            spec,
            root=root,
            snapshot_uri=uri,
            snapshot_sha256=None,
            pipeline="flights_delay",
            partition="p",
            experiment_id="0",  # never reached: no MLflow run is opened
            requirements=FeatureRequirements(),
        )
