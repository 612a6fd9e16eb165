"""Feature transforms end to end: a derived feature and an as-of join computed at training (run_training),
at serving (ScoreBatchOperator) and in the skew check give identical values; a raw batch's drift check
(CheckDriftOperator) sees the derived and joined columns; a forbidden column inside an expression is refused
when the pipeline file is read and again at training."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.pipeline import FeatureRequirements, PipelineFile
from airflow_mlops.core.registry import promote, register_version, registration_tags
from airflow_mlops.core.reproducibility import check_training_serving_skew, read_reference
from airflow_mlops.core.serving import load_serving_model, resolve_model_version, run_transformer
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import TrainingSpec, parquet_bytes, run_training
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.drift import CheckDriftOperator
from airflow_mlops.operators.scoring import ScoreBatchOperator
from tests.core.training.support import FLIGHTS
from tests.support.data import FLIGHTS_DIR, REPO, flights

ZONE = "America/New_York"
TRANSFORMS: dict[str, Any] = {
    "numeric": ["hour", "distance", "sched_dow", "temp", "visib", "log_distance"],
    "categorical": ["carrier", "origin"],
    "timezones": {"sched_dep_ts": ZONE},
    "joins": [
        {
            "name": "weather",
            "source": "dims/weather.parquet",
            "keys": {"origin": "origin"},
            "as_of": {"column": "sched_dep_ts", "dimension_column": "time_hour", "tolerance": "2h"},
            "columns": ["temp", "visib"],
        }
    ],
    "derived": {"sched_dow": f"day_of_week(sched_dep_ts, '{ZONE}')", "log_distance": "log(distance)"},
}
MODEL = "flights_features"
PARTITION = "2013-03-01"


def spec() -> TrainingSpec:
    return TrainingSpec.from_mapping({**FLIGHTS, "features": TRANSFORMS, "reference_rows": 400})


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, StorageRoot]:
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    root = StorageRoot(str(tmp_path / "storage"))
    dims = tmp_path / "storage" / "flights" / "dims"
    dims.mkdir(parents=True)
    shutil.copy(FLIGHTS_DIR / "weather.parquet", dims / "weather.parquet")
    hook = MlflowHook()
    hook.activate()
    return hook, root


def train(hook: MlflowHook, root: StorageRoot, frame: pd.DataFrame, **kwargs: Any) -> Any:
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "snapshot.parquet")
    sha = root.write_bytes(snapshot_uri, parquet_bytes(frame))
    return run_training(
        kwargs.pop("training_spec", None) or spec(), root=root, snapshot_uri=snapshot_uri, snapshot_sha256=sha,
        pipeline="flights", partition=PARTITION, experiment_id=hook.ensure_experiment("flights"), **kwargs,
    )  # fmt: skip


def test_training_serving_and_the_skew_check_compute_identical_values(
    deployment: tuple[Any, StorageRoot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, root = deployment
    client = hook.get_conn()
    receipt = train(hook, root, flights(months=[1, 2], sample=5000))
    # The dimension snapshot is recorded with the run, as a tag and in the spec artifact.
    weather_sha = StorageRoot(str(tmp_path)).sha256(str(tmp_path / "storage" / "flights" / "dims" / "weather.parquet"))
    tags = client.get_run(receipt.run_id).data.tags
    assert tags["mlops.dimension.weather.sha256"] == weather_sha
    joins = receipt.result["feature_transforms"]["joins"]["weather"]
    assert joins["sha256"] == weather_sha and joins["matched"] + joins["unmatched"] == 5000 and joins["matched"] > 4900

    registration = register_version(
        client, MODEL, receipt.run_id, source=f"runs:/{receipt.run_id}/{contracts.ARTIFACT_NATIVE_MODEL}",
        tags=registration_tags(tags, receipt.run_id, None), description="feature transforms",
    )  # fmt: skip
    promote(client, MODEL, registration.version)
    ref = resolve_model_version(client, MODEL, alias="champion")
    model = load_serving_model(client, ref)
    # The graph reads the post-transform columns; a batch carries the raw ones.
    assert {"sched_dow", "temp", "visib", "log_distance"} <= set(model.spec.feature_columns)
    assert "sched_dep_ts" in model.spec.input_columns and "temp" not in model.spec.input_columns

    # Serving: the reference rows, raw columns only, through ScoreBatchOperator.
    reference = read_reference(client, receipt.run_id)
    batch = tmp_path / "landing" / "batch.parquet"
    batch.parent.mkdir()
    raw = reference[[*model.spec.input_columns, "flight"]].reset_index(drop=True)
    raw["row"] = range(len(raw))
    raw.to_parquet(batch, index=False)
    operator = ScoreBatchOperator(
        task_id="score", input_uri=str(batch), model_name=MODEL, pipeline="flights", passthrough_columns="row",
        serving_log_rows=str(len(raw)), chunk_rows="97",
    )  # fmt: skip
    ctx = {"logical_date": datetime(2013, 3, 1, tzinfo=UTC), "dag_run": SimpleNamespace(run_after=None),
           "ti": SimpleNamespace(map_index=-1, xcom_push=lambda *a, **k: None)}  # fmt: skip
    from airflow_mlops.core.features import dimensions

    reads: list[str] = []
    read = dimensions._read
    monkeypatch.setattr(dimensions, "_read", lambda uri, root: reads.append(uri) or read(uri, root))
    scored = operator.execute(ctx)
    assert len(reads) == 1 and scored["rows_in"] > 97 * 3  # one read of the dimension for many batches
    assert scored["feature_transforms"]["joins"]["weather"]["sha256"] == weather_sha
    logged = pd.read_parquet(scored["serving_log_uri"]).sort_values("row").reset_index(drop=True)
    for column in ("sched_dow", "temp", "visib", "log_distance"):
        trained, served = reference[column].to_numpy(np.float64), logged[column].to_numpy(np.float64)
        assert np.array_equal(trained, served, equal_nan=True), column
    assert set(logged["sched_dow"].dropna()) <= set(range(1, 8))
    # Served predictions equal those made at training.
    predictions = pd.read_parquet(scored["output_uri"]).sort_values("row")
    assert np.allclose(predictions["probability_1"], reference["probability_1"], atol=1e-5)

    # The skew check runs the same transforms through score_partition and finds no difference.
    finding = check_training_serving_skew(
        reference, model, transformer=run_transformer(client, ref.run_id, model, root)
    )
    assert finding.severity == "ok", finding.message
    assert finding.details["feature_transforms"]["columns"] == ["sched_dow", "temp", "visib", "log_distance"]
    assert max(finding.details["feature_transforms"]["differences"].values()) == 0


def test_a_changed_dimension_is_skew(deployment: tuple[Any, StorageRoot], tmp_path: Path) -> None:
    hook, root = deployment
    client = hook.get_conn()
    receipt = train(hook, root, flights(months=[1], sample=3000))
    tags = client.get_run(receipt.run_id).data.tags
    registration = register_version(
        client, MODEL, receipt.run_id, source=f"runs:/{receipt.run_id}/{contracts.ARTIFACT_NATIVE_MODEL}",
        tags=registration_tags(tags, receipt.run_id, None), description="feature transforms",
    )  # fmt: skip
    ref = resolve_model_version(client, MODEL, version=registration.version)
    model = load_serving_model(client, ref)
    weather = pd.read_parquet(FLIGHTS_DIR / "weather.parquet")
    weather["temp"] = weather["temp"] + 1.0  # the dimension was rewritten after training
    weather.to_parquet(tmp_path / "storage" / "flights" / "dims" / "weather.parquet", index=False)
    reference = read_reference(client, receipt.run_id)
    finding = check_training_serving_skew(
        reference, model, transformer=run_transformer(client, ref.run_id, model, root)
    )
    assert finding.severity == "alert"
    assert finding.details["feature_transforms"]["differences"]["temp"] == pytest.approx(1.0)


def drift_of_raw_batch(root: StorageRoot, tmp_path: Path, frame: pd.DataFrame, month: str) -> dict[str, Any]:
    """The champion's drift check of ``frame`` as it lands (no target, none of the produced columns)."""
    from airflow.sdk.execution_time.context import OutletEventAccessors

    path = tmp_path / "landing" / f"raw-{month}.parquet"
    path.parent.mkdir(exist_ok=True)
    frame.drop(columns=[FLIGHTS["target"]]).to_parquet(path, index=False)
    operator = CheckDriftOperator(
        task_id="drift", pipeline="flights", current_uri=str(path), model_name=MODEL, partition=month,
        spec={"html_report": False}, log_to_mlflow=False,
    )  # fmt: skip
    moment = datetime.fromisoformat(f"{month}-01T00:00:00+00:00")
    context = {"ti": SimpleNamespace(xcom_push=lambda *a, **k: None), "outlet_events": OutletEventAccessors(),
               "logical_date": moment, "data_interval_end": moment}  # fmt: skip
    return operator.execute(context)


def test_the_drift_check_of_a_raw_batch_sees_the_derived_and_joined_columns(
    deployment: tuple[Any, StorageRoot], tmp_path: Path
) -> None:
    hook, root = deployment
    client = hook.get_conn()
    receipt = train(hook, root, flights(months=[1, 2], sample=5000))
    tags = client.get_run(receipt.run_id).data.tags
    registration = register_version(
        client, MODEL, receipt.run_id, source=f"runs:/{receipt.run_id}/{contracts.ARTIFACT_NATIVE_MODEL}",
        tags=registration_tags(tags, receipt.run_id, None), description="feature transforms",
    )  # fmt: skip
    promote(client, MODEL, registration.version)
    produced = {"sched_dow", "temp", "visib", "log_distance"}

    # July lands: the weather joined at departure is summer's, the days of the week are as in winter.
    july = drift_of_raw_batch(root, tmp_path, flights(months=[7], sample=3000), "2013-07")
    assert july["schema_skew"] is None and july["verdict"] != "schema_skew"
    assert produced <= set(july["scores"])
    assert "temp" in july["drifted_columns"] and "sched_dow" not in july["drifted_columns"]
    weather = july["feature_transforms"]["joins"]["weather"]
    assert weather["matched"] + weather["unmatched"] == 3000 and weather["matched"] > 2900
    summary = json.loads(Path(july["summary_uri"]).read_text())
    assert summary["feature_transforms"]["derived"] == ["sched_dow", "log_distance"]  # in the declared order

    # Winter's weekend flights only: the derived day of week drifts (in July it did not).
    winter = flights(months=[1, 2], sample=8000)
    weekend = winter[winter["sched_dep_ts"].dt.dayofweek >= 5].reset_index(drop=True)
    shifted = drift_of_raw_batch(root, tmp_path, weekend, "2013-02")
    assert "sched_dow" in shifted["drifted_columns"] and "feature_transforms" in shifted


FORBIDDEN_READ = {"derived": {"delay_hours": "dep_delay / 60"}}


def test_a_forbidden_column_inside_an_expression_is_refused_when_the_pipeline_file_is_read(tmp_path: Path) -> None:
    document = yaml.safe_load((REPO / "include" / "pipelines" / "flights_delay.yaml").read_text())
    document["training"]["features"].update(FORBIDDEN_READ)
    document["training"]["features"]["numeric"].append("delay_hours")
    path = tmp_path / "flights_delay.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(
        SpecError,
        match=r"'dep_delay' breaks forbidden: known only after departure \(read by derived feature 'delay_hours'\)",
    ):
        PipelineFile.from_yaml(path, REPO)


def test_a_forbidden_column_inside_an_expression_is_refused_at_training(
    deployment: tuple[Any, StorageRoot], tmp_path: Path
) -> None:
    hook, root = deployment
    training_spec = TrainingSpec.from_mapping(
        {**FLIGHTS, "features": {**FLIGHTS["features"], **FORBIDDEN_READ,
                                 "numeric": [*FLIGHTS["features"]["numeric"], "delay_hours"]}}
    )  # fmt: skip
    requirements = FeatureRequirements.from_mapping({"forbidden": {"dep_delay": "known only after departure"}})
    with pytest.raises(
        SpecError,
        match=r"'dep_delay' breaks forbidden: known only after departure \(read by derived feature 'delay_hours'\)",
    ):
        train(hook, root, flights(months=[1], sample=2000), training_spec=training_spec, requirements=requirements)
    client = hook.get_conn()
    assert client.search_runs([hook.ensure_experiment("flights")]) == []
    assert not (tmp_path / "storage" / "flights" / contracts.KIND_EVALUATION).exists()
