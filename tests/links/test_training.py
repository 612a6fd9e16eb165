from __future__ import annotations

from datetime import datetime

from airflow.sdk import DAG

from airflow_mlops.operators.training import TrainModelOperator


def _task() -> TrainModelOperator:
    with DAG("link_test", schedule=None, start_date=datetime(2024, 1, 1)):
        return TrainModelOperator(
            task_id="train", pipeline="flights", snapshot_uri="s.parquet", spec="include/pipelines/flights_delay.yaml"
        )


def test_the_operator_carries_the_link_through_dag_serialization() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    task = _task()
    assert [link.name for link in task.operator_extra_links] == ["MLflow run"]
    serialized = DagSerialization.to_dict(task.dag)
    (encoded,) = serialized["dag"]["tasks"]
    assert encoded["__var"]["_operator_extra_links"] == {"MLflow run": "_link_MlflowTrainingRunLink"}
