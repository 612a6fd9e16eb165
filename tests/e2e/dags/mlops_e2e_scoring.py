"""Mapped batch scoring built from the provider's operators, for the Celery test.

``resolve_champion`` pins the champion version once, ``list_partitions`` lists the Parquet files of a
folder and ``score`` is mapped over them, one task instance per partition: the fan-out a Celery
deployment spreads over its workers. The folder comes from ``MLOPS_E2E_PARTITIONS``, set by the test.
"""

from __future__ import annotations

import os

from airflow.sdk import dag

from airflow_mlops.operators.scoring import ListPartitionsOperator, ResolveModelVersionOperator, ScoreBatchOperator

PIPELINE = "e2e_flights"
MODEL = "e2e_flights_delay"
PARTITIONS = os.environ.get("MLOPS_E2E_PARTITIONS", "/nonexistent/partitions")


@dag(dag_id="mlops_e2e_scoring", schedule=None, catchup=False, tags=["mlops-e2e"])
def scoring() -> None:
    champion = ResolveModelVersionOperator(task_id="resolve_champion", model_name=MODEL)
    partitions = ListPartitionsOperator(task_id="list_partitions", input_uri=PARTITIONS)
    ScoreBatchOperator.partial(
        task_id="score", model_name=MODEL, pipeline=PIPELINE, model_version=champion.output["model_version"]
    ).expand_kwargs(partitions.output)


scoring()
