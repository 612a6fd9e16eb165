"""Secrets never leak: a full flow with recognisable credentials, then a scan of everything it left.

Connections carry canary strings: the SQL source's password, the MLflow token and the AWS access and
secret keys. The flow ingest -> train -> gate -> register -> promote -> score -> drift runs in this
process against a real MLflow tracking server and a real S3 API (moto), both of which accept any
credential. Afterwards the canaries must not appear in the task logs (every log record and everything
printed), the XCom values (returns, pushes and asset event extras), the MLflow params, tags and
descriptions of every run and model version, the MLflow artifacts, any object in the bucket, or
``os.environ`` outside the connection definitions themselves.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
import yaml

from tests.support import models
from tests.support.services import free_port

REPO = Path(__file__).resolve().parents[2]
CANARIES = {
    "sql password": "CanarySqlPassw0rd-7f3a",
    "mlflow token": "CanaryMlflowToken-91bd",
    "aws access key": "AKIACANARY0000000042",
    "aws secret key": "CanaryAwsSecretKey-c0ffee",
}
START = pendulum.datetime(2013, 3, 1, tz="UTC")


class RecordingTI:
    dag_id = "secrets_flow"
    run_id = "manual__2013-03-01T00:00:00+00:00"
    map_index = -1
    try_number = 1

    def __init__(self, task_id: str, xcom: list[Any]) -> None:
        self.task_id = task_id
        self._xcom = xcom

    def xcom_push(self, key: str, value: Any) -> None:
        self._xcom.append({key: value})


def _context(task_id: str, xcom: list[Any]) -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = RecordingTI(task_id, xcom)
    return {
        "ti": ti, "task_instance": ti, "run_id": ti.run_id, "outlet_events": OutletEventAccessors(),
        "data_interval_start": START, "data_interval_end": START.add(months=1), "logical_date": START,
        "ds": "2013-03-01", "ds_nodash": "20130301", "dag_run": SimpleNamespace(run_after=START),
        "dag": SimpleNamespace(dag_id=ti.dag_id, fileloc=__file__),
    }  # fmt: skip


def _run(operator: Any, xcom: list[Any]) -> dict[str, Any]:
    context = _context(operator.task_id, xcom)
    result = operator.execute(context)
    xcom.append(result)
    xcom.extend(
        {"asset": str(key), "extra": dict(value.extra)} for key, value in context["outlet_events"]._dict.items()
    )
    return result


def _sqlite_source(path: Path) -> None:
    frame = models.flights_frame((1, 2), 6000)
    frame["sched_dep_ts"] = frame["sched_dep_ts"].astype(str)
    with sqlite3.connect(path) as conn:
        frame.to_sql("flights", conn, index=False)


def _leaks(text: str) -> list[str]:
    return [what for what, canary in CANARIES.items() if canary in text]


def test_a_full_flow_leaks_no_credential(  # type: ignore[no-untyped-def]
    mlflow_server, s3_server, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    from mlflow import MlflowClient

    from airflow_mlops.core.mlflow_auth import set_token
    from airflow_mlops.operators.drift import CheckDriftOperator
    from airflow_mlops.operators.gating import EvaluateModelGateOperator
    from airflow_mlops.operators.ingestion import IngestDatasetOperator
    from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
    from airflow_mlops.operators.scoring import ScoreBatchOperator
    from airflow_mlops.operators.training import TrainModelOperator

    _sqlite_source(tmp_path / "source.db")
    aws = {
        "conn_type": "aws", "login": CANARIES["aws access key"], "password": CANARIES["aws secret key"],
        "extra": {"endpoint_url": s3_server.endpoint_url, "region_name": "us-east-1"},
    }  # fmt: skip
    connections = {
        # SQLite has no credentials: the SQL password travels to a PostgreSQL server that refuses it.
        "AIRFLOW_CONN_SECRET_PG": {
            "conn_type": "postgres",
            "host": "127.0.0.1",
            "port": free_port(),
            "schema": "flights",
            "login": "analyst",
            "password": CANARIES["sql password"],
        },
        "AIRFLOW_CONN_MLFLOW_DEFAULT": {
            "conn_type": "mlflow",
            "host": mlflow_server.url,
            "password": CANARIES["mlflow token"],
        },
        "AIRFLOW_CONN_AWS_SECRET": aws,
    }
    for key, value in connections.items():
        monkeypatch.setenv(key, json.dumps(value))
    monkeypatch.setenv("AIRFLOW_CONN_SECRET_SQL", f"sqlite:///{tmp_path / 'source.db'}")
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", f"s3://{s3_bucket}/mlops")
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_CONN_ID", "aws_secret")
    caplog.set_level(logging.DEBUG)
    xcom: list[Any] = []
    name = f"secrets_{s3_bucket}".replace("-", "_")
    storage = {"storage_root": f"s3://{s3_bucket}/mlops"}
    failures = []
    try:
        with pytest.raises(Exception) as refused:  # the error path is where a DSN with its password leaks
            _run(
                IngestDatasetOperator(
                    task_id="ingest_pg", pipeline="flights", source="sql", sql_conn_id="secret_pg", table="flights",
                    storage_conn_id="aws_secret", **storage,
                ),
                xcom,
            )  # fmt: skip
        failures.append("".join(traceback.format_exception(refused.value)))
        snapshot = _run(
            IngestDatasetOperator(
                task_id="ingest", pipeline="flights", source="sql", sql_conn_id="secret_sql", table="flights",
                order_by=["sched_dep_ts", "flight"], watermark_column="sched_dep_ts",
                schema={"sched_dep_ts": "timestamp"}, storage_conn_id="aws_secret", **storage,
            ),
            xcom,
        )  # fmt: skip
        spec = yaml.safe_load((REPO / "include" / "pipelines" / "flights_delay.yaml").read_text())["training"]
        spec["estimator"]["params"].update(n_estimators=30, learning_rate=0.1)
        spec["reference_rows"] = 500
        trained = _run(
            TrainModelOperator(
                task_id="train", pipeline="flights", snapshot_uri=snapshot["uri"], snapshot_sha256=snapshot["sha256"],
                spec=spec, experiment_name=name, aws_conn_id="aws_secret", **storage,
            ),
            xcom,
        )  # fmt: skip
        gated = _run(
            EvaluateModelGateOperator(
                task_id="gate", model_name=name, candidate_run_id=trained["run_id"], pipeline="flights",
                # Secrets are under test, not the model: a small sample need not beat the linear baseline.
                policy={"baseline": {"kind": "prior"}}, check_native_parity=False, aws_conn_id="aws_secret",
                **storage,
            ),
            xcom,
        )  # fmt: skip
        registered = _run(RegisterModelOperator(task_id="register", model_name=name, gate_receipt=gated), xcom)
        _run(
            PromoteModelOperator(
                task_id="promote", model_name=name, pipeline="flights", version=registered["version"],
                gate_receipt=gated,
            ),
            xcom,
        )  # fmt: skip
        scored = _run(
            ScoreBatchOperator(
                task_id="score", input_uri=snapshot["uri"], model_name=name, pipeline="flights",
                aws_conn_id="aws_secret", **storage,
            ),
            xcom,
        )  # fmt: skip
        _run(
            CheckDriftOperator(
                task_id="drift", pipeline="flights", current_uri=scored["serving_log_uri"], model_name=name,
                aws_conn_id="aws_secret", **storage,
            ),
            xcom,
        )  # fmt: skip
    finally:
        set_token(None)

    # Task logs: every record at any level, and everything written to stdout/stderr.
    out, err = capfd.readouterr()
    records = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in caplog.records)
    assert "Connection refused" in failures[0] or "could not connect" in failures[0], failures[0][-2000:]
    logs = records + out + err
    assert "Ingested" in logs and _leaks(logs + "".join(failures)) == []

    # XCom: return values, pushed values, asset event extras.
    assert len(xcom) >= 7 and _leaks(json.dumps(xcom, default=str)) == []

    # MLflow: params, tags, metrics names, descriptions of every run of the flow and every version.
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=5000)
    assert trained["run_id"] in {r.info.run_id for r in runs}
    for run in runs:
        assert _leaks(json.dumps([run.data.params, run.data.tags, sorted(run.data.metrics)])) == [], run.info.run_id
    for version in client.search_model_versions(f"name = '{name}'"):
        assert _leaks(json.dumps([version.tags, version.description, version.source])) == []

    # MLflow artifacts (reports, specs, evidence, models) and every object in the bucket.
    files = [p for p in Path(mlflow_server.artifact_root).rglob("*") if p.is_file()]
    assert files and [str(p) for p in files if _leaks(p.read_bytes().decode("latin-1"))] == []
    s3 = s3_server.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])]
    assert any(k.endswith("predictions.parquet") for k in keys) and any("/drift/" in k for k in keys), keys
    leaked = [k for k in keys if _leaks(s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read().decode("latin-1"))]
    assert leaked == []

    # Credentials were handed to clients explicitly, never put in the process environment.
    outside = {k: v for k, v in os.environ.items() if k not in connections}
    assert _leaks(json.dumps(outside)) == []
