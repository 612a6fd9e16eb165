"""A person approves one candidate and rejects another through Airflow's human-in-the-loop API, on real services.

Services: api-server, scheduler, dag-processor and triggerer with LocalExecutor, a private PostgreSQL
metadata database, an MLflow tracking server and a local storage root. Two reviewers besides the admin,
``alice`` and ``bob``, have the ``user`` role: enough to trigger runs and answer approvals, nothing more.

1. January-March land. ``continuous_training`` is triggered from its form with ``approval: true``; after the
   gate passes, ``approve_promotion`` waits for a human. Signed in as ``bob``, the test reads the question
   (its body shows the gate evidence's sha256) and answers "Reject" with
   ``PATCH /api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}/-1/hitlDetails``: the run succeeds,
   registration and promotion are skipped, and the candidate run and the evidence bundle record the rejection.
2. A second run on the same months, answered "Approve" by ``alice``: the candidate is registered and
   promoted ``champion``, and the model version's tags carry the decision, who, when and the sha256 shown.

The rejection comes first so that both candidates face the same first-run gate (no champion yet): the test
is about the human step, not the champion comparison. The pipeline file is a variant of ``flights_delay``
that trains quickly (a 40-tree LightGBM on 6,000 flights a month, no search, no ablation, no weather join)
and gates on a floor and the constant baseline, which such a small candidate clears.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, MlopsStack
from tests.support.airflow_services import AirflowServices, ApiClient

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_DEPLOYMENT = Deployment(dags_folder=REPO / "dags", users={"alice": "user", "bob": "user"})
PIPELINE = MODEL = "flights_delay"
TRAINING = "continuous_training"
APPROVAL = f"{PIPELINE}.approve_promotion"
SAMPLE = 6000
PIPELINE_FILE = """\
# flights_delay, small: a quick training for the approval test.
model_name: flights_delay
training:
  task: binary
  target: arr_delayed_15
  features:
    numeric: [hour, minute, sched_dep_time, sched_arr_time, distance]
    categorical: [carrier, origin, dest]
  estimator: {type: lightgbm, params: {n_estimators: 40, learning_rate: 0.1, num_leaves: 15}}
  split: {method: time, column: sched_dep_ts, train: 0.7, validation: 0.15, test: 0.15}
  seed: 42
data:
  landing: landing
  training_pattern: "flights_*.parquet"
  watermark_column: sched_dep_ts
gate:
  on_reject: fail
  policy:
    floors: {roc_auc: 0.55}
    baseline: {kind: prior}
"""


@pytest.fixture(scope="module")
def airflow_extra_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A pipelines folder with only the quick variant of the flights pipeline."""
    folder = tmp_path_factory.mktemp("project") / "include" / "pipelines"
    folder.mkdir(parents=True)
    (folder / f"{PIPELINE}.yaml").write_text(PIPELINE_FILE)
    return {"AIRFLOW__MLOPS__PIPELINES_FOLDER": str(folder)}


def land(storage_root: Path, month: int) -> None:
    """Write one month where the pipeline's landing folder is, as ``airflow_mlops.cli.replay`` does."""
    from tests.support.data import flights

    landing = storage_root / PIPELINE / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    partial = landing / f".flights_2013-{month:02d}.parquet.tmp"
    flights((month,), SAMPLE).to_parquet(partial, index=False)
    partial.rename(landing / f"flights_2013-{month:02d}.parquet")


@dataclass(frozen=True)
class Answered:
    """One run whose approval a reviewer answered: what was asked, the answer Airflow recorded, and after."""

    run_id: str
    question: dict[str, Any]
    answer: dict[str, Any]
    states: dict[str, str]
    receipt: dict[str, Any]  # the gate's
    versions_after: list[Any]  # the model's registered versions once the run finished


def answered_run(airflow: AirflowServices, mlops_stack: MlopsStack, reviewer: ApiClient, option: str) -> Answered:
    """Trigger a training that asks for approval, answer it with ``option`` as ``reviewer``, wait for the end."""
    api = airflow.api
    run_id = reviewer.trigger(TRAINING, conf={"pipeline": PIPELINE, "approval": True})
    question = reviewer.wait_for_question(TRAINING, run_id, APPROVAL, timeout=400)
    answer = reviewer.answer(TRAINING, run_id, APPROVAL, [option])
    api.wait_for_run(TRAINING, run_id, timeout=300)
    states = {ti["task_id"]: ti["state"] for ti in api.task_instances(TRAINING, run_id)}
    path = f"/api/v2/dags/{TRAINING}/dagRuns/{run_id}/taskInstances/{PIPELINE}.gate/xcomEntries/return_value"
    value = api.get(path, deserialize="true")["value"]
    receipt = json.loads(value) if isinstance(value, str) else value
    versions = _client(mlops_stack).search_model_versions(f"name='{MODEL}'")
    # Its own ingest event may queue one more run (which trains nothing): let it finish before the next.
    api.wait_until_idle(TRAINING, timeout=180)
    return Answered(run_id, question, answer, states, dict(receipt), list(versions))


def _client(mlops_stack: MlopsStack) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(mlops_stack.mlflow.url, registry_uri=mlops_stack.mlflow.url)


@pytest.fixture(scope="module")
def reviews(airflow: AirflowServices, mlops_stack: MlopsStack) -> dict[str, Answered]:
    airflow.api.wait_for_dag(TRAINING)
    airflow.api.unpause(TRAINING)
    for month in (1, 2, 3):
        land(mlops_stack.storage_root, month)
    rejected = answered_run(airflow, mlops_stack, airflow.login("bob"), "Reject")
    approved = answered_run(airflow, mlops_stack, airflow.login("alice"), "Approve")
    return {"Reject": rejected, "Approve": approved}


def shown_sha256(question: dict[str, Any]) -> str:
    """The evidence sha256 the approver was shown in the question's body."""
    match = re.search(r"Evidence sha256: `([0-9a-f]{64})`", question.get("body") or "")
    assert match, question.get("body")
    return match.group(1)


def check_record(tags: dict[str, str], review: Answered, decision: str, who: str) -> None:
    """The tags record the decision, who made it, when Airflow says it was made, and the evidence shown."""
    from airflow_mlops.core.registry import approval as recorded
    from airflow_mlops.core.storage import sha256_bytes

    assert (tags[recorded.TAG_DECISION], tags[recorded.TAG_BY]) == (decision, who), tags
    assert review.answer["responded_by"]["name"] == who, review.answer
    at = dt.datetime.fromisoformat(tags[recorded.TAG_AT])
    assert at == dt.datetime.fromisoformat(review.answer["responded_at"].replace("Z", "+00:00")), (at, review.answer)
    shown = shown_sha256(review.question)
    assert tags[recorded.TAG_EVIDENCE_SHA256] == shown
    assert sha256_bytes(Path(review.receipt["evidence_uri"]).read_bytes()) == shown  # the evidence as it is now
    assert tags[recorded.TAG_EVIDENCE_URI] == review.receipt["evidence_uri"]


def test_the_question_shows_the_gate_evidence(reviews: dict[str, Answered]) -> None:
    for option, review in reviews.items():
        question = review.question
        assert question["options"] == ["Approve", "Reject"], question
        assert review.receipt["candidate_run_id"] in question["subject"], (option, question["subject"])
        assert review.receipt["evidence_uri"] in question["body"], (option, question["body"])
        assert review.answer["chosen_options"] == [option]


def test_a_rejection_skips_registration_and_is_recorded(
    airflow: AirflowServices, mlops_stack: MlopsStack, reviews: dict[str, Answered]
) -> None:
    review = reviews["Reject"]
    states = review.states
    assert states[APPROVAL] == "success", f"{states}\n{airflow.log_tails()}"
    assert (states[f"{PIPELINE}.register"], states[f"{PIPELINE}.promote"]) == ("skipped", "skipped"), states
    assert review.versions_after == [], review.versions_after  # nothing registered, so nothing promoted
    run_id = review.receipt["candidate_run_id"]
    check_record(_client(mlops_stack).get_run(run_id).data.tags, review, "rejected", "bob")
    bundle = json.loads(Path(review.receipt["evidence_uri"]).with_name("approval.json").read_text())
    assert (bundle["decision"], bundle["by"], bundle["option"]) == ("rejected", "bob", "Reject"), bundle
    assert (bundle["dag_id"], bundle["dag_run_id"], bundle["task_id"]) == (TRAINING, review.run_id, APPROVAL)


def test_an_approval_registers_and_promotes_with_the_record_on_the_version(
    airflow: AirflowServices, mlops_stack: MlopsStack, reviews: dict[str, Answered]
) -> None:
    review = reviews["Approve"]
    states = review.states
    assert (states[f"{PIPELINE}.register"], states[f"{PIPELINE}.promote"]) == ("success", "success"), (
        f"{states}\n{airflow.log_tails()}"
    )
    client = _client(mlops_stack)
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.run_id == review.receipt["candidate_run_id"] != reviews["Reject"].receipt["candidate_run_id"]
    assert [v.version for v in review.versions_after] == [champion.version]
    check_record(champion.tags, review, "approved", "alice")
    bundle = json.loads(Path(review.receipt["evidence_uri"]).with_name("approval.json").read_text())
    assert (bundle["decision"], bundle["by"], bundle["run_id"]) == ("approved", "alice", champion.run_id), bundle
