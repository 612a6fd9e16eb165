"""MlopsBaseOperator: hooks built once from the operator's arguments, one partition default and batch
time for every operator, one mapping of model-resolution errors."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.serving import ModelReference
from airflow_mlops.exceptions import MlopsVerdictFailure, ModelIntegrityFailure
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.hooks.storage import StorageHook
from airflow_mlops.operators.base import MlopsBaseOperator, batch_time, default_partition
from airflow_mlops.operators.ingestion import IngestDatasetOperator

START = datetime(2013, 2, 1, tzinfo=UTC)
END = datetime(2013, 3, 1, tzinfo=UTC)
RUN_AFTER = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SHA = "a" * 64


class ProbeOperator(MlopsBaseOperator):
    """An operator that only holds the arguments the base reads."""

    template_fields: Sequence[str] = ("partition",)

    def __init__(
        self,
        *,
        partition: str | None = None,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.partition = partition
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id
        self.mlflow_conn_id = mlflow_conn_id


class FakeRegistry:
    """An ``MlflowClient`` stand-in holding one version, ``7`` of ``flights``, with alias ``champion``."""

    def __init__(self, version_tags: dict[str, str], run_tags: dict[str, str]) -> None:
        self.version = SimpleNamespace(version="7", status="READY", run_id="run-7", tags=version_tags)
        self.run = SimpleNamespace(data=SimpleNamespace(tags=run_tags))

    def get_model_version_by_alias(self, name: str, alias: str) -> Any:
        from mlflow.exceptions import MlflowException

        if (name, alias) != ("flights", "champion"):
            raise MlflowException(f"Registered model alias {alias} not found.", error_code="RESOURCE_DOES_NOT_EXIST")
        return self.version

    def get_model_version(self, name: str, version: str) -> Any:
        return self.version

    def get_run(self, run_id: str) -> Any:
        return self.run


def context(**values: Any) -> dict[str, Any]:
    return {"dag_run": SimpleNamespace(run_after=values.pop("run_after", None)), **values}


def test_hooks_are_built_once_from_the_operators_arguments(mlops_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    op = ProbeOperator(task_id="probe", storage_root=str(mlops_env / "root"), aws_conn_id="s3", mlflow_conn_id="ml")
    assert not {"storage_hook", "storage", "mlflow_hook", "mlflow_client"} & set(vars(op))  # nothing at parse time
    assert (op.storage_hook.storage_root, op.storage_hook.aws_conn_id) == (str(mlops_env / "root"), "s3")
    assert op.mlflow_hook.mlflow_conn_id == "ml"
    calls = {"storage": 0, "mlflow": 0}
    real_storage = StorageHook.get_conn

    def storage_conn(hook: StorageHook) -> Any:
        calls["storage"] += 1
        return real_storage(hook)

    def mlflow_conn(hook: MlflowHook) -> Any:
        calls["mlflow"] += 1
        return object()

    monkeypatch.setattr(StorageHook, "get_conn", storage_conn)
    monkeypatch.setattr(MlflowHook, "get_conn", mlflow_conn)
    assert op.storage is op.storage and op.storage.uri == str(mlops_env / "root")
    assert op.mlflow_client is op.mlflow_client and op.mlflow_hook is op.mlflow_hook
    assert calls == {"storage": 1, "mlflow": 1}


def test_omitted_connections_mean_the_mlops_settings(mlops_env: Path) -> None:
    op = ProbeOperator(task_id="probe")
    assert op.storage.uri == str(mlops_env / "storage")
    assert op.mlflow_hook.mlflow_conn_id == "mlflow_default"


def test_ingestion_reaches_its_storage_root_through_storage_conn_id() -> None:
    op = IngestDatasetOperator(
        task_id="ingest", pipeline="p", source="s3", path="s3://landing/", aws_conn_id="landing",
        storage_root="s3://bucket/ml", storage_conn_id="storage",
    )  # fmt: skip
    assert (op.storage_hook.storage_root, op.storage_hook.aws_conn_id) == ("s3://bucket/ml", "storage")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"data_interval_start": START, "logical_date": END, "run_after": RUN_AFTER}, "2013-02-01T00:00:00+00:00"),
        ({"logical_date": END, "run_after": RUN_AFTER}, "2013-03-01T00:00:00+00:00"),
        ({"run_after": RUN_AFTER}, "2026-01-02T03:04:05+00:00"),
        (
            {"data_interval_start": datetime(2013, 2, 1, 1, tzinfo=timezone(timedelta(hours=1)))},
            "2013-02-01T00:00:00+00:00",
        ),
        ({"data_interval_start": datetime(2013, 2, 1)}, "2013-02-01T00:00:00+00:00"),
    ],
    ids=["data-interval-start-first", "logical-date", "manual-run-after", "converted-to-utc", "naive-is-utc"],
)
def test_default_partition_is_the_runs_start_in_utc(values: dict[str, Any], expected: str) -> None:
    assert default_partition(context(**values)) == expected
    assert ProbeOperator(task_id="probe").run_partition(context(**values)) == expected


def test_a_run_without_any_date_must_be_given_a_partition() -> None:
    with pytest.raises(SpecError, match=r"no data interval, logical date or run_after .* pass 'partition'"):
        default_partition(context())
    assert ProbeOperator(task_id="probe", partition="2013-02").run_partition(context()) == "2013-02"


def test_an_explicit_partition_wins_and_a_rendered_empty_one_is_refused() -> None:
    run = context(data_interval_start=START)
    assert ProbeOperator(task_id="probe", partition="month=02").run_partition(run) == "month=02"
    with pytest.raises(SpecError, match=r"partition key must be a single path segment.*Got ''"):
        ProbeOperator(task_id="probe", partition="").run_partition(run)
    with pytest.raises(SpecError, match=r"partition key must be a single path segment.*Got '\.\./x'"):
        ProbeOperator(task_id="probe", partition="../x").run_partition(run)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"data_interval_end": END, "logical_date": START, "run_after": RUN_AFTER}, END),
        ({"logical_date": START, "run_after": RUN_AFTER}, START),
        ({"run_after": RUN_AFTER}, RUN_AFTER),
    ],
    ids=["data-interval-end-first", "logical-date", "manual-run-after"],
)
def test_batch_time_is_the_end_of_the_runs_data(values: dict[str, Any], expected: datetime) -> None:
    assert batch_time(context(**values)) == expected


def registry(monkeypatch: pytest.MonkeyPatch, **tags: str) -> FakeRegistry:
    fake = FakeRegistry(version_tags=tags, run_tags={contracts.TAG_ONNX_SHA256: SHA})
    monkeypatch.setattr(MlflowHook, "get_conn", lambda hook: fake)
    return fake


def test_resolve_model_pins_the_version_through_the_operators_client(monkeypatch: pytest.MonkeyPatch) -> None:
    registry(monkeypatch, **{contracts.TAG_ONNX_SHA256: SHA})
    op = ProbeOperator(task_id="probe")
    expected = ModelReference(name="flights", version="7", run_id="run-7", onnx_sha256=SHA, alias="champion")
    assert op.resolve_model("flights", alias="champion") == expected
    assert op.resolve_model("flights", version="7").alias is None


def test_resolve_model_maps_errors_a_retry_cannot_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    op = ProbeOperator(task_id="probe")
    registry(monkeypatch, **{contracts.TAG_ONNX_SHA256: "b" * 64})
    with pytest.raises(ModelIntegrityFailure, match="one of them was changed"):
        op.resolve_model("flights", alias="champion")
    with pytest.raises(MlopsVerdictFailure, match="'model_name' parameter is required"):
        op.resolve_model("", alias="champion")
    with pytest.raises(MlopsVerdictFailure, match="Give the model 'alias' to resolve or a pinned 'model_version'"):
        op.resolve_model("flights")


def test_resolve_model_leaves_a_missing_alias_retryable(monkeypatch: pytest.MonkeyPatch) -> None:
    registry(monkeypatch, **{contracts.TAG_ONNX_SHA256: SHA})
    with pytest.raises(SourceNotFoundError, match="'flights' has no version with alias 'gold'"):
        ProbeOperator(task_id="probe").resolve_model("flights", alias="gold")
