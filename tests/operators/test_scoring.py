"""Scoring operators against a real embedded MLflow registry, local files and an S3 server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlparse

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.exceptions import DataValidationFailed, ModelIntegrityFailure
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.scoring import ListPartitionsOperator, ResolveModelVersionOperator, ScoreBatchOperator
from tests.support import models

LOGICAL_DATE = datetime(2013, 3, 1, tzinfo=UTC)
REPO = Path(__file__).resolve().parents[2]


class FakeTaskInstance:
    def __init__(self, map_index: int = -1) -> None:
        self.map_index = map_index
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def context(map_index: int = -1, logical_date: datetime | None = LOGICAL_DATE) -> dict[str, Any]:
    run_after = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return {
        "logical_date": logical_date,
        "dag_run": SimpleNamespace(run_after=run_after),
        "ti": FakeTaskInstance(map_index),
    }


@pytest.fixture
def mlops_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: tuple[Any, str]) -> Path:
    """A fresh storage root per test, beside the module's registry."""
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    return tmp_path


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    """A registered model name of this test's own."""
    return request.node.name.replace("[", "-").replace("]", "")[:60]


@pytest.fixture
def champion(registry: tuple[Any, str], name: str) -> models.RegisteredModel:
    client, experiment_id = registry
    return models.register(client, models.flights_classifier("sklearn"), name, experiment_id=experiment_id)


@pytest.fixture
def february_file(mlops_env: Path) -> Path:
    path = mlops_env / "landing" / "2013-02.parquet"
    path.parent.mkdir()
    models.flights_frame((2,), 2000).to_parquet(path, index=False)
    return path


def score(input_uri: Path | str, model_name: str, **kwargs: Any) -> ScoreBatchOperator:
    return ScoreBatchOperator(
        task_id="score", input_uri=str(input_uri), model_name=model_name, pipeline="flights", **kwargs
    )


def written(mlops_env: Path) -> list[Path]:
    """Every file under the storage root, temporaries included."""
    return sorted(p for p in (mlops_env / "storage").rglob("*") if p.is_file())


def onnx_artifact(client: Any, run_id: str) -> Path:
    uri = client.get_run(run_id).info.artifact_uri
    return Path(urlparse(uri).path if uri.startswith("file:") else uri) / "onnx" / "model.onnx"


def test_scores_with_the_champion_and_returns_the_receipt(
    mlops_env: Path, champion: models.RegisteredModel, registry: tuple[Any, str], february_file: Path, name: str
) -> None:
    client, experiment_id = registry
    models.register(client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id, alias=None)
    operator = score(february_file, name, passthrough_columns="flight, tailnum", chunk_rows="500", threads="1")
    receipt = operator.execute(context())
    storage = StorageRoot(str(mlops_env / "storage"))
    partition = LOGICAL_DATE.isoformat()
    assert receipt["output_uri"] == storage.layout("flights", "predictions", partition, "predictions.parquet")
    assert receipt["serving_log_uri"] == storage.layout("flights", "serving_log", partition, "sample.parquet")
    assert receipt["rows_in"] == receipt["rows_out"] == len(pd.read_parquet(february_file)) > 0
    assert (receipt["model_name"], receipt["model_version"], receipt["model_alias"]) == (name, "1", "champion")
    assert receipt["onnx_sha256"] == champion.onnx_sha256 and receipt["run_id"] == champion.run_id
    assert receipt["throughput_rows_per_s"] > 0 and receipt["shadow_report_uri"] is None
    assert receipt["scored_at"] == LOGICAL_DATE.isoformat() and receipt["input_uri"] == str(february_file)
    json.dumps(receipt)
    table = pq.read_table(receipt["output_uri"])
    assert table.column_names[:3] == ["flight", "tailnum", "prediction"]
    assert set(table.column("model_version").to_pylist()) == {"1"}
    before = Path(receipt["output_uri"]).read_bytes()
    again = score(february_file, name, passthrough_columns="flight, tailnum", chunk_rows="500").execute(context())
    timings = ("seconds", "throughput_rows_per_s")
    assert {k: v for k, v in again.items() if k not in timings} == {
        k: v for k, v in receipt.items() if k not in timings
    }
    assert Path(receipt["output_uri"]).read_bytes() == before
    # A manual run without a logical date is stamped with its run_after, which is fixed for the run.
    manual = score(february_file, name).execute(context(logical_date=None))
    assert manual["scored_at"] == "2026-01-02T03:04:05+00:00" and "2026-01-02T03:04:05+00:00" in manual["output_uri"]


def test_the_resolved_version_is_pinned_for_mapped_tasks(
    champion: models.RegisteredModel, registry: tuple[Any, str], february_file: Path, name: str
) -> None:
    client, experiment_id = registry
    ctx = context()
    resolved = ResolveModelVersionOperator(task_id="resolve", model_name=name).execute(ctx)
    assert resolved == {
        "model_name": name, "model_version": "1", "alias": "champion", "run_id": champion.run_id,
        "onnx_sha256": champion.onnx_sha256,
    }  # fmt: skip
    assert ctx["ti"].pushed == {"model_version": "1"}
    # The alias moves while the run is in progress: mapped tasks still use the pinned version.
    models.register(client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id)
    mapped = score(february_file, name, partition="2013-02", model_version=resolved["model_version"])
    receipt = mapped.execute(context(map_index=0))
    assert receipt["model_version"] == "1" and receipt["model_alias"] is None
    assert score(february_file, name, partition="later").execute(context())["model_version"] == "2"
    with pytest.raises(SpecError, match="mapped ScoreBatchOperator needs a 'partition'"):
        score(february_file, name).execute(context(map_index=3))


def test_a_tampered_onnx_file_refuses_to_score(
    mlops_env: Path, champion: models.RegisteredModel, registry: tuple[Any, str], february_file: Path, name: str
) -> None:
    client, _ = registry
    path = onnx_artifact(client, champion.run_id)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    for operator in (score(february_file, name), ResolveModelVersionOperator(task_id="r", model_name=name)):
        with pytest.raises(ModelIntegrityFailure, match="recorded at registration: the file was changed") as caught:
            operator.execute(context())
        assert isinstance(caught.value, AirflowFailException)  # fails without retries
    assert written(mlops_env) == []


def test_versions_that_cannot_be_verified_or_found_are_refused(
    registry: tuple[Any, str], february_file: Path, name: str
) -> None:
    client, experiment_id = registry
    trained = models.flights_classifier("sklearn")
    models.register(client, trained, "untagged", experiment_id=experiment_id, tag_version=False)
    with pytest.raises(ModelIntegrityFailure, match=r"carries no 'mlops\.onnx_sha256' tag"):
        ScoreBatchOperator(
            task_id="s", input_uri=str(february_file), model_name="untagged", pipeline="flights"
        ).execute(context())
    registered = models.register(client, trained, "retagged", experiment_id=experiment_id)
    client.set_model_version_tag("retagged", registered.version, "mlops.onnx_sha256", "f" * 64)
    with pytest.raises(ModelIntegrityFailure, match="one of them was changed"):
        ResolveModelVersionOperator(task_id="r", model_name="retagged").execute(context())
    with pytest.raises(SourceNotFoundError, match="'retagged' has no version with alias 'gold'"):
        ResolveModelVersionOperator(task_id="r", model_name="retagged", alias="gold").execute(context())


def test_bad_input_fails_without_retry_and_names_the_column(
    mlops_env: Path, champion: models.RegisteredModel, february_file: Path, name: str
) -> None:
    frame = pd.read_parquet(february_file).drop(columns=["dest"])
    frame.to_parquet(february_file, index=False)
    with pytest.raises(DataValidationFailed, match=r"missing feature column\(s\) \['dest'\]"):
        score(february_file, name).execute(context())
    assert written(mlops_env) == []


def test_shadow_challenger_and_explanations(
    champion: models.RegisteredModel, registry: tuple[Any, str], february_file: Path, name: str
) -> None:
    client, experiment_id = registry
    skipped = score(february_file, name, partition="no-challenger", shadow="true").execute(context())
    assert skipped["shadow"]["status"] == "skipped" and "alias 'challenger'" in skipped["shadow"]["reason"]
    models.register(
        client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id, alias="challenger"
    )
    receipt = score(february_file, name, partition="shadowed", shadow=True, explain_top_k="2").execute(context())
    assert receipt["model_version"] == "1"
    assert receipt["shadow"]["status"] == "ok" and receipt["shadow"]["challenger_version"] == "2"
    assert 0.5 < receipt["shadow"]["agreement_rate"] <= 1.0
    report = json.loads(Path(receipt["shadow_report_uri"]).read_text())
    assert report["champion"]["version"] == "1" and report["challenger"]["alias"] == "challenger"
    table = pq.read_table(receipt["output_uri"])
    assert "contribution_2_feature" in table.column_names and set(table.column("model_version").to_pylist()) == {"1"}


_NO_PICKLE_SCRIPT = textwrap.dedent(
    """
    import json, pickle, sys, _pickle
    from datetime import datetime, timezone
    from types import SimpleNamespace

    class Unpickled(RuntimeError):
        pass

    armed = False

    def audit(event, args):
        # Every unpickler (C or Python, pickle, cloudpickle, joblib, dill) resolves globals through
        # find_class, which raises this audit event.
        if armed and event == "pickle.find_class":
            raise Unpickled(f"unpickled {args}")

    sys.addaudithook(audit)

    def refuse(*args, **kwargs):
        raise Unpickled("pickle.loads/load called")

    import cloudpickle, joblib
    for module in (pickle, _pickle, cloudpickle):
        for name in ("load", "loads"):
            setattr(module, name, refuse)
    joblib.load = refuse

    from airflow_mlops.operators.scoring import ResolveModelVersionOperator, ScoreBatchOperator

    args = json.loads(sys.argv[1])
    ti = SimpleNamespace(map_index=-1, xcom_push=lambda key, value: None)
    context = {"logical_date": datetime(2013, 3, 1, tzinfo=timezone.utc), "dag_run": None, "ti": ti}
    armed = True
    ResolveModelVersionOperator(task_id="r", model_name=args["name"]).execute(context)
    receipt = ScoreBatchOperator(
        task_id="s", input_uri=args["input"], model_name=args["name"], pipeline="flights", shadow=True,
        explain_top_k=1,
    ).execute(context)
    print("SCORED", json.dumps(receipt))
    # The guard bites: loading the native model logged beside the ONNX file would unpickle.
    import mlflow.sklearn
    try:
        mlflow.sklearn.load_model(args["native"])
    except Exception as exc:
        print("GUARD", type(exc).__name__, "Unpickled" in repr(exc) or "unpickled" in str(exc))
    """
)


def test_scoring_never_unpickles(
    mlops_env: Path, champion: models.RegisteredModel, registry: tuple[Any, str], february_file: Path, name: str
) -> None:
    client, experiment_id = registry
    challenger = models.register(
        client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id, alias="challenger",
        log_native=True, serialization_format="cloudpickle",
    )  # fmt: skip
    native_uri = f"runs:/{challenger.run_id}/model"
    env = {**os.environ, "MLFLOW_TRACKING_URI": MlflowHook().tracking_uri}
    args = json.dumps({"input": str(february_file), "native": native_uri, "name": name})
    proc = subprocess.run(
        [sys.executable, "-c", _NO_PICKLE_SCRIPT, args], capture_output=True, text=True, cwd=REPO, env=env,
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("SCORED", "GUARD")))
    receipt = json.loads(lines["SCORED"])
    assert receipt["rows_out"] > 0 and receipt["shadow"]["status"] == "ok"
    assert lines["GUARD"].endswith("True"), lines["GUARD"]


def test_lists_partitions_and_scores_input_and_storage_on_s3(
    s3_server: Any,
    s3_bucket: str,
    mlops_env: Path,
    champion: models.RegisteredModel,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_AWS_MOTO", s3_server.airflow_conn_uri())
    s3 = s3_server.client()
    for month in (2, 3):
        local = mlops_env / f"{month}.parquet"
        models.flights_frame((month,), 800).to_parquet(local, index=False)
        s3.upload_file(str(local), s3_bucket, f"landing/month={month:02d}/part-0.parquet")
    s3.put_object(Bucket=s3_bucket, Key="landing/_SUCCESS", Body=b"")
    partitions = ListPartitionsOperator(
        task_id="list", input_uri=f"s3://{s3_bucket}/landing/", aws_conn_id="aws_moto"
    ).execute(context())
    assert partitions == [
        {"input_uri": f"s3://{s3_bucket}/landing/month=02", "partition": "month=02"},
        {"input_uri": f"s3://{s3_bucket}/landing/month=03", "partition": "month=03"},
    ]
    receipts = [
        ScoreBatchOperator(
            task_id="score", model_name=name, pipeline="flights", storage_root=f"s3://{s3_bucket}/mlops",
            aws_conn_id="aws_moto", **mapped,
        ).execute(context(map_index=i))
        for i, mapped in enumerate(partitions)
    ]  # fmt: skip
    assert [r["output_uri"] for r in receipts] == [
        f"s3://{s3_bucket}/mlops/flights/predictions/month=02/predictions.parquet",
        f"s3://{s3_bucket}/mlops/flights/predictions/month=03/predictions.parquet",
    ]
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix="mlops/flights/")["Contents"])
    assert keys == [
        "mlops/flights/predictions/month=02/predictions.parquet",
        "mlops/flights/predictions/month=03/predictions.parquet",
        "mlops/flights/serving_log/month=02/sample.parquet",
        "mlops/flights/serving_log/month=03/sample.parquet",
    ]
    body = s3.get_object(Bucket=s3_bucket, Key=keys[0])["Body"].read()
    assert pq.read_table(pa.BufferReader(body)).num_rows == receipts[0]["rows_in"] > 0


_MAPPED_DAG = """
import pendulum
from airflow.sdk import dag

from airflow_mlops.operators.scoring import ListPartitionsOperator, ResolveModelVersionOperator, ScoreBatchOperator


@dag(dag_id="scoring_fan_out", schedule=None, start_date=pendulum.datetime(2013, 1, 1, tz="UTC"), catchup=False)
def scoring_fan_out():
    champion = ResolveModelVersionOperator(task_id="resolve_champion", model_name={name!r})
    partitions = ListPartitionsOperator(task_id="list_partitions", input_uri={landing!r})
    ScoreBatchOperator.partial(
        task_id="score",
        model_name={name!r},
        model_version=champion.output["model_version"],
        pipeline="flights",
        passthrough_columns=["flight"],
    ).expand_kwargs(partitions.output)


fan_out = scoring_fan_out()
"""


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """The session's Airflow metadata database (SQLite under the test AIRFLOW_HOME), migrated once."""
    from airflow.utils.db import initdb

    initdb()


@pytest.mark.slow
def test_partitions_fan_out_with_dynamic_task_mapping(
    airflow_db: None,
    mlops_env: Path,
    champion: models.RegisteredModel,
    registry: tuple[Any, str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    import importlib.util

    from airflow.utils.state import DagRunState, TaskInstanceState

    landing = mlops_env / "landing"
    months = (2, 3, 4)
    for month in months:
        folder = landing / f"month=2013-{month:02d}"
        folder.mkdir(parents=True)
        models.flights_frame((month,), 600).to_parquet(folder / "part-0.parquet", index=False)
    dags = mlops_env / "dags"
    dags.mkdir()
    (dags / "scoring_fan_out.py").write_text(_MAPPED_DAG.format(name=name, landing=str(landing)))
    bundles = [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(dags)}}]  # fmt: skip
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    spec = importlib.util.spec_from_file_location("scoring_fan_out", dags / "scoring_fan_out.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    run = module.fan_out.test(logical_date=LOGICAL_DATE)

    assert run.state == DagRunState.SUCCESS
    mapped = sorted((ti.map_index, ti.state) for ti in run.get_task_instances() if ti.task_id == "score")
    assert mapped == [(i, TaskInstanceState.SUCCESS) for i in range(len(months))]
    for month in months:
        partition = f"month=2013-{month:02d}"
        out = pq.read_table(mlops_env / "storage" / "flights" / "predictions" / partition / "predictions.parquet")
        source = pd.read_parquet(landing / partition)
        assert out.column("flight").to_pylist() == source["flight"].tolist()
        assert set(out.column("model_version").to_pylist()) == {champion.version}


def test_scores_through_an_mlflow_tracking_server(
    mlflow_server: Any, mlops_env: Path, february_file: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Resolution and artifact download over HTTP (the server proxies artifacts), as in production."""
    from mlflow import MlflowClient

    host, port = urlparse(mlflow_server.url).hostname, urlparse(mlflow_server.url).port
    connection = {"conn_type": "mlflow", "host": host, "port": port, "schema": "http"}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_SERVER", json.dumps(connection))
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    experiment_id = MlflowHook("mlflow_server").ensure_experiment("scoring-server")
    registered = models.register(client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id)
    resolved = ResolveModelVersionOperator(task_id="r", model_name=name, mlflow_conn_id="mlflow_server").execute(
        context()
    )
    operator = score(february_file, name, model_version=resolved["model_version"], mlflow_conn_id="mlflow_server")
    result = operator.execute(context())
    assert result["model_version"] == registered.version and result["onnx_sha256"] == registered.onnx_sha256
    assert result["rows_out"] == len(pd.read_parquet(february_file))
