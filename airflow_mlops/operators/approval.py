"""The human approval step between the gate and registration, with its decision recorded.

:class:`RecordedApprovalOperator` is Airflow's ``ApprovalOperator`` (standard provider,
human-in-the-loop) that shows the gate's evidence summary and its sha256, and when the person answers
writes the decision, who made it, when and that sha256 to the candidate run's tags (copied to the model
version at registration) and to ``approval.json`` in the evidence bundle
(:mod:`airflow_mlops.core.registry.approval`), before "Approve" lets registration run or "Reject"
skips it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from airflow_mlops.operators.base import MlopsHookMixin

if TYPE_CHECKING:
    from airflow.sdk import Context


class RecordedApprovalOperator(ApprovalOperator, MlopsHookMixin):
    """Approve or reject a gated candidate; the answer is recorded on the run, the version and the evidence.

    :param subject: the question shown to the approver. (templated)
    :param body: the evidence summary shown (Markdown). (templated)
    :param gate_task_id: task id of the gate whose receipt is shown and recorded.
    :param storage_root: storage root of the evidence; the ``[mlops]`` default when omitted.
    :param aws_conn_id: connection of an S3 storage root.
    :param mlflow_conn_id: MLflow connection; the ``[mlops]`` default when omitted.
    """

    def __init__(
        self, *, subject: str, body: str | None = None, gate_task_id: str, storage_root: str | None = None,
        aws_conn_id: str | None = None, mlflow_conn_id: str | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(subject=subject, body=body, **kwargs)
        self.subject = subject
        self.body = body
        self.gate_task_id = gate_task_id
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> Any:
        from airflow_mlops.core.registry.approval import evidence_sha256

        gate = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        if isinstance(gate, dict) and gate.get("evidence_uri"):
            self.body = f"{self.body or ''}\nEvidence sha256: `{evidence_sha256(self.storage, gate)}`\n"
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        if "error" not in event:
            self.record(context, event)
        return super().execute_complete(context=context, event=event)

    def record(self, context: Context, response: dict[str, Any]) -> dict[str, Any]:
        """Write the answer to the candidate run's tags and the evidence bundle; return the record."""
        from airflow_mlops.core.registry.approval import approval_record, evidence_sha256, record_approval

        gate = context["ti"].xcom_pull(task_ids=self.gate_task_id)
        ti = context["ti"]
        record = approval_record(
            gate, response, evidence_sha256(self.storage, gate), approve_option=self.APPROVE,
            dag_id=str(ti.dag_id), dag_run_id=str(ti.run_id), task_id=str(ti.task_id),
        )  # fmt: skip
        uri = record_approval(self.mlflow_client, self.storage, record)
        self.log.info(
            "Approval of run %s: %s by %s at %s (evidence sha256 %s); recorded in %s",
            record.run_id, record.decision, record.by, record.at, record.evidence_sha256, uri,
        )  # fmt: skip
        return record.to_dict()
