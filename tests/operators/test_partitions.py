"""One DAG run left to the defaults names one partition: its snapshot, validation suite, test split and
drift report land in folders of the same name.

Each operator runs its real ``execute`` up to the core call that writes under the partition, which is
replaced by a recorder; everything before it (argument parsing, templates, hooks, MLflow) is real.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_mlops.operators.drift import CheckDriftOperator
from airflow_mlops.operators.ingestion import IngestDatasetOperator
from airflow_mlops.operators.training import TrainModelOperator
from airflow_mlops.operators.validation import ValidateDatasetOperator

REPO = Path(__file__).resolve().parents[2]
START = datetime(2013, 2, 1, tzinfo=UTC)
RUN_ID = "scheduled__2013-02-01T00:00:00+00:00"


class PartitionRecorded(Exception):
    """Raised by the recorder in place of the core call: carries the partition the operator passed."""

    def __init__(self, partition: str) -> None:
        super().__init__(partition)
        self.partition = partition


def run_context() -> dict[str, Any]:
    """The context of one scheduled monthly run, as the task runner gives it to every task of the run."""
    ti = SimpleNamespace(dag_id="continuous_training", run_id=RUN_ID, task_id="task", try_number=1, map_index=-1)
    ti.xcom_push = lambda key, value: None
    end = START + timedelta(days=28)
    return {
        "data_interval_start": START, "data_interval_end": end, "logical_date": START, "ds": "2013-02-01",
        "run_id": RUN_ID, "dag_run": SimpleNamespace(run_after=end), "ti": ti, "task_instance": ti,
        "dag": SimpleNamespace(dag_id="continuous_training", fileloc=str(REPO / "dags" / "continuous_training.py")),
        "outlet_events": OutletEventAccessors(),
    }  # fmt: skip


def partition_passed(monkeypatch: pytest.MonkeyPatch, target: str, task: Any) -> str:
    """Run ``task`` with its templates rendered until it calls ``target``; the partition it passed."""

    def record(*args: Any, **kwargs: Any) -> Any:
        raise PartitionRecorded(kwargs["partition"])

    monkeypatch.setattr(target, record)
    context = run_context()
    task.render_template_fields(context)
    with pytest.raises(PartitionRecorded) as recorded:
        task.execute(context)
    return recorded.value.partition


def test_one_run_names_one_partition_for_snapshot_suite_test_split_and_drift_report(
    mlops_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    landing = mlops_env / "landing"
    landing.mkdir()
    snapshot = str(mlops_env / "storage" / "flights" / "snapshots" / "x" / "data.parquet")
    partitions = {
        "snapshot": partition_passed(
            monkeypatch,
            "airflow_mlops.core.ingestion.snapshot.ingest",
            IngestDatasetOperator(
                task_id="ingest", pipeline="flights", source="local", path=str(landing), pattern="*.parquet"
            ),
        ),
        "validation suite": partition_passed(
            monkeypatch,
            "airflow_mlops.core.validation.suite.prepare_suite",
            ValidateDatasetOperator(
                task_id="validate", pipeline="flights", snapshot_uri=snapshot, reference_uri=snapshot
            ),
        ),
        "test split": partition_passed(
            monkeypatch,
            "airflow_mlops.core.training.run.run_training",
            TrainModelOperator(
                task_id="train",
                pipeline="flights",
                snapshot_uri=snapshot,
                spec=str(REPO / "include" / "pipelines" / "flights_delay.yaml"),
            ),
        ),
        "drift report": partition_passed(
            monkeypatch,
            "airflow_mlops.core.drift.report.check_batch",
            CheckDriftOperator(task_id="drift", pipeline="flights", current_uri=snapshot, reference_uri=snapshot),
        ),
    }
    assert partitions == dict.fromkeys(partitions, "2013-02-01T00:00:00+00:00")
