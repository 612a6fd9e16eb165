"""New rows in a database start a training, on real Airflow services, from a pipeline file alone.

A pipeline file outside the checkout (``[mlops] pipelines_folder``) names a PostgreSQL table on
127.0.0.1 as its training source and asks for a training whenever 1,000 rows past the last snapshot's
watermark have arrived, looked for every minute. Nothing else is written for it: no DAG, no suite.

1. January and February are in the table. Unpaused, ``new_data_trips_sql`` finds them (there is no
   snapshot yet, so every row is new); its success is the pipeline's dataset event, which starts a
   ``continuous_training`` run (``asset_triggered``) that ingests the table and trains version 1.
2. March is inserted. The next look finds its rows past the snapshot's watermark, and a second
   ``asset_triggered`` training ingests all three months.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, MlopsStack
from tests.support import services
from tests.support.airflow_services import AirflowServices, wait_for_run_caused_by

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_DEPLOYMENT = Deployment(dags_folder=REPO / "dags")
PIPELINE = "trips_sql"
TRAINING, WATCH = "continuous_training", f"new_data_{PIPELINE}"
DATASET_URI = f"x-mlops://{PIPELINE}/dataset"
PIPELINE_FILE = """\
# Flights from a database table; a training whenever 1,000 new rows have arrived.
model_name: trips_sql
training:
  task: binary
  target: arr_delayed_15
  features:
    numeric: [hour, minute, sched_dep_time, distance]
    categorical: [carrier, origin]
  estimator: {type: lightgbm, params: {n_estimators: 40, learning_rate: 0.1, num_leaves: 15}}
  split: {method: time, column: sched_dep_ts, train: 0.7, validation: 0.15, test: 0.15}
  seed: 42
data:
  source: sql
  connection: flights_db
  table: flights
  watermark_column: sched_dep_ts
  retrain_on_new_data: {min_rows: 1000, min_interval: 1m}
gate:
  policy: {floors: {roc_auc: 0.5}}
"""


@pytest.fixture(scope="module")
def source_database(postgres_server: services.PostgresServer) -> Iterator[str]:
    from airflow_mlops.cli import replay

    with postgres_server.database() as url:
        replay.replay([1, 2], url)
        yield url


@pytest.fixture(scope="module")
def airflow_extra_env(source_database: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The pipelines folder (with only this pipeline) and the source database's connection."""
    folder = tmp_path_factory.mktemp("project") / "include" / "pipelines"
    folder.mkdir(parents=True)
    (folder / f"{PIPELINE}.yaml").write_text(PIPELINE_FILE)
    return {"AIRFLOW__MLOPS__PIPELINES_FOLDER": str(folder), "AIRFLOW_CONN_FLIGHTS_DB": source_database}


def _ingested_rows(airflow: AirflowServices, run_id: str) -> int:
    answer = airflow.api.get(
        f"/api/v2/dags/{TRAINING}/dagRuns/{run_id}/taskInstances/{PIPELINE}.ingest/xcomEntries/rows",
        deserialize="true",
    )
    value = answer["value"]
    return int(json.loads(value) if isinstance(value, str) else value)


def _trained(airflow: AirflowServices, run_id: str) -> dict[str, Any]:
    states = {ti["task_id"]: ti["state"] for ti in airflow.api.task_instances(TRAINING, run_id)}
    assert states.get(f"{PIPELINE}.train") == "success", f"{states}\n{airflow.log_tails()}"
    return states


def test_new_rows_in_the_source_table_start_trainings(
    airflow: AirflowServices, mlops_stack: MlopsStack, source_database: str
) -> None:
    from airflow_mlops.cli import replay

    api = airflow.api
    for dag_id in (TRAINING, WATCH):
        api.wait_for_dag(dag_id)
    api.unpause(TRAINING)
    api.unpause(WATCH)

    first = wait_for_run_caused_by(airflow.api, TRAINING, set(), (DATASET_URI, WATCH, None), timeout=240)
    assert (first["run_type"], first["triggered_by"]) == ("asset_triggered", "asset")
    api.wait_for_run(TRAINING, first["dag_run_id"], timeout=400)
    _trained(airflow, first["dag_run_id"])
    assert _ingested_rows(airflow, first["dag_run_id"]) == 27004 + 24951  # January and February
    known = {run["dag_run_id"] for run in api.wait_until_idle(TRAINING, timeout=180)}

    replay.replay([3], source_database)  # March's rows arrive past the snapshot's watermark
    second = wait_for_run_caused_by(airflow.api, TRAINING, known, (DATASET_URI, WATCH, None), timeout=240)
    api.wait_for_run(TRAINING, second["dag_run_id"], timeout=400)
    _trained(airflow, second["dag_run_id"])
    assert _ingested_rows(airflow, second["dag_run_id"]) == 27004 + 24951 + 28834

    watch_runs = {run["state"] for run in api.runs(WATCH)}
    assert "success" in watch_runs, api.runs(WATCH)
