"""A real champion for the monitoring tests: the flights spec trained by ``run_training`` on a real
snapshot, logged to an embedded MLflow store, registered and promoted with the registry core."""

from __future__ import annotations

import atexit
import functools
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from airflow_mlops.core import contracts
from airflow_mlops.core.registry import promote, register_version, registration_tags
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import TrainingReceipt, TrainingSpec, parquet_bytes, run_training
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[2]
PARTITION = "2013-03-01"
MODEL = "flights_delay"


@dataclass
class Champion:
    base: Path
    root: StorageRoot
    snapshot_uri: str
    training: TrainingReceipt
    version: str


def small_spec() -> dict[str, Any]:
    spec = yaml.safe_load((REPO / "include" / "pipelines" / "flights_delay.yaml").read_text())["training"]
    spec["estimator"]["params"].update(n_estimators=60, learning_rate=0.1)
    spec.pop("search", None)  # one fit, not the shipped search's four: these tests are about the checks
    spec["reference_rows"] = 600
    return dict(spec)


def env_for(base: Path) -> dict[str, str]:
    return {
        "AIRFLOW__MLOPS__STORAGE_ROOT": str(base / "storage"),
        "AIRFLOW__MLOPS__MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}",
        "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT": str(base / "mlartifacts"),
    }


def train_champion(
    base: Path,
    business_metric: dict[str, Any] | None = None,
    months: tuple[int, ...] = (1, 2),
    partition: str = PARTITION,
) -> Champion:
    """Train on 6,000 flights of ``months``, register and promote; the [mlops] settings must already point
    at ``base`` (env_for). With ``business_metric``, training measures it on the test split too."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    hook.activate()
    client = hook.get_conn()
    root = StorageRoot(str(base / "storage"))
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, partition, "snapshot.parquet")
    sha = root.write_bytes(snapshot_uri, parquet_bytes(flights(months=list(months), sample=6000)))
    receipt = run_training(
        TrainingSpec.from_mapping(small_spec()),
        root=root,
        snapshot_uri=snapshot_uri,
        snapshot_sha256=sha,
        pipeline="flights",
        partition=partition,
        experiment_id=hook.ensure_experiment("flights"),
        business_metric=business_metric,
    )
    tags = client.get_run(receipt.run_id).data.tags
    registration = register_version(
        client,
        MODEL,
        receipt.run_id,
        source=f"runs:/{receipt.run_id}/{contracts.ARTIFACT_NATIVE_MODEL}",
        tags=registration_tags(tags, receipt.run_id, None),
        description="monitoring tests",
    )
    promote(client, MODEL, registration.version)
    return Champion(base, root, snapshot_uri, receipt, registration.version)


@functools.lru_cache(maxsize=1)
def shared_champion() -> Champion:
    """One champion per test process for the modules that only read it (training costs ~20 s)."""
    base = Path(tempfile.mkdtemp(prefix="mlops-monitoring-"))
    atexit.register(shutil.rmtree, base, ignore_errors=True)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env_for(base).items():
            patch.setenv(key, value)
        return train_champion(base)


def use_shared_champion(monkeypatch: pytest.MonkeyPatch) -> Champion:
    """The shared champion, with the [mlops] settings pointing at its deployment for this test."""
    champion = shared_champion()
    for key, value in env_for(champion.base).items():
        monkeypatch.setenv(key, value)
    return champion


class RecordingTI:
    dag_id = "batch_serving"
    task_id = "check"
    run_id = "scheduled__2013-03-02T00:00:00+00:00"
    map_index = -1
    try_number = 1

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def task_context(logical_date: Any) -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = RecordingTI()
    return {"ti": ti, "task_instance": ti, "logical_date": logical_date, "run_id": ti.run_id,
            "dag_run": SimpleNamespace(run_after=logical_date), "outlet_events": OutletEventAccessors()}  # fmt: skip


def received(server: Any) -> list[dict[str, Any]]:
    """The JSON bodies a webhook receiver (tests.notifiers.test_webhook.Receiver) got, in order."""
    return [json.loads(r["body"]) for r in server.requests]
