"""The human approval step records its answer: decision, who, when and the sha256 of the evidence shown,
on the candidate run, on the model version registered after it, and in the evidence bundle.

The answer is the event Airflow's human-in-the-loop trigger hands to ``execute_complete`` when a person
responds in the UI or through the API; here it is built by the test, on a model trained from real
flights and gated for real."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core.registry import approval as recorded
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.approval import RecordedApprovalOperator
from airflow_mlops.operators.gating import gate_approval_task
from tests.operators.registry_support import RecordingTI, prepare_embedded_store
from tests.operators.test_gating import gate, register_and_promote, train

PRIOR = {"baseline": {"kind": "prior"}, "floors": {"roc_auc": 0.55}}


class GateTI(RecordingTI):
    """A task instance whose XCom holds the gate's receipt."""

    receipt: dict[str, Any] = {}

    def xcom_pull(self, task_ids: str) -> dict[str, Any]:
        assert task_ids == "gate"
        return self.receipt


def answer(option: str, who: str) -> dict[str, Any]:
    """The event the human-in-the-loop trigger yields when a person responds."""
    return {
        "chosen_options": [option],
        "params_input": {},
        "responded_at": dt.datetime(2026, 12, 6, 2, 30, tzinfo=dt.UTC),
        "responded_by_user": {"id": who, "name": who.title()},
    }


def respond(approval: RecordedApprovalOperator, receipt: dict[str, Any], option: str, who: str) -> Any:
    ti = GateTI(task_id=approval.task_id, run_id="manual__2013-04-01")
    ti.receipt = receipt
    return approval.execute_complete({"ti": ti, "task": approval}, answer(option, who))


def test_an_approval_is_recorded_on_the_run_the_version_and_the_evidence(mlops_env: Path) -> None:
    prepare_embedded_store(mlops_env)
    storage = StorageRoot(str(mlops_env / "storage"))
    client = MlflowHook().get_conn()
    run_id = train(storage, [3], "2013-03-31")
    receipt, _, error = gate(run_id, "2013-03-31", policy=PRIOR)
    assert error is None and receipt is not None and receipt["passed"]
    approval = gate_approval_task("gate", response_timeout=None)
    assert isinstance(approval, RecordedApprovalOperator)
    result = respond(approval, receipt, "Approve", "alice")
    assert result["chosen_options"] == ["Approve"]  # Airflow's own result, unchanged
    shown = sha256_bytes(storage.read_bytes(receipt["evidence_uri"]))
    tags = client.get_run(run_id).data.tags
    assert (tags[recorded.TAG_DECISION], tags[recorded.TAG_BY]) == ("approved", "Alice")
    assert tags[recorded.TAG_AT] == "2026-12-06T02:30:00+00:00" and tags[recorded.TAG_EVIDENCE_SHA256] == shown
    bundle = json.loads(Path(receipt["evidence_uri"]).with_name("approval.json").read_text())
    assert (bundle["decision"], bundle["by"], bundle["evidence_sha256"], bundle["run_id"]) == (
        "approved", "Alice", shown, run_id
    )  # fmt: skip
    promoted = register_and_promote(receipt, "approved-run")
    assert promoted is not None
    version = client.get_model_version("flights_delay", "1")
    assert version.tags[recorded.TAG_DECISION] == "approved" and version.tags[recorded.TAG_BY] == "Alice"
    assert version.tags[recorded.TAG_EVIDENCE_SHA256] == shown


def test_a_rejection_is_recorded_on_the_run_and_the_evidence_and_nothing_is_registered(mlops_env: Path) -> None:
    prepare_embedded_store(mlops_env)
    storage = StorageRoot(str(mlops_env / "storage"))
    client = MlflowHook().get_conn()
    run_id = train(storage, [3], "2013-03-31")
    receipt, _, _ = gate(run_id, "2013-03-31", policy=PRIOR)
    assert receipt is not None
    respond(gate_approval_task("gate", response_timeout=None), receipt, "Reject", "bob")
    tags = client.get_run(run_id).data.tags
    assert (tags[recorded.TAG_DECISION], tags[recorded.TAG_BY]) == ("rejected", "Bob")
    bundle = json.loads(Path(receipt["evidence_uri"]).with_name("approval.json").read_text())
    assert bundle["decision"] == "rejected" and bundle["option"] == "Reject"
    assert not client.search_model_versions("name='flights_delay'")


def test_a_response_without_one_option_is_refused() -> None:
    from airflow_mlops.core.errors import SpecError

    with pytest.raises(SpecError, match="one chosen option"):
        recorded.approval_record({"candidate_run_id": "r"}, {"chosen_options": []}, "0" * 64)
