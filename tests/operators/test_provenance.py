"""Spec provenance end to end: TrainModelOperator records it from a real git repository, and
CheckSpecProvenanceOperator judges it from MLflow, blocking or notifying as ``review`` says."""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from airflow_mlops.core import contracts
from airflow_mlops.core.provenance import spec_provenance
from airflow_mlops.core.registry import register_version, registration_tags
from airflow_mlops.exceptions import MlopsVerdictFailure
from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.provenance import CheckSpecProvenanceOperator
from airflow_mlops.operators.training import TrainModelOperator
from tests.notifiers.test_webhook import Receiver
from tests.operators.monitoring_support import MODEL, Champion, received, small_spec, task_context, use_shared_champion

NOW = datetime(2013, 3, 2, tzinfo=UTC)
SPEC_PATH = "include/pipelines/flights_small.yaml"


def git(folder: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Champion:
    return use_shared_champion(monkeypatch)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository holding a pipeline file, committed."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for prefix in ("GIT_AUTHOR", "GIT_COMMITTER"):
        monkeypatch.setenv(f"{prefix}_NAME", "Pipeline Owner")
        monkeypatch.setenv(f"{prefix}_EMAIL", "owner@example.com")
    root = tmp_path / "project"
    (root / "include" / "pipelines").mkdir(parents=True)
    (root / SPEC_PATH).write_text(yaml.safe_dump({"training": small_spec()}))
    git(root, "init", "--quiet")
    git(root, "add", ".")
    git(root, "commit", "--quiet", "-m", "flights pipeline")
    return root


def check(review: str, **target: Any) -> CheckSpecProvenanceOperator:
    return CheckSpecProvenanceOperator(
        task_id="check_spec_provenance", review=review, notifiers=[WebhookNotifier(webhook_conn_id="alerts")], **target
    )


def run_recording(provenance_tags: dict[str, str]) -> str:
    """A finished MLflow run carrying the given provenance tags, as training leaves one."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    hook = MlflowHook()
    client = hook.get_conn()
    run = client.create_run(hook.ensure_experiment("provenance-checks"), tags=provenance_tags)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


@pytest.mark.slow
def test_training_records_where_its_spec_came_from_and_the_check_passes_it(
    env: Champion, project: Path, alerts: Receiver
) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    context = {**task_context(NOW), "ds": "2013-03-01", "dag": SimpleNamespace(fileloc=str(project / "dags" / "ct.py"))}
    # What the task runner gives a task: the DAG bundle it runs from, pinned to a version.
    context["ti"].bundle_instance = SimpleNamespace(name="dags-folder", version="v42", path=project)
    training = TrainModelOperator(
        task_id="train",
        pipeline="flights",
        snapshot_uri=env.snapshot_uri,
        snapshot_sha256=env.training.dataset_sha256,
        spec=str(project / SPEC_PATH),
    ).execute(context)
    client = MlflowHook().get_conn()
    tags = client.get_run(training["run_id"]).data.tags
    assert tags[contracts.TAG_SPEC_STATE] == "clean" and tags[contracts.TAG_SPEC_STATE_BY] == "git"
    assert tags[contracts.TAG_SPEC_COMMIT] == git(project, "rev-parse", "HEAD")
    assert tags[contracts.TAG_SPEC_REPO_PATH] == SPEC_PATH and tags[contracts.TAG_SPEC_TRACKED] == "true"
    assert tags[contracts.TAG_SPEC_SHA256] == hashlib.sha256((project / SPEC_PATH).read_bytes()).hexdigest()
    assert (tags[contracts.TAG_BUNDLE_NAME], tags[contracts.TAG_BUNDLE_VERSION]) == ("dags-folder", "v42")
    assert training["spec_provenance"]["state"] == "clean"

    # Registration copies the tags onto the version; the check, even under require, lets it through.
    registration = register_version(
        client,
        "flights_reviewed",
        training["run_id"],
        source=f"runs:/{training['run_id']}/{contracts.ARTIFACT_NATIVE_MODEL}",
        tags=registration_tags(tags, training["run_id"], None),
        description="provenance test",
    )
    assert registration.tags[contracts.TAG_SPEC_STATE] == "clean"
    verdict = check("require", model_name="flights_reviewed", model_version=registration.version).execute(
        task_context(NOW)
    )
    assert verdict["severity"] == "ok", verdict["message"]
    assert (verdict["model_version"], verdict["run_id"]) == (registration.version, training["run_id"])
    assert f"Spec {SPEC_PATH}" in verdict["message"] and "unchanged" in verdict["message"]
    assert alerts.requests == []


def test_an_edited_spec_blocks_under_require_and_notifies_under_warn(
    project: Path, env: Champion, alerts: Receiver
) -> None:
    spec = project / SPEC_PATH
    spec.write_text(spec.read_text() + "# tried a deeper tree\n")
    run_id = run_recording(spec_provenance(spec).tags())

    context = task_context(NOW)
    with pytest.raises(MlopsVerdictFailure, match="trained with uncommitted changes"):
        check("require", run_id=run_id).execute(context)
    pushed = context["ti"].pushed["return_value"]  # the finding is in XCom before the task fails
    assert (pushed["severity"], pushed["run_id"]) == ("alert", run_id)
    assert pushed["details"]["provenance"]["repo_path"] == SPEC_PATH

    warned = check("warn", run_id=run_id).execute(task_context(NOW))
    assert warned["severity"] == "warn" and "differs from HEAD" in warned["message"]
    unjudged = check("off", run_id=run_id).execute(task_context(NOW))
    assert unjudged["severity"] == "ok" and unjudged["message"].startswith("Not judged (spec_review: off)")
    assert [(p["check"], p["severity"]) for p in received(alerts)] == [
        ("spec_provenance", "alert"),
        ("spec_provenance", "warn"),
    ]


def test_untracked_and_unrecorded_specs_are_findings(project: Path, tmp_path: Path, env: Champion) -> None:
    draft = project / "include" / "pipelines" / "draft.yaml"
    draft.write_text("training: {}\n")
    with pytest.raises(MlopsVerdictFailure, match="it was never submitted"):
        check("require", run_id=run_recording(spec_provenance(draft).tags())).execute(task_context(NOW))
    loose = tmp_path / "copied.yaml"  # a pipeline file copied out of the repository
    loose.write_text("training: {}\n")
    outside = check("warn", run_id=run_recording(spec_provenance(loose).tags())).execute(task_context(NOW))
    assert outside["severity"] == "warn" and "is not in a git work tree" in outside["message"]
    # The shared champion was trained without the operator: it records no provenance at all.
    with pytest.raises(MlopsVerdictFailure, match="records no spec provenance"):
        check("require", model_name=MODEL).execute(task_context(NOW))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"review": "block", "run_id": "x"}, r"The 'review' argument must be 'require', 'warn' or 'off'\. Got 'block'"),
        ({"review": "warn"}, "Give 'run_id', or 'model_name'"),
    ],
    ids=["bad-review", "nothing-to-judge"],
)
def test_bad_arguments_fail_without_retry_naming_them(env: Champion, arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(MlopsVerdictFailure, match=message):
        CheckSpecProvenanceOperator(task_id="check_spec_provenance", **arguments).execute(task_context(NOW))


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


REVIEW_DAG = """
import pendulum
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG

from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.provenance import CheckSpecProvenanceOperator

with DAG(
    dag_id="spec_review_before_promotion",
    schedule=None,
    start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
    params={{"review": "warn"}},
) as dag:
    judged = CheckSpecProvenanceOperator(
        task_id="check_spec_provenance",
        model_name={model!r},
        review="{{{{ params.review }}}}",
        notifiers=[WebhookNotifier(webhook_conn_id="alerts")],
    )
    judged >> EmptyOperator(task_id="promote")
"""


@pytest.mark.slow
def test_in_a_dag_require_stops_the_promotion_and_warn_lets_it_through(
    airflow_db: None, env: Champion, alerts: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run by Airflow (``dag.test()``): the failed check leaves the promotion after it upstream_failed."""
    import importlib.util

    import pendulum
    from airflow.utils.state import DagRunState, TaskInstanceState

    folder = tmp_path / "dags"
    folder.mkdir()
    path = folder / "spec_review_before_promotion.py"
    path.write_text(REVIEW_DAG.format(model=MODEL))  # the shared champion records no spec provenance
    bundles = [{"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
                "kwargs": {"path": str(folder)}}]  # fmt: skip
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps(bundles))
    spec = importlib.util.spec_from_file_location("spec_review_before_promotion", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]

    def states(review: str, day: int) -> tuple[Any, dict[str, Any]]:
        run = module.dag.test(logical_date=pendulum.datetime(2013, 3, day, tz="UTC"), run_conf={"review": review})
        return run.state, {ti.task_id: ti.state for ti in run.get_task_instances()}

    assert states("require", 1) == (
        DagRunState.FAILED,
        {"check_spec_provenance": TaskInstanceState.FAILED, "promote": TaskInstanceState.UPSTREAM_FAILED},
    )
    assert states("warn", 2) == (
        DagRunState.SUCCESS,
        {"check_spec_provenance": TaskInstanceState.SUCCESS, "promote": TaskInstanceState.SUCCESS},
    )
    payloads = received(alerts)
    assert [(p["severity"], p["task_id"]) for p in payloads] == [
        ("alert", "check_spec_provenance"),
        ("warn", "check_spec_provenance"),
    ]
    assert "records no spec provenance" in payloads[0]["text"]
