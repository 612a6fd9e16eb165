"""TrainModelOperator.execute() against real local MLflow and storage, and against an MLflow server + S3."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core import contracts
from airflow_mlops.core.onnx_model import OnnxModel, inputs_from_spec
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.core.training import parquet_bytes
from airflow_mlops.exceptions import DataValidationFailed
from airflow_mlops.links.training import MLFLOW_RUN_URL_KEY
from airflow_mlops.operators.base import default_partition
from airflow_mlops.operators.training import TrainModelOperator, git_sha
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[2]
FLIGHTS_SPEC = REPO / "include" / "pipelines" / "flights_delay.yaml"
MARCH = datetime(2013, 3, 1, tzinfo=UTC)
PARTITION = "2013-03-01T00:00:00+00:00"  # the run's partition, the same as its snapshot's
MANUAL_RUN_AFTER = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class FakeTaskInstance:
    dag_id = "continuous_training"
    run_id = "scheduled__2013-03-01T00:00:00+00:00"
    task_id = "train"

    def __init__(self, try_number: int = 1) -> None:
        self.try_number = try_number
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context_for(ti: FakeTaskInstance, logical_date: datetime | None = MARCH, fileloc: str = __file__) -> dict[str, Any]:
    """A run's context as the task runner gives it; a manual run has no logical date, only run_after."""
    dag = SimpleNamespace(dag_id=ti.dag_id, fileloc=fileloc)
    dag_run = SimpleNamespace(run_after=logical_date or MANUAL_RUN_AFTER)
    context: dict[str, Any] = {"ti": ti, "run_id": ti.run_id, "dag": dag, "dag_run": dag_run}
    if logical_date:
        context.update(
            logical_date=logical_date, data_interval_start=logical_date,
            data_interval_end=logical_date + timedelta(days=31), ds=logical_date.strftime("%Y-%m-%d"),
        )  # fmt: skip
    return context


def small_spec(**changes: Any) -> dict[str, Any]:
    """The shipped flights spec, with fewer trees so the test stays quick."""
    spec = yaml.safe_load(FLIGHTS_SPEC.read_text())["training"]
    spec["estimator"]["params"].update(n_estimators=80, learning_rate=0.1)
    spec["reference_rows"] = 1000
    spec.update(changes)
    return spec


@pytest.fixture(scope="module")
def snapshot_frame() -> pd.DataFrame:
    return flights(months=[1, 2], sample=8000)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded MLflow store for the module: creating its tables costs seconds per database."""
    return tmp_path_factory.mktemp("mlflow-store")


@pytest.fixture
def env(mlops_env: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{mlflow_store / 'mlflow.db'}")
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(mlflow_store / "artifacts"))
    return mlops_env


@pytest.fixture
def snapshot(env: Path, snapshot_frame: pd.DataFrame) -> tuple[str, str]:
    root = StorageRoot(str(env / "storage"))
    uri = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "snapshot.parquet")
    return uri, root.write_bytes(uri, parquet_bytes(snapshot_frame))


def operator(snapshot: tuple[str, str], **kwargs: Any) -> TrainModelOperator:
    arguments: dict[str, Any] = {
        "task_id": "train",
        "pipeline": "flights",
        "snapshot_uri": snapshot[0],
        "snapshot_sha256": snapshot[1],
        "spec": small_spec(),
    }
    arguments.update(kwargs)
    return TrainModelOperator(**arguments)


def test_trains_logs_and_publishes_everything(env: Path, snapshot: tuple[str, str]) -> None:
    import mlflow

    ti = FakeTaskInstance()
    receipt = operator(snapshot).execute(context_for(ti))
    json.dumps(receipt)  # the receipt travels through XCom

    # Receipt
    assert receipt["dataset_uri"] == snapshot[0] and receipt["dataset_sha256"] == snapshot[1]
    assert receipt["rows_used"] + receipt["rows_dropped"] == 8000 and receipt["rows_dropped"] > 0
    assert receipt["onnx_uri"] == f"runs:/{receipt['run_id']}/{contracts.ARTIFACT_ONNX}"
    assert set(receipt["metrics"]) == {"train", "validation", "test"}
    assert receipt["parity"]["passed"] and receipt["parity"]["value"] <= 1e-5
    assert ti.xcom[MLFLOW_RUN_URL_KEY] == {"experiment_id": receipt["experiment_id"], "run_id": receipt["run_id"]}
    assert receipt["run_url"].endswith(f"/#/experiments/{receipt['experiment_id']}/runs/{receipt['run_id']}")

    # The MLflow run: lineage tags, params, metrics, dataset input
    client = mlflow.MlflowClient()
    run = client.get_run(receipt["run_id"])
    assert run.info.status == "FINISHED"
    tags = run.data.tags
    assert tags[contracts.TAG_DAG_ID] == "continuous_training" and tags[contracts.TAG_TASK_ID] == "train"
    assert tags[contracts.TAG_RUN_ID] == FakeTaskInstance.run_id and tags[contracts.TAG_TRY_NUMBER] == "1"
    assert tags[contracts.TAG_PIPELINE] == "flights" and tags[contracts.TAG_PACKAGE_VERSION]
    assert tags[contracts.TAG_DATASET_URI] == snapshot[0] and tags[contracts.TAG_DATASET_SHA256] == snapshot[1]
    assert tags[contracts.TAG_ONNX_SHA256] == receipt["onnx_sha256"]
    assert tags[contracts.TAG_TEST_SPLIT_URI] == receipt["test_split_uri"]
    assert len(tags[contracts.TAG_GIT_SHA]) == 40  # the DAG folder is in this git checkout
    assert run.data.params["target"] == "arr_delayed_15" and run.data.params["split.method"] == "time"
    assert 15 <= int(run.data.params["model.num_leaves"]) <= 255  # the search's pick, within its range
    # The weather join's dimension snapshot is recorded with the run (docs/features.md).
    assert tags["mlops.dimension.weather.sha256"] == receipt["feature_transforms"]["joins"]["weather"]["sha256"]
    assert run.data.metrics["test_roc_auc"] == pytest.approx(receipt["metrics"]["test"]["roc_auc"])
    (dataset_input,) = [d for d in run.inputs.dataset_inputs if d.dataset.name == "flights-snapshot"]
    assert dataset_input.dataset.digest == snapshot[1][:36] and snapshot[0] in dataset_input.dataset.source

    # Artifacts: ONNX (hash matches the tag), spec, reference, plots
    folder = Path(mlflow.artifacts.download_artifacts(run_id=receipt["run_id"], dst_path=str(env / "dl")))
    model_bytes = (folder / contracts.ARTIFACT_ONNX).read_bytes()
    assert sha256_bytes(model_bytes) == receipt["onnx_sha256"]
    # LightGBM's own text model, for serving.runtime 'compiled', with its sha256 as a tag
    lightgbm_text = (folder / contracts.ARTIFACT_LIGHTGBM_TEXT).read_bytes()
    assert lightgbm_text.startswith(b"tree") and sha256_bytes(lightgbm_text) == tags[contracts.TAG_LIGHTGBM_SHA256]
    spec_document = json.loads((folder / contracts.ARTIFACT_SPEC).read_text())
    assert spec_document["classes"] == [0, 1] and spec_document["test_split_uri"] == receipt["test_split_uri"]
    reference = pd.read_parquet(folder / contracts.ARTIFACT_REFERENCE)
    assert len(reference) == 1000 and {"prediction", "probability_1", "arr_delayed_15"} <= set(reference.columns)
    plots = {p.name for p in (folder / "plots").iterdir()}
    assert plots == {"roc_curve.png", "pr_curve.png", "confusion_matrix.png", "feature_importance.png"}
    assert (folder / "plots" / "roc_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # The test split the gate reads, scored by the published ONNX model, agrees with the native model
    root = StorageRoot(str(env / "storage"))
    assert receipt["test_split_uri"] == root.layout("flights", "evaluation", PARTITION, "test.parquet")
    test = pd.read_parquet(root.fs_path(receipt["test_split_uri"]))
    assert (
        len(test) == receipt["rows"]["test"]
        and sha256_bytes(root.read_bytes(receipt["test_split_uri"])) == (receipt["test_split_sha256"])
    )
    onnx_model = OnnxModel(model_bytes, inputs_from_spec(spec_document), expected_sha256=receipt["onnx_sha256"])
    onnx_probabilities = onnx_model.run(test)["probabilities"]
    native = mlflow.sklearn.load_model(receipt["model_uri"])
    from airflow_mlops.core.training.data import feature_frame
    from airflow_mlops.core.training.run import load_spec

    native_probabilities = native.predict_proba(feature_frame(test, load_spec(small_spec())))
    assert np.abs(onnx_probabilities - native_probabilities).max() <= 1e-5
    model_info = mlflow.models.get_model_info(receipt["model_uri"])
    assert [c.name for c in model_info.signature.inputs] == list(spec_document["numeric_features"]) + list(
        spec_document["categorical_features"]
    )

    # A retry of the same partition: a new run, the same model, the test split replaced in place
    again = operator(snapshot).execute(context_for(FakeTaskInstance(try_number=2)))
    assert again["run_id"] != receipt["run_id"]
    assert again["onnx_sha256"] == receipt["onnx_sha256"] and again["metrics"] == receipt["metrics"]
    assert again["test_split_uri"] == receipt["test_split_uri"]
    assert again["test_split_sha256"] == receipt["test_split_sha256"]
    assert root.list_files(root.layout("flights", "evaluation", PARTITION)) == [receipt["test_split_uri"]]
    assert client.get_run(again["run_id"]).data.tags[contracts.TAG_TRY_NUMBER] == "2"


def test_spec_from_a_yaml_path_next_to_the_dags(
    env: Path, snapshot: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(env)  # workers run anywhere: the path resolves from the DAG file's project
    path = "include/pipelines/flights_delay.yaml"
    op = operator(snapshot, spec=path)
    context = context_for(FakeTaskInstance(), fileloc=str(REPO / "dags" / "continuous_training.py"))
    assert op._spec_source(context) == str(REPO / path)
    assert default_partition(context) == PARTITION
    manual = context_for(FakeTaskInstance(), logical_date=None)
    assert default_partition(manual) == "2026-01-02T03:04:05+00:00"


def test_leakage_fails_without_retry_and_marks_the_run_failed(env: Path, snapshot: tuple[str, str]) -> None:
    import mlflow

    spec = small_spec(features={"numeric": ["hour", "arr_delay"], "categorical": ["carrier"]})
    ti = FakeTaskInstance()
    with pytest.raises(DataValidationFailed, match="'arr_delay' separates the classes"):
        operator(snapshot, spec=spec).execute(context_for(ti))
    run_id = ti.xcom[MLFLOW_RUN_URL_KEY]["run_id"]  # the link was published when the run opened
    run = mlflow.MlflowClient().get_run(run_id)
    assert run.info.status == "FAILED" and "leakage" in run.data.tags["mlops.error"]
    root = StorageRoot(str(env / "storage"))
    assert not root.exists(root.layout("flights", "evaluation", PARTITION, "test.parquet"))


def test_changed_snapshot_is_refused_before_any_run(env: Path, snapshot: tuple[str, str]) -> None:
    import mlflow

    with pytest.raises(DataValidationFailed, match="changed since"):
        operator(snapshot, snapshot_sha256="0" * 64, experiment_name="untouched").execute(
            context_for(FakeTaskInstance())
        )
    experiment = mlflow.MlflowClient().get_experiment_by_name("untouched")
    assert experiment is None or not mlflow.MlflowClient().search_runs([experiment.experiment_id])


def test_a_bad_spec_fails_without_retry(env: Path, snapshot: tuple[str, str]) -> None:
    with pytest.raises(AirflowFailException, match=r"Unknown field\(s\) \['colour'\]"):
        operator(snapshot, spec=small_spec(colour="red")).execute(context_for(FakeTaskInstance()))


def test_a_feature_breaking_the_pipelines_requirements_fails_without_retry_before_any_run(
    env: Path, snapshot: tuple[str, str]
) -> None:
    """A spec edited after the DAG was parsed is refused by training itself, with the requirement's reason."""
    import mlflow

    from airflow_mlops.core.pipeline.file import PipelineFile

    requirements = PipelineFile.from_yaml(FLIGHTS_SPEC).feature_requirements.to_dict()
    json.dumps(requirements)  # a template field: it is rendered and shown in the UI as JSON
    spec = small_spec(features={"numeric": ["hour", "tailnum_age"], "categorical": ["carrier", "tailnum"]})
    ti = FakeTaskInstance()
    with pytest.raises(
        AirflowFailException,
        match=r"(?s)feature 'tailnum_age' breaks serving_columns.*\n- feature 'tailnum' breaks forbidden: the aircraft",
    ):
        operator(snapshot, spec=spec, feature_requirements=requirements, experiment_name="refused").execute(
            context_for(ti)
        )
    assert MLFLOW_RUN_URL_KEY not in ti.xcom
    experiment = mlflow.MlflowClient().get_experiment_by_name("refused")
    assert experiment is None or not mlflow.MlflowClient().search_runs([experiment.experiment_id])


def test_failed_parity_fails_without_retry_and_publishes_nothing(env: Path, snapshot: tuple[str, str]) -> None:
    import mlflow

    ti = FakeTaskInstance()
    with pytest.raises(AirflowFailException, match="ONNX parity failed on the test split"):
        operator(snapshot, spec=small_spec(parity_tolerance=1e-12)).execute(context_for(ti))
    run = mlflow.MlflowClient().get_run(ti.xcom[MLFLOW_RUN_URL_KEY]["run_id"])
    assert run.info.status == "FAILED" and "parity" in run.data.tags["mlops.error"]
    assert 0 < run.data.metrics["parity_max_abs_probability_diff"] <= 1e-5
    assert contracts.TAG_ONNX_SHA256 not in run.data.tags
    assert not mlflow.MlflowClient().list_artifacts(run.info.run_id)


def test_missing_snapshot_names_it(env: Path) -> None:
    missing = str(env / "storage" / "flights" / "snapshots" / "x" / "nope.parquet")
    with pytest.raises(FileNotFoundError, match=r"nope\.parquet"):
        operator((missing, ""), snapshot_sha256=None).execute(context_for(FakeTaskInstance()))


def test_git_sha_outside_a_checkout_is_none(tmp_path: Path) -> None:
    assert git_sha(tmp_path) is None
    assert git_sha(tmp_path / "missing") is None


def test_against_a_tracking_server_and_s3_storage(  # type: ignore[no-untyped-def]
    mlflow_server, s3_server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch, snapshot_frame: pd.DataFrame
) -> None:
    import mlflow

    from airflow_mlops.hooks.storage import StorageHook

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}))
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.airflow_conn_uri())
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", f"s3://{s3_bucket}/mlops")
    root = StorageHook().get_conn()
    uri = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "snapshot.parquet")
    sha = root.write_bytes(uri, parquet_bytes(snapshot_frame.head(4000)))
    receipt = operator((uri, sha), experiment_name="server-test").execute(context_for(FakeTaskInstance()))
    assert receipt["test_split_uri"].startswith(f"s3://{s3_bucket}/mlops/flights/evaluation/")
    key = receipt["test_split_uri"].split(f"s3://{s3_bucket}/", 1)[1]
    body = s3_server.client().get_object(Bucket=s3_bucket, Key=key)["Body"].read()
    assert sha256_bytes(body) == receipt["test_split_sha256"]
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url)
    run = client.get_run(receipt["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags[contracts.TAG_ONNX_SHA256] == receipt["onnx_sha256"]
    local = mlflow.artifacts.download_artifacts(artifact_uri=receipt["onnx_uri"], tracking_uri=mlflow_server.url)
    assert sha256_bytes(Path(local).read_bytes()) == receipt["onnx_sha256"]
    assert receipt["run_url"].startswith(mlflow_server.url)
