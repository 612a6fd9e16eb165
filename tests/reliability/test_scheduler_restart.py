"""The scheduler dies (SIGKILL of its whole process group, running task included) in the middle of a run.

Real Airflow services (api-server, scheduler, dag-processor; LocalExecutor; SQLite metadata database)
run the DAG ``tests/reliability/dags/scheduler_restart.py``: ingest -> hold -> validate. Once ``hold``
is running, the scheduler and every process it started are killed, as when its machine goes away; a new
scheduler is started. The run must complete: the orphaned task is detected, retried and succeeds, and
the steps after it run; the ingested snapshot is the one the first (completed) task wrote.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.support import models
from tests.support.airflow_services import airflow_services

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

DAG_ID = "mlops_scheduler_restart"


def _states(api, run_id: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    return {t["task_id"]: t for t in api.task_instances(DAG_ID, run_id)}


def test_a_run_completes_when_the_scheduler_is_killed_and_restarted(tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    models.flights_frame((1,), 2000).to_parquet(landing / "flights.parquet", index=False)
    flag = tmp_path / "release"
    storage = tmp_path / "storage"
    extra = {
        "MLOPS_RESTART_LANDING": str(landing),
        "MLOPS_RESTART_FLAG": str(flag),
        "AIRFLOW__MLOPS__STORAGE_ROOT": str(storage),
        # Find the task that died with the scheduler in seconds, not the default five minutes.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        # The new scheduler adopts or resets the dead one's running task at its orphan check, every five
        # minutes by default; the check itself waits for the dead scheduler to miss its health threshold.
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "10",
    }
    with airflow_services(
        tmp_path / "home", database_url=f"sqlite:///{tmp_path / 'airflow.db'}",
        dags_folder=Path(__file__).parent / "dags", components=("scheduler", "dag-processor"), extra_env=extra,
    ) as airflow:  # fmt: skip
        api = airflow.api
        api.wait_for_dag(DAG_ID)
        api.unpause(DAG_ID)
        run_id = api.trigger(DAG_ID)
        deadline = time.monotonic() + 300
        while not Path(f"{flag}.running").exists():
            airflow.check_alive()
            assert time.monotonic() < deadline, f"hold never started: {_states(api, run_id)}\n{airflow.log_tails()}"
            time.sleep(1)
        assert _states(api, run_id)["hold"]["state"] == "running"

        scheduler = airflow.processes["scheduler"]
        os.killpg(scheduler.pid, signal.SIGKILL)  # the scheduler, its executor and the running task
        scheduler.wait(timeout=30)
        flag.touch()  # from now on hold passes at once: its retry is what finishes the run
        airflow.start("scheduler", "scheduler")

        final = api.wait_for_run(DAG_ID, run_id, timeout=400)
        states = _states(api, run_id)
    assert final["state"] == "success"
    assert {k: v["state"] for k, v in states.items()} == {"ingest": "success", "hold": "success", "validate": "success"}
    assert states["hold"]["try_number"] >= 2, states["hold"]  # the killed try was detected and retried
    assert states["ingest"]["try_number"] == 1
    snapshot = storage / "restart" / "snapshots" / "p1"
    assert sorted(p.name for p in snapshot.iterdir()) == ["data.parquet", "receipt.json"]
