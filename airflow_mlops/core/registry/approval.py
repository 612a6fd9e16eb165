"""The human approval of a gated candidate, recorded (ML Test Score: a reviewed promotion leaves a trace).

When a person approves or rejects a candidate in Airflow's human-in-the-loop step, the decision, who
made it, when, and the sha256 of the gate evidence they were shown are written to

- the candidate run's tags (``mlops.approval.*``), which registration copies to the model version
  (:func:`~airflow_mlops.core.registry.tags.registration_tags` copies every ``mlops.*`` run tag), and
- ``approval.json`` beside the gate's ``decision.json`` in the evidence bundle.

A rejected candidate is never registered, so its record lives on the run and in the bundle.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.storage import sha256_bytes

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot

TAG_DECISION = "mlops.approval.decision"
TAG_BY = "mlops.approval.by"
TAG_AT = "mlops.approval.at"
TAG_EVIDENCE_SHA256 = "mlops.approval.evidence_sha256"
TAG_EVIDENCE_URI = "mlops.approval.evidence_uri"
ARTIFACT = "approval.json"

Decision = Literal["approved", "rejected"]


@dataclass(frozen=True)
class ApprovalRecord:
    """One human decision on one candidate run."""

    decision: Decision
    by: str
    at: str
    run_id: str
    model_name: str
    evidence_uri: str
    evidence_sha256: str
    option: str
    dag_id: str = ""
    dag_run_id: str = ""
    task_id: str = ""

    def tags(self) -> dict[str, str]:
        return {
            TAG_DECISION: self.decision,
            TAG_BY: self.by,
            TAG_AT: self.at,
            TAG_EVIDENCE_SHA256: self.evidence_sha256,
            TAG_EVIDENCE_URI: self.evidence_uri,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evidence_sha256(storage: StorageRoot, gate: Mapping[str, Any]) -> str:
    """The sha256 of the gate's decision record, the evidence the approver is shown."""
    uri = gate.get("evidence_uri")
    if not uri:
        raise SpecError(f"The gate receipt names no 'evidence_uri' to approve. Got keys {sorted(gate)} instead.")
    return sha256_bytes(storage.read_bytes(str(uri)))


def approval_record(
    gate: Mapping[str, Any], response: Mapping[str, Any], sha256: str, *, approve_option: str = "Approve",
    dag_id: str = "", dag_run_id: str = "", task_id: str = "",
) -> ApprovalRecord:  # fmt: skip
    """A record from the gate receipt and a human-in-the-loop response (``chosen_options``,
    ``responded_by_user`` ({id, name}), ``responded_at``).

    :raises SpecError: the response chose nothing, or the receipt lacks the candidate run.
    """
    chosen = list(response.get("chosen_options") or [])
    if len(chosen) != 1 or not gate.get("candidate_run_id"):
        raise SpecError(
            "An approval needs one chosen option and a gate receipt with 'candidate_run_id'. "
            f"Got options {chosen!r} and run {gate.get('candidate_run_id')!r}."
        )
    user = response.get("responded_by_user") or {}
    by = str(user.get("name") or user.get("id") or "unknown") if isinstance(user, Mapping) else str(user)
    at: Any = response.get("responded_at")
    when = at.isoformat() if at is not None and hasattr(at, "isoformat") else str(at)
    return ApprovalRecord(
        decision="approved" if chosen[0] == approve_option else "rejected",
        by=by,
        at=when,
        run_id=str(gate["candidate_run_id"]),
        model_name=str(gate.get("model_name") or ""),
        evidence_uri=str(gate.get("evidence_uri") or ""),
        evidence_sha256=sha256,
        option=str(chosen[0]),
        dag_id=dag_id,
        dag_run_id=dag_run_id,
        task_id=task_id,
    )


def record_approval(client: Any, storage: StorageRoot, record: ApprovalRecord) -> str:
    """Write the record to the candidate run's tags and to ``approval.json`` in the evidence bundle.

    :return: the URI of ``approval.json``.
    """
    for key, value in record.tags().items():
        client.set_tag(record.run_id, key, value)
    uri = posixpath.join(posixpath.dirname(record.evidence_uri), ARTIFACT)
    storage.write_bytes(uri, json.dumps(record.to_dict(), indent=2, sort_keys=True).encode())
    return uri
