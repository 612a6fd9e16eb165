"""OpenLineage: what each operator reports, and the events Airflow's OpenLineage provider emits for a run.

The unit tests map receipts to datasets and facets. The run test trains a champion with the
``continuous_training`` DAG (``dag.test()``) in a fresh interpreter where the OpenLineage provider is
configured with its file transport (no network), and reads the events it wrote: the snapshot with its
schema, the validation results as a data-quality facet, the registered model version as an output; then
``batch_serving`` scores with that version (an input of scoring) and checks drift (a run facet).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.operators.drift import CheckDriftOperator
from airflow_mlops.operators.gating import EvaluateModelGateOperator
from airflow_mlops.operators.lineage import dataset_name, lineage_of, model_version_uri, operator_lineage
from airflow_mlops.operators.validation import ValidateDatasetOperator
from tests.support import data

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/srv/mlops/p/snapshots/x/data.parquet", ("file", "/srv/mlops/p/snapshots/x/data.parquet")),
        ("file:///srv/a.parquet", ("file", "/srv/a.parquet")),
        ("s3://bucket/p/data.parquet", ("s3://bucket", "p/data.parquet")),
        ("mlflow://mlflow:5000/models/m/versions/3", ("mlflow://mlflow:5000", "models/m/versions/3")),
    ],
    ids=["local", "file-url", "s3", "model-version"],
)  # fmt: skip
def test_dataset_names_follow_openlineage_naming(uri: str, expected: tuple[str, str]) -> None:
    assert dataset_name(uri) == expected


def test_a_model_version_is_named_by_its_tracking_server() -> None:
    assert model_version_uri("http://mlflow:5000", "m", 2) == "mlflow://mlflow:5000/models/m/versions/2"
    assert model_version_uri("sqlite:////tmp/mlflow.db", "m", "2") == "mlflow://local/models/m/versions/2"


def _ti(receipt: Any) -> Any:
    return SimpleNamespace(task_id="t", map_index=-1, xcom_pull=lambda **_: receipt)


def test_validation_results_become_a_data_quality_facet_on_the_snapshot(tmp_path: Path) -> None:
    from openlineage.client.serde import Serde

    snapshot = tmp_path / "data.parquet"
    data.flights((1,), 50).to_parquet(snapshot, index=False)
    receipt = {
        "passed": False, "suite_name": "flights", "snapshot_uri": str(snapshot), "rows": 50,
        "report_uri": str(tmp_path / "report.html"),
        "failed_expectations": [{"expectation_type": "expect_column_to_exist", "column": "carrier", "blocking": True,
                                 "observed": None, "expected": "present", "reason": "column 'carrier' is missing"}],
    }  # fmt: skip
    operator = ValidateDatasetOperator(
        task_id="t", snapshot_uri=str(snapshot), pipeline="p", storage_root=str(tmp_path)
    )
    lineage = operator_lineage(operator, _ti(receipt))
    (snapshot_in,) = [json.loads(Serde.to_json(d)) for d in lineage.inputs]
    assert snapshot_in["namespace"] == "file" and snapshot_in["name"] == str(snapshot)
    # The schema was read from the Parquet footer: every column of the file, with its type.
    assert {f["name"] for f in snapshot_in["facets"]["schema"]["fields"]} == set(data.flights((1,), 5).columns)
    assertions = snapshot_in["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert (assertions[0]["assertion"], assertions[0]["success"]) == ("expectation_suite:flights", False)
    assert assertions[1]["column"] == "carrier" and assertions[1]["success"] is False
    assert assertions[1]["severity"] == "error"
    assert [d.name for d in lineage.outputs] == [str(tmp_path / "report.html")]


def test_the_drift_share_is_a_run_facet_and_the_champion_an_input(mlops_env: Path) -> None:
    from openlineage.client.serde import Serde

    receipt = {
        "current_uri": "/srv/batch.parquet", "verdict": "drift", "decision": "retrain", "retrain": True,
        "drift_share": 0.4, "weighted_drift_share": 0.5, "drifted_columns": ["dep_delay"],
        "reference": {"model_name": "flights_delay", "version": "1"}, "report_uri": "/srv/report.html",
    }  # fmt: skip
    operator = CheckDriftOperator(task_id="t", pipeline="p", current_uri="x", model_name="flights_delay")
    lineage = operator_lineage(operator, _ti(receipt))
    facet = json.loads(Serde.to_json(lineage.run_facets["mlops_drift"]))
    assert {k: facet[k] for k in ("drift_share", "weighted_drift_share", "drifted_columns", "decision")} == {
        "drift_share": 0.4, "weighted_drift_share": 0.5, "drifted_columns": ["dep_delay"], "decision": "retrain"
    }  # fmt: skip
    assert [(d.namespace, d.name) for d in lineage.inputs] == [
        ("file", "/srv/batch.parquet"), ("mlflow://local", "models/flights_delay/versions/1")
    ]  # fmt: skip


def test_a_rejected_gate_still_reports_its_verdict() -> None:
    receipt = {"passed": False, "verdict": "rejected", "reasons": ["auc below floor"], "evaluation_uri": "/e.parquet"}
    operator = EvaluateModelGateOperator(task_id="t", model_name="m", candidate_run_id="r", pipeline="p")
    lineage = lineage_of(operator, receipt)
    assert lineage.run_facets["mlops_gate"]["passed"] is False
    assert lineage.run_facets["mlops_gate"]["reasons"] == ["auc below floor"]


def test_an_operator_without_a_receipt_reports_nothing() -> None:
    operator = EvaluateModelGateOperator(task_id="t", model_name="m", candidate_run_id="r", pipeline="p")
    lineage = operator_lineage(operator, _ti(None))
    assert (lineage.inputs, lineage.outputs, lineage.run_facets) == ([], [], {})


RUN_SCRIPT = """
import runpy, sys, pendulum
from airflow.utils.db import initdb
initdb()
training = runpy.run_path(sys.argv[1] + "/continuous_training.py")["dag"]
serving = runpy.run_path(sys.argv[1] + "/batch_serving.py")["dag"]
# forced past the gate: this test is about lineage, and 4,000 flights a month may not beat the linear baseline
conf = {"pipeline": "flights_delay", "force_promotion": True}
run = training.test(logical_date=pendulum.datetime(2013, 3, 1, tz="UTC"), run_conf=conf)
print("TRAINING_STATE", run.state)
run = serving.test(logical_date=pendulum.datetime(2013, 4, 1, tz="UTC"))  # serves March with the new champion
print("SERVING_STATE", run.state)
print("SERVING_TASKS", sorted((ti.task_id, ti.map_index, str(ti.state)) for ti in run.get_task_instances()))
"""


@pytest.fixture(scope="module")
def lineage_events(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The OpenLineage events of a continuous_training run and the batch_serving run after it, from the
    provider's file transport."""
    home = tmp_path_factory.mktemp("lineage")
    landing = home / "storage" / "flights_delay" / "landing"
    landing.mkdir(parents=True)
    for month in (1, 2, 3):
        data.flights((month,), 4000).to_parquet(landing / f"flights_2013-{month:02d}.parquet", index=False)
    events = home / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "MLFLOW_", "OPENLINEAGE"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home / "airflow"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
            "AIRFLOW__MLOPS__STORAGE_ROOT": str(home / "storage"),
            "AIRFLOW__MLOPS__MLFLOW_TRACKING_URI": f"sqlite:///{home / 'mlflow.db'}",
            "AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT": str(home / "mlartifacts"),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
                {"type": "file", "log_file_path": str(events), "append": True}
            ),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops_test",
            "AIRFLOW__OPENLINEAGE__EXECUTE_IN_THREAD": "True",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        }
    )
    done = subprocess.run(
        [sys.executable, "-c", RUN_SCRIPT, str(REPO / "dags")],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=1200,  # include/ paths resolve there
    )  # fmt: skip
    output = done.stderr[-6000:] + "\n" + done.stdout[-3000:]
    assert done.returncode == 0 and "TRAINING_STATE success" in done.stdout, output
    assert "SERVING_STATE success" in done.stdout, output
    assert events.exists(), f"no OpenLineage event was written\n{output}"
    return [json.loads(line) for line in events.read_text().splitlines() if line.strip()]


def _complete(events: list[dict[str, Any]], task: str, dag: str = "continuous_training") -> dict[str, Any]:
    found = [e for e in events if e["eventType"] == "COMPLETE" and e["job"]["name"] == f"{dag}.{task}"]
    assert found, f"no COMPLETE event for {task}: {sorted({e['job']['name'] for e in events})}"
    return found[-1]


@pytest.mark.slow
def test_a_training_run_emits_the_snapshot_the_validation_and_the_model_version(
    lineage_events: list[dict[str, Any]],
) -> None:
    ingest = _complete(lineage_events, "flights_delay.ingest")
    (snapshot,) = ingest["outputs"]
    assert snapshot["namespace"] == "file" and snapshot["name"].endswith(".parquet")
    columns = {f["name"] for f in snapshot["facets"]["schema"]["fields"]}
    assert {"dep_delay", "carrier", "origin"} <= columns
    assert snapshot["facets"]["version"]["datasetVersion"]  # the snapshot's sha256

    validate = _complete(lineage_events, "flights_delay.validate")
    (validated,) = validate["inputs"]
    assert validated["name"] == snapshot["name"]  # the same dataset: lineage joins the two tasks
    assertions = validated["inputFacets"]["dataQualityAssertions"]["assertions"]
    assert assertions[0]["assertion"].startswith("expectation_suite:") and assertions[0]["success"] is True

    train = _complete(lineage_events, "flights_delay.train")
    assert snapshot["name"] in {d["name"] for d in train["inputs"]}
    onnx = [d for d in train["outputs"] if d["name"].endswith(".onnx")]
    assert [d["namespace"] for d in onnx] == ["mlflow://local"] and onnx[0]["name"].startswith("runs/")

    gate = _complete(lineage_events, "flights_delay.gate")
    assert gate["run"]["facets"]["mlops_gate"]["passed"] is True

    register = _complete(lineage_events, "flights_delay.register")
    (version,) = register["outputs"]
    assert (version["namespace"], version["name"]) == ("mlflow://local", "models/flights_delay/versions/1")
    assert version["facets"]["version"]["datasetVersion"] == "1"
    promote = _complete(lineage_events, "flights_delay.promote")
    assert [d["name"] for d in promote["outputs"]] == ["models/flights_delay/versions/1"]


@pytest.mark.slow
def test_a_serving_run_reads_the_model_version_and_reports_drift(lineage_events: list[dict[str, Any]]) -> None:
    version = ("mlflow://local", "models/flights_delay/versions/1")
    score = _complete(lineage_events, "flights_delay.score", dag="batch_serving")
    assert version in {(d["namespace"], d["name"]) for d in score["inputs"]}
    (predictions,) = [d for d in score["outputs"] if d["name"].endswith("predictions.parquet")]
    assert {"prediction", "model_version"} <= {f["name"] for f in predictions["facets"]["schema"]["fields"]}

    drift = _complete(lineage_events, "flights_delay.check_drift", dag="batch_serving")
    assert version in {(d["namespace"], d["name"]) for d in drift["inputs"]}  # the champion it compared with
    facet = drift["run"]["facets"]["mlops_drift"]
    assert 0 <= facet["drift_share"] <= 1 and isinstance(facet["drifted_columns"], list)
    assert facet["verdict"] and facet["decision"]
