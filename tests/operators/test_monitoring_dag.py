"""The monitoring tasks wired into a batch-serving DAG as docs/ml_test_score.md proposes, run by Airflow
(``dag.test()``): mapping over scoring receipts, templated receipts, notifiers, the retraining event."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.notifiers.test_webhook import Receiver
from tests.operators.monitoring_support import MODEL, use_shared_champion
from tests.support.data import flights

EXAMPLE_DAG = """
import pendulum
from airflow.sdk import dag

from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.explain import ExplainPredictionOperator
from airflow_mlops.operators.monitoring import CheckNumericalStabilityOperator, CheckPerformanceOperator
from airflow_mlops.operators.monitoring_data import CheckModelDependenciesOperator
from airflow_mlops.operators.monitoring_staleness import CheckModelStalenessOperator
from airflow_mlops.operators.scoring import ListPartitionsOperator, ResolveModelVersionOperator, ScoreBatchOperator


def stability_kwargs(receipt):
    return {{"predictions_uri": receipt["output_uri"], "features_uri": receipt["serving_log_uri"]}}


def explain_kwargs(receipt):
    return {{"input_uri": receipt["serving_log_uri"], "partition": receipt["partition"]}}


@dag(dag_id="monitored_batch_serving", schedule=None, start_date=pendulum.datetime(2013, 1, 1, tz="UTC"), catchup=False)
def monitored_batch_serving():
    alerts = WebhookNotifier(webhook_conn_id="alerts")
    champion = ResolveModelVersionOperator(task_id="resolve_champion", model_name={model!r})
    partitions = ListPartitionsOperator(task_id="list_partitions", input_uri={landing!r})
    score = ScoreBatchOperator.partial(
        task_id="score", model_name={model!r}, model_version=champion.output["model_version"], pipeline="flights",
        serving_log_rows=300,
    ).expand_kwargs(partitions.output)
    check_dependencies = CheckModelDependenciesOperator(
        task_id="check_dependencies", model_name={model!r}, model_version=champion.output["model_version"],
        notifiers=[alerts],
    )
    check_staleness = CheckModelStalenessOperator(
        task_id="check_staleness", model_name={model!r}, pipeline="flights", max_data_age="20d",
        trigger_retraining=True, notifiers=[alerts],
    )
    CheckNumericalStabilityOperator.partial(
        task_id="check_numerical_stability", notifiers=[alerts]
    ).expand_kwargs(score.output.map(stability_kwargs))
    CheckPerformanceOperator.partial(
        task_id="record_throughput", pipeline="flights", metric="scoring_throughput_rows_per_s",
        value_path="throughput_rows_per_s", notifiers=[alerts],
    ).expand(receipt=score.output)
    ExplainPredictionOperator.partial(
        task_id="explain_sample", model_name={model!r}, pipeline="flights", row_index=0
    ).expand_kwargs(score.output.map(explain_kwargs))
    champion >> [check_dependencies, check_staleness]


monitored = monitored_batch_serving()
"""


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


@pytest.mark.slow
def test_monitoring_tasks_run_in_a_batch_serving_dag(
    airflow_db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState, TaskInstanceState

    champion = use_shared_champion(monkeypatch)
    server = Receiver()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS", json.dumps({"conn_type": "mlops_webhook", "host": f"http://127.0.0.1:{server.port}"})
    )
    # The champion learned from January-February; its snapshot's ingestion receipt says so.
    receipt_uri = champion.snapshot_uri.rpartition("/")[0] + "/receipt.json"
    champion.root.write_bytes(receipt_uri, json.dumps({"source_watermark": "2013-02-28T23:59:00"}).encode())
    landing = tmp_path / "landing"
    for month in (3, 4):
        (landing / f"month=2013-{month:02d}").mkdir(parents=True)
        flights(months=[month], sample=800).to_parquet(landing / f"month=2013-{month:02d}" / "part-0.parquet")
    folder = tmp_path / "dags"
    folder.mkdir()
    path = folder / "monitored_batch_serving.py"
    path.write_text(EXAMPLE_DAG.format(model=MODEL, landing=str(landing)))
    bundles = [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(folder)}}]  # fmt: skip
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    spec = importlib.util.spec_from_file_location("monitored_batch_serving", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    try:
        run = module.monitored.test(logical_date=pendulum.datetime(2013, 5, 1, tz="UTC"))
    finally:
        server.close()

    assert run.state == DagRunState.SUCCESS
    states: dict[str, list[Any]] = {}
    for ti in run.get_task_instances():
        states.setdefault(ti.task_id, []).append(ti.state)
    assert all(s == TaskInstanceState.SUCCESS for values in states.values() for s in values), states
    assert len(states["check_numerical_stability"]) == len(states["explain_sample"]) == 2
    # The data the champion learned from is 61 days old on May 1st: stale, notified, retraining asked for.
    payloads = [json.loads(r["body"]) for r in server.requests]
    assert [(p["check"], p["task_id"]) for p in payloads] == [("staleness", "check_staleness")]
    assert "training data is" in payloads[0]["text"] and payloads[0]["dag_id"] == "monitored_batch_serving"
    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if e.asset.uri == "x-mlops://flights/drift"]
    assert [e.extra["check"] for e in events] == ["staleness"]
    for month in ("month=2013-03", "month=2013-04"):
        written = Path(champion.root.uri, "flights", "explanations", month, f"{MODEL}-v{champion.version}-row0.json")
        assert json.loads(written.read_text())["method"] == "lightgbm_pred_contrib"
