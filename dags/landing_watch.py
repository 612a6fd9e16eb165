"""New data starts a training: one watch DAG per pipeline file with ``data.retrain_on_new_data``.

``new_data_<pipeline>`` runs every ``min_interval``. Its one task, a deferrable
:class:`~airflow_mlops.sensors.ingestion.PipelineNewDataSensor`, waits in the triggerer (no worker slot)
until ``min_rows`` rows past the latest training snapshot's watermark (a SQL source) or ``min_files``
files newer than that snapshot (a files source) have arrived. Its success emits the pipeline's dataset
asset ``x-mlops://<pipeline>/dataset``, on which ``continuous_training`` is scheduled: that run ingests a
new snapshot and trains. When the interval passes without enough new data the run is skipped, and the
next run looks again.

Why a sensor DAG rather than an ``AssetWatcher`` on the dataset asset: a watcher's trigger is fixed when
the DAG is parsed, but "new" means "past the latest snapshot", which moves with every training; the
sensor reads it when each run starts. Each look is also a visible run with a log, and ``min_interval``
is the DAG's schedule, so two trainings started by new data are at least that far apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pendulum
from airflow.sdk import DAG

from airflow_mlops import settings
from airflow_mlops.core.pipeline import PipelineFile, discover
from airflow_mlops.core.pipeline.source import RetrainOnNewData

if TYPE_CHECKING:
    from airflow_mlops.sensors.ingestion import PipelineNewDataSensor

PROJECT = Path(__file__).resolve().parents[1]
PIPELINE_FOLDER = Path(settings.pipelines_folder(str(PROJECT / "include" / "pipelines"))).resolve()
WATCHED = [
    (p, p.retrain_on_new_data)
    for p in discover(PIPELINE_FOLDER, checked=settings.checked_pipelines_folder())
    if p.retrain_on_new_data is not None
]


def dag_id(pipeline: str) -> str:
    return f"new_data_{pipeline}"


def watch_sensor(pipeline: PipelineFile, rule: RetrainOnNewData) -> PipelineNewDataSensor:
    """The sensor of one pipeline's source; its success is the pipeline's dataset event."""
    # Imported here: with no pipeline watched (the shipped files) a parse of this file needs neither.
    from airflow_mlops.operators.ingestion import dataset_asset
    from airflow_mlops.sensors.ingestion import PipelineNewDataSensor

    interval = rule.min_interval.total_seconds()
    landing = pipeline.landing_uri(settings.storage_root())
    source = pipeline.source
    files = {"path": landing, "pattern": pipeline.training_pattern}
    sql = {"table": source.table, "query": source.query, "watermark_column": pipeline.watermark_column}
    on_s3 = landing.startswith("s3://")
    return PipelineNewDataSensor(
        task_id="wait_for_new_data",
        pipeline=pipeline.name,
        source="sql" if source.kind == "sql" else ("s3" if on_s3 else "local"),
        **(sql if source.kind == "sql" else files),
        min_count=rule.min_count,
        sql_conn_id=source.connection or "mlops_sql_default",
        aws_conn_id=settings.storage_conn_id() if on_s3 else None,
        storage_conn_id=settings.storage_conn_id() if settings.storage_root().startswith("s3://") else None,
        deferrable=True,
        poke_interval=min(300.0, max(interval / 10, 10.0)),
        timeout=max(interval - 30.0, 30.0),  # give up before the next run starts
        on_timeout="skip",
        outlets=[dataset_asset(pipeline.name)],
    )


for _pipeline, _rule in WATCHED:
    with DAG(
        dag_id=dag_id(_pipeline.name),
        schedule=_rule.min_interval,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["mlops", "training", "data-event"],
        doc_md=__doc__,
    ):
        watch_sensor(_pipeline, _rule)
