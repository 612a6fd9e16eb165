from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from airflow.sdk import DAG

from airflow_mlops.links.training import MLFLOW_RUN_URL_KEY, MlflowTrainingRunLink
from airflow_mlops.operators.training import TrainModelOperator


def _task() -> TrainModelOperator:
    with DAG("link_test", schedule=None, start_date=datetime(2024, 1, 1)):
        return TrainModelOperator(
            task_id="train", pipeline="flights", snapshot_uri="s.parquet", spec="include/pipelines/flights_delay.yaml"
        )


def test_the_link_reads_the_url_the_operator_pushed(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk.execution_time.xcom import XCom

    pushed = {("ti-key", MLFLOW_RUN_URL_KEY): "http://mlflow:5000/#/experiments/1/runs/abc"}
    calls: list[dict[str, Any]] = []

    def get_value(*, ti_key: Any, key: str) -> Any:
        calls.append({"ti_key": ti_key, "key": key})
        return pushed.get((ti_key, key))

    monkeypatch.setattr(XCom, "get_value", staticmethod(get_value))
    link = MlflowTrainingRunLink()
    assert link.get_link(_task(), ti_key="ti-key") == "http://mlflow:5000/#/experiments/1/runs/abc"  # type: ignore[arg-type]
    assert calls == [{"ti_key": "ti-key", "key": "mlflow_run_url"}]
    assert link.get_link(_task(), ti_key="other") == ""  # type: ignore[arg-type]


def test_the_operator_carries_the_link_through_dag_serialization() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    task = _task()
    assert [link.name for link in task.operator_extra_links] == ["MLflow run"]
    serialized = DagSerialization.to_dict(task.dag)
    (encoded,) = serialized["dag"]["tasks"]
    assert encoded["__var"]["_operator_extra_links"] == {"MLflow run": "_link_MlflowTrainingRunLink"}
