"""A small loop built from the provider's operators, for the end-to-end harness tests.

``mlops_e2e_ingest`` ingests a local Parquet file and so emits the dataset asset; ``mlops_e2e_training``
is scheduled on that asset: validate -> train -> gate -> register -> promote. ``mlops_e2e_scoring``
fans scoring out over the partitions of a folder with dynamic task mapping. The test sets the inputs
through ``MLOPS_E2E_*`` environment variables; the training spec is the shipped flights spec with
fewer trees, so a run takes seconds.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from airflow.sdk import dag

from airflow_mlops.operators.gating import EvaluateModelGateOperator
from airflow_mlops.operators.ingestion import IngestDatasetOperator, dataset_asset
from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
from airflow_mlops.operators.scoring import ListPartitionsOperator, ResolveModelVersionOperator, ScoreBatchOperator
from airflow_mlops.operators.training import TrainModelOperator
from airflow_mlops.operators.validation import ValidateDatasetOperator

PIPELINE = "e2e_flights"
MODEL = "e2e_flights_delay"
SOURCE = os.environ.get("MLOPS_E2E_SOURCE", "/nonexistent/flights.parquet")
PARTITIONS = os.environ.get("MLOPS_E2E_PARTITIONS", "/nonexistent/partitions")
REPORTS_URL = os.environ.get("MLOPS_E2E_REPORTS_URL") or None
SPEC = yaml.safe_load(
    (Path(__file__).resolve().parents[3] / "include" / "pipelines" / "flights_delay.yaml").read_text()
)
SPEC["training"]["estimator"]["params"].update(n_estimators=40, num_leaves=15)
SPEC["training"]["reference_rows"] = 500
# A classic operator's receipt is one XCom (return_value): ``op.output["key"]`` would look for an XCom
# named "key", so the fields are read from the receipt in templates.
SNAPSHOT = "{{ (triggering_asset_events.values() | first | last).extra['uri'] }}"
SNAPSHOT_SHA256 = "{{ (triggering_asset_events.values() | first | last).extra['sha256'] }}"
RUN_ID = "{{ ti.xcom_pull(task_ids='train')['run_id'] }}"
VERSION = "{{ ti.xcom_pull(task_ids='register')['version'] }}"
PARTITION = "{{ (triggering_asset_events.values() | first | last).extra['partition'] }}"


@dag(dag_id="mlops_e2e_ingest", schedule=None, catchup=False, tags=["mlops-e2e"])
def ingest() -> None:
    IngestDatasetOperator(task_id="ingest", pipeline=PIPELINE, source="local", path=SOURCE)


@dag(dag_id="mlops_e2e_training", schedule=[dataset_asset(PIPELINE)], catchup=False, tags=["mlops-e2e"])
def training() -> None:
    validate = ValidateDatasetOperator(
        task_id="validate", snapshot_uri=SNAPSHOT, snapshot_sha256=SNAPSHOT_SHA256, pipeline=PIPELINE,
        partition=PARTITION, reference_uri=SNAPSHOT, report_base_url=REPORTS_URL,
    )  # fmt: skip
    train = TrainModelOperator(
        task_id="train", pipeline=PIPELINE, snapshot_uri=SNAPSHOT, snapshot_sha256=SNAPSHOT_SHA256, spec=SPEC,
        partition=PARTITION,
    )  # fmt: skip
    gate = EvaluateModelGateOperator(
        task_id="gate", model_name=MODEL, candidate_run_id=RUN_ID, pipeline=PIPELINE,
        partition=PARTITION, policy={"floors": {"roc_auc": 0.5}}, check_native_parity=False,
    )  # fmt: skip
    register = RegisterModelOperator(task_id="register", model_name=MODEL, gate_receipt=gate.output)
    promote = PromoteModelOperator(
        task_id="promote", model_name=MODEL, pipeline=PIPELINE, version=VERSION,
        gate_receipt=gate.output,
    )  # fmt: skip
    validate >> train >> gate >> register >> promote


@dag(dag_id="mlops_e2e_scoring", schedule=None, catchup=False, tags=["mlops-e2e"])
def scoring() -> None:
    champion = ResolveModelVersionOperator(task_id="resolve_champion", model_name=MODEL)
    partitions = ListPartitionsOperator(task_id="list_partitions", input_uri=PARTITIONS)
    ScoreBatchOperator.partial(
        task_id="score", model_name=MODEL, pipeline=PIPELINE, model_version=champion.output["model_version"],
    ).expand_kwargs(partitions.output)  # fmt: skip


ingest()
training()
scoring()
