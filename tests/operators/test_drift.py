"""Drift operators through execute(): real embedded MLflow, real files, real Evidently reports."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pendulum
import pytest
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.exceptions import DataValidationFailed
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.links.drift import DriftReportLink
from airflow_mlops.operators.drift import CheckDriftOperator, JoinLabelsOperator, drift_alias, drift_asset
from tests.support import drift as flights_drift

MODEL = "flights_delay"


class FakeTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = json.loads(json.dumps(value))  # XCom values must be JSON


def context_for(day: str) -> dict[str, Any]:
    moment = pendulum.parse(day)
    return {
        "ti": FakeTaskInstance(), "outlet_events": OutletEventAccessors(),
        "logical_date": moment, "data_interval_end": moment.add(months=1),
    }  # fmt: skip


def alias_events(context: dict[str, Any], pipeline: str) -> list[Any]:
    return list(context["outlet_events"][drift_alias(pipeline)].asset_alias_events)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """An embedded deployment with a registered champion whose run carries a reference and a spec."""
    home = tmp_path_factory.mktemp("drift-deployment")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(home / "storage"))
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(home / "mlartifacts"))
        model, reference = flights_drift.model_and_reference()
        hook = MlflowHook()
        client = hook.get_conn()
        experiment = hook.ensure_experiment("flights-training")
        run_id = client.create_run(experiment, run_name="train").info.run_id
        with tempfile.TemporaryDirectory() as folder:
            for relative, write in (
                (contracts.ARTIFACT_REFERENCE, lambda p: reference.to_parquet(p, index=False)),
                (contracts.ARTIFACT_SPEC, lambda p: Path(p).write_text(json.dumps(flights_drift.training_spec()))),
            ):
                path = Path(folder) / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                write(path)
                client.log_artifact(run_id, str(path), artifact_path=os.path.dirname(relative))
        client.set_terminated(run_id)
        client.create_registered_model(MODEL)
        version = client.create_model_version(MODEL, source=f"runs:/{run_id}/reference", run_id=run_id)
        client.set_registered_model_alias(MODEL, contracts.ALIAS_CHAMPION, version.version)
        storage = home / "storage"
        batches = {}
        for month in (4, 7):
            batch = storage / "flights" / contracts.KIND_SERVING_LOG / f"2013-{month:02d}" / "sample.parquet"
            batch.parent.mkdir(parents=True)
            flights_drift.serving_log(model, month, sample=2500).to_parquet(batch, index=False)
            batches[month] = str(batch)
        yield {"home": home, "storage": storage, "model": model, "run_id": run_id, "experiment": experiment,
               "reference": reference, "batches": batches, "client": client}  # fmt: skip


def check(pipeline: str, current_uri: str, **kwargs: Any) -> CheckDriftOperator:
    kwargs.setdefault("model_name", MODEL)
    kwargs.setdefault("spec", {"html_report": False})
    return CheckDriftOperator(task_id="check_drift", pipeline=pipeline, current_uri=current_uri, **kwargs)


def test_check_against_the_champion_writes_logs_and_emits_when_the_policy_says_retrain(
    deployment: dict[str, Any],
) -> None:
    operator = check(
        "emit", deployment["batches"][7], spec={"report_sample_size": 1500},
        policy={"drift_share": 0.3, "cooldown": "30d"}, partition="2013-07",
    )  # fmt: skip
    context = context_for("2013-07-01")
    receipt = operator.execute(context)
    assert receipt["verdict"] == "drift" and receipt["retrain"] and receipt["decision"] == "retrain"
    assert receipt["drift_share"] >= 0.3 and "temp" in receipt["drifted_columns"]
    assert receipt["reference"] == {"id": f"{MODEL}/v1", "model_name": MODEL, "version": "1",
                                    "run_id": deployment["run_id"]}  # fmt: skip
    assert set(receipt["scores"]) >= {"temp", "dest", "prediction", "probability_1"}
    storage = deployment["storage"]
    assert receipt["report_uri"] == f"{storage}/emit/drift/2013-07/report.html"
    assert Path(receipt["report_uri"]).stat().st_size > 10_000
    summary = json.loads(Path(receipt["summary_uri"]).read_text())
    assert summary["result"]["drift_share"] == receipt["drift_share"] and summary["reference"]["version"] == "1"
    assert context["ti"].xcom[DriftReportLink.key] == {"key": "emit/drift/2013-07/report.html"}
    # the asset event goes through the alias, carrying reason and figures
    (event,) = alias_events(context, "emit")
    assert event.dest_asset_key.uri == "x-mlops://emit/drift" == drift_asset("emit").uri
    assert event.extra["reason"].startswith("drift share") and event.extra["drift_share"] == receipt["drift_share"]
    assert event.extra["report_uri"] == receipt["report_uri"] and receipt["asset_event"]["extra"] == event.extra
    assert operator.outlets == [drift_alias("emit")]
    # MLflow: one step per batch on the champion's monitoring run, in the champion's experiment
    client = deployment["client"]
    run = client.get_run(receipt["mlflow_run_id"])
    assert run.info.experiment_id == deployment["experiment"]
    assert run.data.tags["mlops.monitoring_of"] == f"{MODEL}/v1"
    assert run.data.tags[contracts.TAG_SOURCE_RUN_ID] == deployment["run_id"]
    (point,) = client.get_metric_history(run.info.run_id, "drift_share")
    assert point.value == receipt["drift_share"]
    assert point.step == int(datetime.fromisoformat(receipt["as_of"]).timestamp())
    assert run.data.metrics["drift_score.temp"] == receipt["scores"]["temp"]
    assert run.data.metrics["policy.retrain"] == 1.0
    # a rerun of the batch: same decision, no second point, no duplicate observation
    again = check("emit", deployment["batches"][7], policy={"drift_share": 0.3, "cooldown": "30d"},
                  partition="2013-07").execute(context_for("2013-07-01"))  # fmt: skip
    assert again["decision"] == "retrain" and again["mlflow_run_id"] == receipt["mlflow_run_id"]
    assert len(client.get_metric_history(run.info.run_id, "drift_share")) == 1
    state = json.loads(Path(receipt["state_uri"]).read_text())
    assert [o["batch_id"] for o in state["observations"]] == ["2013-07"]


def test_no_event_when_the_policy_says_no(deployment: dict[str, Any]) -> None:
    context = context_for("2013-04-01")
    receipt = check("quiet", deployment["batches"][4], policy={"drift_share": 0.9}).execute(context)
    assert receipt["retrain"] is False and receipt["decision"] == "ok" and receipt["asset_event"] is None
    assert alias_events(context, "quiet") == []
    assert receipt["partition"] == "2013-04-01T00:00:00+00:00"  # the logical date by default
    assert receipt["report_uri"] is None and DriftReportLink.key not in context["ti"].xcom


def test_cooldown_suppresses_the_next_trigger(deployment: dict[str, Any]) -> None:
    policy = {"drift_share": 0.2, "cooldown": "120d"}  # batch time is the data interval end: May 1, August 1
    first = check("cool", deployment["batches"][4], policy=policy).execute(context_for("2013-04-01"))
    context = context_for("2013-07-01")
    second = check("cool", deployment["batches"][7], policy=policy).execute(context)
    assert first["decision"] == "retrain" and second["decision"] == "cooldown"
    assert second["next_eligible_at"] == "2013-08-29T00:00:00+00:00" and alias_events(context, "cool") == []


def test_labelled_batch_adds_quality_and_counts_labels(deployment: dict[str, Any]) -> None:
    storage = deployment["storage"]
    join = JoinLabelsOperator(
        task_id="join_labels", pipeline="labels", predictions_uri=deployment["batches"][7],
        labels_uri=str(flights_drift.FLIGHTS_DIR / "flights.parquet"), id_columns=flights_drift.IDS,
        target="arr_delayed_15", source="arr_delay", op=">", value="15", partition="2013-07",
    )  # fmt: skip
    joined = join.execute(context_for("2013-08-01"))
    assert joined["uri"] == f"{storage}/labels/labels/2013-07/labelled.parquet"
    assert joined["rows_labelled"] + joined["rows_pending"] == 2500 and joined["rows_pending"] > 0
    policy = {"drift_share": None, "quality_drop": 0.0, "min_new_labels": 100000}
    receipt = check("labels", joined["uri"], policy=policy, partition="2013-07").execute(context_for("2013-07-01"))
    assert receipt["batch_id"] == "2013-07:labelled" and receipt["summary_uri"].endswith(
        "/2013-07/labelled/summary.json"
    )
    quality = receipt["quality"]
    assert quality["metric"] == "roc_auc" and quality["labelled_rows"] == joined["rows_labelled"]
    assert receipt["decision"] == "awaiting_labels" and "waiting for" in receipt["reasons"][-1]
    run = deployment["client"].get_run(receipt["mlflow_run_id"])
    assert run.data.metrics["labelled_rows"] == joined["rows_labelled"]
    assert run.data.metrics["quality.roc_auc"] == pytest.approx(quality["current"])


def test_explicit_reference_uri_and_monitoring_experiment(deployment: dict[str, Any], tmp_path: Path) -> None:
    reference = tmp_path / "reference.parquet"
    deployment["reference"].to_parquet(reference, index=False)
    spec = {**flights_drift.training_spec(), "html_report": False}
    receipt = check("explicit", deployment["batches"][4], model_name=None, reference_uri=str(reference),
                    spec=spec).execute(context_for("2013-04-01"))  # fmt: skip
    assert receipt["reference"]["id"].startswith("reference-") and receipt["reference"]["uri"] == str(reference)
    run = deployment["client"].get_run(receipt["mlflow_run_id"])
    experiment = deployment["client"].get_experiment(run.info.experiment_id)
    assert experiment.name == "explicit-monitoring"


def test_schema_skew_is_reported_and_can_fail_the_task(deployment: dict[str, Any], tmp_path: Path) -> None:
    skewed = tmp_path / "skewed.parquet"
    pd.read_parquet(deployment["batches"][4]).drop(columns=["temp", "dest"]).to_parquet(skewed, index=False)
    context = context_for("2013-04-01")
    receipt = check("skew", str(skewed)).execute(context)
    assert receipt["verdict"] == "schema_skew" and receipt["schema_skew"]["missing_in_current"] == ["temp", "dest"]
    context = context_for("2013-04-01")
    with pytest.raises(DataValidationFailed, match=r"Schema skew in .*skewed.parquet"):
        check("skew", str(skewed), fail_on_schema_skew=True).execute(context)
    assert context["ti"].xcom["return_value"]["verdict"] == "schema_skew"  # pushed before failing


def test_bad_input_gives_clear_errors(deployment: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"needs 'model_name' .* or 'reference_uri'"):
        check("bad", deployment["batches"][4], model_name=None).execute(context_for("2013-04-01"))
    with pytest.raises(SourceNotFoundError, match="'no_such_model' has no 'champion' alias"):
        check("bad", deployment["batches"][4], model_name="no_such_model").execute(context_for("2013-04-01"))
    with pytest.raises(SourceNotFoundError, match=r"The current batch '.*missing.parquet' does not exist"):
        check("bad", str(tmp_path / "missing.parquet")).execute(context_for("2013-04-01"))
    with pytest.raises(SourceNotFoundError, match=r"The reference '.*nowhere.parquet' does not exist"):
        check("bad", deployment["batches"][4], model_name=None, reference_uri=str(tmp_path / "nowhere.parquet"),
              spec={"html_report": False}).execute(context_for("2013-04-01"))  # fmt: skip
    with pytest.raises(SpecError, match="Unknown DriftPolicy parameter"):
        check("bad", deployment["batches"][4], policy={"drift": 0.3}).execute(context_for("2013-04-01"))


def test_champion_without_a_reference_artifact(deployment: dict[str, Any]) -> None:
    client = deployment["client"]
    run_id = client.create_run(deployment["experiment"]).info.run_id
    client.create_registered_model("bare_model")
    version = client.create_model_version("bare_model", source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("bare_model", contracts.ALIAS_CHAMPION, version.version)
    with pytest.raises(SourceNotFoundError, match=r"'bare_model' v1 .* has no artifact 'reference/reference.parquet'"):
        check("bare", deployment["batches"][4], model_name="bare_model").execute(context_for("2013-04-01"))


def test_storage_root_on_s3(
    deployment: dict[str, Any], s3_server: Any, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_S3_TEST", s3_server.airflow_conn_uri())
    root_uri = f"s3://{s3_bucket}/mlops"
    client = s3_server.client()
    key = "mlops/flights/serving_log/2013-04/sample.parquet"
    client.put_object(Bucket=s3_bucket, Key=key, Body=Path(deployment["batches"][4]).read_bytes())
    operator = check(
        "ons3", f"s3://{s3_bucket}/{key}", storage_root=root_uri, aws_conn_id="s3_test",
        spec={"report_sample_size": 300, "html_report": "always"}, report_base_url="https://reports.example.com/mlops",
    )  # fmt: skip
    context = context_for("2013-04-01")
    receipt = operator.execute(context)
    assert receipt["report_uri"] == f"{root_uri}/ons3/drift/2013-04-01T00:00:00+00:00/report.html"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert {"mlops/ons3/drift/2013-04-01T00:00:00+00:00/report.html", "mlops/ons3/drift/_policy/flights_delay.json",
            "mlops/ons3/drift/2013-04-01T00:00:00+00:00/summary.json"} <= keys  # fmt: skip
    assert context["ti"].xcom[DriftReportLink.key] == {"key": "ons3/drift/2013-04-01T00:00:00+00:00/report.html"}
    link = DriftReportLink().url(operator, context["ti"].xcom[DriftReportLink.key])
    assert link == "https://reports.example.com/mlops/ons3/drift/2013-04-01T00%3A00%3A00%2B00%3A00/report.html"


E2E_DAGS = """
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow_mlops.operators.drift import CheckDriftOperator, drift_asset

with DAG("mlops_drift_e2e_check", schedule=None, start_date=pendulum.datetime(2013, 1, 1)):
    CheckDriftOperator(
        task_id="check_drift", pipeline="e2e", current_uri={current!r}, reference_uri={reference!r},
        spec={spec!r}, policy={{"drift_share": 0.3}}, log_to_mlflow=False,
    )

with DAG("mlops_drift_e2e_retrain", schedule=[drift_asset("e2e")], start_date=pendulum.datetime(2013, 1, 1)):
    EmptyOperator(task_id="retrain")
"""


@pytest.mark.slow
def test_dag_run_emits_the_drift_asset_event_and_queues_the_retraining_dag(
    deployment: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real Airflow 3 run: the alias event lands on x-mlops://e2e/drift and queues the DAG scheduled on it."""
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent
    from airflow.utils.db import initdb
    from airflow.utils.session import create_session

    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    reference = tmp_path / "reference.parquet"
    deployment["reference"].to_parquet(reference, index=False)
    spec = {**flights_drift.training_spec(), "html_report": False}
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "drift_e2e.py").write_text(
        E2E_DAGS.format(current=deployment["batches"][7], reference=str(reference), spec=spec)
    )
    initdb()
    DagBundlesManager().sync_bundles_to_db()
    bag = DagBag(dag_folder=str(folder))
    assert bag.import_errors == {}
    sync_bag_to_db(bag, "dags-folder", None)
    run = bag.dags["mlops_drift_e2e_check"].test(logical_date=pendulum.datetime(2013, 7, 1))
    assert run.state == "success"
    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if e.asset.uri == "x-mlops://e2e/drift"]
        queued = [q.target_dag_id for q in session.query(AssetDagRunQueue).all()]
        (event,) = events
        assert [a.name for a in event.source_aliases] == [drift_alias("e2e").name]
        assert event.extra["reason"] == "drift share 0.545 >= 0.300 (plain: no feature importance to weigh it)"
        assert event.extra["verdict"] == "drift"
        assert event.extra["pipeline"] == "e2e" and "temp" in event.extra["drifted_columns"]
    assert "mlops_drift_e2e_retrain" in queued


# -- input drift, the monitoring run's end, one point per batch, a promotion ---------------------------------
class Recorder:
    """A notifier standing in for a webhook: keeps the alerts it was called with."""

    def __init__(self) -> None:
        self.alerts: list[dict[str, Any]] = []

    def __call__(self, context: dict[str, Any]) -> None:
        self.alerts.append(context["mlops_alert"])


def test_a_shifted_non_feature_column_is_reported_and_notified_without_retraining(
    deployment: dict[str, Any], tmp_path: Path
) -> None:
    """A tariff change in a fee column the model does not read (it would leak the target)."""
    reference = deployment["reference"]
    served = pd.read_parquet(deployment["batches"][4])
    reference.assign(fee=reference["distance"] * 0.10).to_parquet(tmp_path / "reference.parquet", index=False)
    served.assign(fee=served["distance"] * 0.13).to_parquet(tmp_path / "served.parquet", index=False)
    recorder = Recorder()
    spec = {**flights_drift.training_spec(), "html_report": False}
    receipt = check(
        "fees", str(tmp_path / "served.parquet"), model_name=None, reference_uri=str(tmp_path / "reference.parquet"),
        spec=spec, policy={"drift_share": 0.9}, notifiers=[recorder],
    ).execute(context_for("2013-04-01"))  # fmt: skip
    (fee,) = receipt["input_drift"]
    assert fee["column"] == "fee" and fee["severity"] == "input_drift" and fee["test"] == "wasserstein"
    assert fee["score"] == receipt["scores"]["fee"] and fee["score"] > fee["threshold"]
    assert receipt["retrain"] is False and receipt["decision"] == "ok" and receipt["asset_event"] is None
    (alert,) = recorder.alerts
    assert alert["severity"] == "input_drift" and alert["details"]["columns"] == receipt["input_drift"]
    assert "['fee']" in alert["message"]
    run = deployment["client"].get_run(receipt["mlflow_run_id"])
    assert run.data.metrics["input_drift_score.fee"] == pytest.approx(fee["score"])


def test_the_monitoring_run_is_ended_after_each_check(deployment: dict[str, Any]) -> None:
    from airflow_mlops.core.drift import ended_run

    receipt = check("ended", deployment["batches"][4], policy={"drift_share": 0.9}).execute(context_for("2013-04-01"))
    client = deployment["client"]
    assert client.get_run(receipt["mlflow_run_id"]).info.status == "FINISHED"
    with pytest.raises(RuntimeError, match="boom"), ended_run(client, receipt["mlflow_run_id"]):
        raise RuntimeError("boom")
    assert client.get_run(receipt["mlflow_run_id"]).info.status == "FAILED"
    again = check("ended", deployment["batches"][7], policy={"drift_share": 0.9}).execute(context_for("2013-07-01"))
    assert again["mlflow_run_id"] == receipt["mlflow_run_id"]  # the same series, ended again
    assert client.get_run(receipt["mlflow_run_id"]).info.status == "FINISHED"


def test_one_batch_logs_one_retrain_point_when_its_two_checks_disagree(deployment: dict[str, Any]) -> None:
    """The serving check of July triggers on drift; its labelled check (the same rows) alarms again: one retrain."""
    join = JoinLabelsOperator(
        task_id="join_labels", pipeline="points", predictions_uri=deployment["batches"][7],
        labels_uri=str(flights_drift.FLIGHTS_DIR / "flights.parquet"), id_columns=flights_drift.IDS,
        target="arr_delayed_15", source="arr_delay", op=">", value="15", partition="2013-07",
    )  # fmt: skip
    labelled = join.execute(context_for("2013-08-01"))["uri"]
    policy = {"drift_share": 0.3}
    serving = check("points", deployment["batches"][7], policy=policy, partition="2013-07")
    first = serving.execute(context_for("2013-07-01"))
    second = check("points", labelled, policy=policy, partition="2013-07").execute(context_for("2013-07-01"))
    assert first["decision"] == "retrain" and second["decision"] == "already_triggered" and not second["retrain"]
    history = deployment["client"].get_metric_history(first["mlflow_run_id"], "policy.retrain")
    step = int(datetime.fromisoformat(first["as_of"]).timestamp())
    assert [(m.step, m.value) for m in history if m.step == step] == [(step, 1.0)]


def test_after_a_promotion_the_new_champions_reference_is_compared(deployment: dict[str, Any]) -> None:
    """The reference is read from the champion alias at every check: a promotion replaces it."""
    client, name = deployment["client"], "promoted_model"
    client.create_registered_model(name)
    for reference in (deployment["reference"], pd.read_parquet(deployment["batches"][7])):
        run_id = client.create_run(deployment["experiment"]).info.run_id
        with tempfile.TemporaryDirectory() as folder:
            for relative, write in (
                (contracts.ARTIFACT_REFERENCE, lambda p, r=reference: r.to_parquet(p, index=False)),
                (contracts.ARTIFACT_SPEC, lambda p: Path(p).write_text(json.dumps(flights_drift.training_spec()))),
            ):
                path = Path(folder) / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                write(path)
                client.log_artifact(run_id, str(path), artifact_path=os.path.dirname(relative))
        version = client.create_model_version(name, source=f"runs:/{run_id}/reference", run_id=run_id)
        client.set_registered_model_alias(name, contracts.ALIAS_CHAMPION, version.version)
        if str(version.version) == "1":
            before = check("promo", deployment["batches"][7], model_name=name).execute(context_for("2013-07-01"))
    after = check("promo", deployment["batches"][7], model_name=name).execute(context_for("2013-07-01"))
    assert before["reference"]["version"] == "1" and after["reference"]["version"] == "2"
    assert before["reference"]["run_id"] != after["reference"]["run_id"]
    assert before["verdict"] == "drift" and after["drift_share"] == 0.0  # July against July: nothing moved
    assert after["mlflow_run_id"] != before["mlflow_run_id"]  # the new champion's own series
