"""ValidateDatasetOperator.execute() against real files, a real (embedded) MLflow store and moto S3."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.exceptions import DataValidationFailed
from airflow_mlops.links.validation import ValidationReportLink
from airflow_mlops.operators.validation import ValidateDatasetOperator
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[2]
TIME_KEYS = ["sched_dep_ts", "year", "month", "day", "time_hour"]
PARTITION = "2013-07-01"


class RecordingTaskInstance:
    """Stands in for the runtime task instance: records XCom pushes in order."""

    def __init__(self) -> None:
        self.pushed: list[tuple[str, Any]] = []

    def xcom_push(self, key: str, value: Any) -> None:
        json.dumps(value)  # XCom values must be JSON-serializable
        self.pushed.append((key, value))

    def value(self, key: str) -> Any:
        return next(v for k, v in reversed(self.pushed) if k == key)


def _parquet(root: StorageRoot, uri: str, frame: Any) -> str:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return root.write_bytes(uri, buffer.getvalue())


@pytest.fixture(scope="module")
def january() -> Any:
    return flights([1], sample=2000)


@pytest.fixture(scope="module")
def july() -> Any:
    return flights([7], sample=2000)


def _operator(**kwargs: Any) -> ValidateDatasetOperator:
    defaults: dict[str, Any] = {"task_id": "validate", "pipeline": "flights", "partition": PARTITION}
    return ValidateDatasetOperator(**{**defaults, **kwargs})


def test_value_skew_passes_with_a_warning_and_logs_to_mlflow(mlops_env: Path, january: Any, july: Any) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    root = StorageRoot(str(mlops_env / "storage"))
    reference = root.layout("flights", contracts.KIND_SNAPSHOT, "2013-01-01", "data.parquet")
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, reference, january)
    sha = _parquet(root, snapshot, july)
    hook = MlflowHook()
    client = hook.get_conn()
    run_id = client.create_run(hook.ensure_experiment("validation-test")).info.run_id
    ti = RecordingTaskInstance()

    receipt = _operator(
        snapshot_uri=snapshot,
        reference_uri=reference,
        inference={"schema_only_columns": TIME_KEYS, "expected_rows": "2000", "quantile_margin": "0.05"},
        snapshot_sha256=sha,
        mlflow_run_id=run_id,
    ).execute({"ti": ti})

    assert (receipt["passed"], receipt["severity"]) == (True, "warn")
    assert receipt["counts"]["schema"] == 0 and receipt["counts"]["value"] >= 1
    columns = {f["column"] for f in receipt["failed_expectations"]}
    assert "dep_delay" in columns  # July departs later than January
    assert receipt["suite_uri"] == root.layout("flights", "validation", PARTITION, "expectation_suite.json")
    for key in ("suite_uri", "result_uri", "report_uri"):
        assert root.exists(receipt[key]), key
    assert receipt["report_url"] == "file://" + receipt["report_uri"]
    # the link stores the report's key under the root, not an address; the return value carries the receipt
    assert ti.pushed == [(ValidationReportLink.key, {"key": f"flights/validation/{PARTITION}/report.html"})]

    run = client.get_run(run_id)
    assert run.data.tags[contracts.TAG_VALIDATION_SEVERITY] == "warn"
    assert run.data.metrics["validation_value"] == receipt["counts"]["value"]
    logged_suite = json.loads(
        Path(client.download_artifacts(run_id, contracts.ARTIFACT_SUITE, str(mlops_env))).read_text()
    )
    assert logged_suite == json.loads(root.read_bytes(receipt["suite_uri"]))
    summary = Path(client.download_artifacts(run_id, contracts.ARTIFACT_VALIDATION_SUMMARY, str(mlops_env)))
    assert json.loads(summary.read_text())["severity"] == "warn"
    report = Path(client.download_artifacts(run_id, contracts.ARTIFACT_VALIDATION_REPORT, str(mlops_env)))
    assert report.read_text() == root.read_bytes(receipt["report_uri"]).decode()


def test_schema_skew_pushes_the_receipt_then_fails_without_retry(mlops_env: Path, january: Any, july: Any) -> None:
    root = StorageRoot(str(mlops_env / "storage"))
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, snapshot, july.rename(columns={"dep_delay": "dep_delay_min"}))
    ti = RecordingTaskInstance()

    with pytest.raises(DataValidationFailed) as raised:
        _operator(snapshot_uri=snapshot, suite_uri=str(REPO / "include" / "expectations" / "flights.json")).execute(
            {"ti": ti}
        )

    assert isinstance(raised.value, AirflowFailException)  # no retry
    message = str(raised.value)
    assert "failed validation against suite 'nycflights13.flights'" in message
    assert "missing columns ['dep_delay']; unexpected columns ['dep_delay_min']" in message
    assert [k for k, _ in ti.pushed] == [ValidationReportLink.key, "return_value"]
    receipt = ti.value("return_value")
    assert (receipt["passed"], receipt["severity"]) == (False, "error")
    assert receipt["failed_expectations"][0]["kind"] == "schema"
    assert root.exists(receipt["report_uri"]) and receipt["report_uri"] in message


def test_a_shipped_suite_passes_a_clean_month(mlops_env: Path, july: Any) -> None:
    root = StorageRoot(str(mlops_env / "storage"))
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, snapshot, july)
    suite_uri = str(REPO / "include" / "expectations" / "flights.json")
    receipt = _operator(
        snapshot_uri=snapshot, suite_uri=suite_uri, report_base_url="https://reports.example.com"
    ).execute({"ti": RecordingTaskInstance()})
    assert (receipt["severity"], receipt["counts"]["failed"], receipt["suite_uri"]) == ("ok", 0, suite_uri)
    assert receipt["report_url"] == f"https://reports.example.com/flights/validation/{PARTITION}/report.html"


def test_an_altered_snapshot_is_refused_before_it_is_read(mlops_env: Path, july: Any) -> None:
    root = StorageRoot(str(mlops_env / "storage"))
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, snapshot, july)
    with pytest.raises(DataValidationFailed, match=r"has sha256 .* but 0{64} was recorded"):
        _operator(
            snapshot_uri=snapshot,
            suite_uri=str(REPO / "include" / "expectations" / "flights.json"),
            snapshot_sha256="0" * 64,
        ).execute({"ti": RecordingTaskInstance()})


def test_without_a_suite_file_the_model_versions_suite_validates_the_batch(mlops_env: Path, july: Any) -> None:
    """Serving a pipeline file without validation.suite: the suite logged with the model at training."""
    from airflow_mlops.core.validation import log_suite_file
    from airflow_mlops.hooks.mlflow import MlflowHook

    root = StorageRoot(str(mlops_env / "storage"))
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, snapshot, july)
    hook = MlflowHook()
    client = hook.get_conn()
    experiment = hook.ensure_experiment("model-suite-test")
    with_suite, without = (client.create_run(experiment).info.run_id for _ in range(2))
    log_suite_file(client, with_suite, str(REPO / "include" / "expectations" / "flights.json"), root)
    client.create_registered_model("flights_suite")
    for run_id in (with_suite, without):
        client.create_model_version("flights_suite", f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias("flights_suite", contracts.ALIAS_CHAMPION, "1")

    for version in ("1", None):  # pinned, and the champion when no version is given
        receipt = _operator(snapshot_uri=snapshot, model_name="flights_suite", model_version=version).execute(
            {"ti": RecordingTaskInstance()}
        )
        assert (receipt["severity"], receipt["suite_uri"]) == ("ok", "models:/flights_suite/1")
        assert receipt["suite_name"] == "nycflights13.flights"
    saved = root.layout("flights", contracts.KIND_VALIDATION, PARTITION, "expectation_suite.json")
    assert json.loads(root.read_bytes(saved))["name"] == "nycflights13.flights"  # kept beside the report, as evidence
    with pytest.raises(AirflowFailException, match=r"models:/flights_suite/2 .* has no 'validation/expectation_suite"):
        _operator(snapshot_uri=snapshot, model_name="flights_suite", model_version="2").execute(
            {"ti": RecordingTaskInstance()}
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, r"Give exactly one of 'suite_uri'.*Got suite_uri=None, reference_uri=None"),
        ({"suite_uri": "a.json", "reference_uri": "b.parquet"}, r"Give exactly one of 'suite_uri'"),
        ({"suite_uri": "a.json", "inference": {"range_margin": "0.2"}}, r"apply to 'reference_uri' only"),
        ({"suite_uri": "a.json", "partition": ""}, r"partition key must be a single path segment.*Got ''"),
    ],
    ids=["neither-suite-nor-reference", "both", "inference-with-a-suite-file", "partition-rendered-empty"],
)
def test_bad_parameters_are_named(mlops_env: Path, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        _operator(snapshot_uri="x.parquet", **kwargs).execute({"ti": RecordingTaskInstance()})


def test_validation_on_an_s3_storage_root(
    monkeypatch: pytest.MonkeyPatch, s3_server: Any, s3_bucket: str, january: Any, july: Any
) -> None:
    from airflow_mlops.hooks.storage import StorageHook

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.airflow_conn_uri())
    storage_root = f"s3://{s3_bucket}/ml"
    root = StorageHook(storage_root).get_conn()
    reference = root.layout("flights", contracts.KIND_SNAPSHOT, "2013-01-01", "data.parquet")
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, reference, january)
    _parquet(root, snapshot, july)

    receipt = _operator(
        snapshot_uri=snapshot,
        reference_uri=reference,
        inference={"schema_only_columns": TIME_KEYS, "row_count_tolerance": "None"},
        storage_root=storage_root,
    ).execute({"ti": RecordingTaskInstance()})

    assert receipt["passed"] is True and receipt["counts"]["schema"] == 0
    assert receipt["report_uri"] == f"{storage_root}/flights/validation/{PARTITION}/report.html"
    assert receipt["report_url"] == (
        f"https://s3.console.aws.amazon.com/s3/object/{s3_bucket}?prefix=ml/flights/validation/{PARTITION}/report.html"
    )
    keys = {o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert {
        f"ml/flights/validation/{PARTITION}/{n}"
        for n in ("expectation_suite.json", "validation_result.json", "report.html")
    } <= keys


DAG_FILE = """
import os

import pendulum
from airflow.sdk import DAG

from airflow_mlops.operators.validation import ValidateDatasetOperator

with DAG("validation_it", start_date=pendulum.datetime(2013, 7, 1, tz="UTC"), schedule=None):
    ValidateDatasetOperator(
        task_id="validate",
        snapshot_uri=os.environ["MLOPS_TEST_SNAPSHOT"],
        suite_uri=os.environ["MLOPS_TEST_SUITE"],
        pipeline="flights",
        partition="{{ ds }}",
        retries=3,
    )
"""


@pytest.mark.slow
def test_in_airflow_a_schema_skew_fails_once_and_leaves_receipt_and_link(
    mlops_env: Path, monkeypatch: pytest.MonkeyPatch, july: Any
) -> None:
    """Through a real task run (dag.test): no retry, the receipt survives the failure, the UI link is set."""
    import pendulum
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils import db
    from airflow.utils.session import create_session

    root = StorageRoot(str(mlops_env / "storage"))
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "data.parquet")
    _parquet(root, snapshot, july.drop(columns=["carrier"]))
    dags = mlops_env / "dags"
    dags.mkdir()
    (dags / "validation_it.py").write_text(DAG_FILE)
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(dags))
    bundle = {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle"}
    monkeypatch.setenv(
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{**bundle, "kwargs": {"path": str(dags)}}])
    )
    monkeypatch.setenv("MLOPS_TEST_SNAPSHOT", snapshot)
    monkeypatch.setenv("MLOPS_TEST_SUITE", str(REPO / "include" / "expectations" / "flights.json"))
    db.initdb()

    dag = DagBag(str(dags)).get_dag("validation_it")
    run = dag.test(logical_date=pendulum.datetime(2013, 7, 1, tz="UTC"))

    assert run.state == "failed"
    with create_session() as session:
        (ti,) = session.query(TaskInstance).filter_by(dag_id="validation_it", run_id=run.run_id).all()
        assert (ti.state, ti.try_number) == ("failed", 1)  # retries=3 but a verdict is not retried
        xcoms = {
            x.key: x.value for x in session.query(XComModel).filter_by(dag_id="validation_it", run_id=run.run_id).all()
        }
    receipt = xcoms["return_value"]
    receipt = json.loads(receipt) if isinstance(receipt, str) else receipt
    assert receipt["severity"] == "error"
    assert "column 'carrier' is missing from the data" in [f["reason"] for f in receipt["failed_expectations"]]
    link = xcoms[ValidationReportLink().xcom_key]
    link = json.loads(link) if link.startswith('"') else link
    # What the worker stored for the UI: the plugin's go address with the report's key, resolved when clicked.
    assert link == f"/mlops/go/file?key={quote(f'flights/validation/{PARTITION}/report.html', safe='')}"
    assert receipt["report_url"] == "file://" + receipt["report_uri"]
