"""A run that is still going when the scheduler dies: ingest -> hold -> validate.

``hold`` waits for a flag file, so the test can kill the scheduler while the run is in the middle.
The test hands the landing folder and the flag through ``MLOPS_RESTART_*`` environment variables.
"""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from airflow.sdk import dag, task

from airflow_mlops.operators.ingestion import IngestDatasetOperator
from airflow_mlops.operators.validation import ValidateDatasetOperator

LANDING = os.environ.get("MLOPS_RESTART_LANDING", "/nonexistent/landing")
FLAG = os.environ.get("MLOPS_RESTART_FLAG", "/nonexistent/flag")
SNAPSHOT = "{{ ti.xcom_pull(task_ids='ingest')['uri'] }}"


@dag(
    dag_id="mlops_scheduler_restart",
    schedule=None,
    catchup=False,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=2)},
    tags=["mlops-reliability"],
)
def scheduler_restart() -> None:
    ingest = IngestDatasetOperator(
        task_id="ingest", pipeline="restart", source="local", path=LANDING, pattern="*.parquet", partition="p1"
    )

    @task
    def hold() -> None:
        Path(FLAG + ".running").touch()  # tells the test that the run is now in the middle
        deadline = time.monotonic() + 300
        while not Path(FLAG).exists() and time.monotonic() < deadline:
            time.sleep(0.5)

    validate = ValidateDatasetOperator(
        task_id="validate", snapshot_uri=SNAPSHOT, pipeline="restart", partition="p1", reference_uri=SNAPSHOT
    )
    ingest >> hold() >> validate


scheduler_restart()
