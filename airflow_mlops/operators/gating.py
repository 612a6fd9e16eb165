"""Gate a trained candidate against the current champion; optionally ask a human before promotion."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.links.gating import GateEvidenceLink, ModelCardLink
from airflow_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class EvaluateModelGateOperator(MlopsBaseOperator):
    """Decide whether a candidate may replace the champion, and record why.

    The champion is resolved once through the registry alias and its version is recorded in the
    receipt, so :class:`~airflow_mlops.operators.registry.PromoteModelOperator` can refuse to replace a
    champion other than the one evaluated. Both models are scored through ONNX Runtime on the same
    rows: the candidate's test split (its run's ``mlops.test_split_uri`` tag) or ``evaluation_uri``.
    The policy (see ``docs/gating.md``) sets floors, the champion comparison (the primary metric
    with a proper scoring rule, each within a tolerance; an optional minimum gain), an optional
    paired bootstrap, slice floors and gaps, a baseline, parity, latency and size budgets, and the
    first-run rule. The decision record and a model card (Markdown, HTML) are written under
    ``{storage_root}/{pipeline}/evidence/{partition}/gate/{run_id}/`` and logged on the candidate run.

    The receipt (returned, and pushed before a rejection is raised) holds ``passed``, ``verdict``,
    ``reasons``, both metric sets, ``champion_version`` and ``evidence_uri``. A rejection raises
    :class:`~airflow_mlops.exceptions.ModelRejected` (no retry), or skips the task with
    ``on_reject="skip"`` so downstream promotion is skipped.

    :param model_name: registered model whose champion is the reference. (templated)
    :param candidate_run_id: MLflow run of the candidate (``train.output["run_id"]``). (templated)
    :param pipeline: pipeline name, for evidence paths. (templated)
    :param policy: the gate policy, a mapping (see :class:`~airflow_mlops.core.gating.policy.GatePolicy`). (templated)
    :param evaluation_uri: named evaluation snapshot (Parquet or CSV under the storage root) instead of
        the candidate's test split. (templated)
    :param partition: evidence partition; the run's partition by default (the snapshot's). (templated)
    :param champion_alias: alias of the champion (``champion``). (templated)
    :param on_reject: ``fail`` (raise ModelRejected) or ``skip``.
    :param force: pass the candidate whatever the checks say; recorded as ``forced``. (templated)
    :param force_reason: why it was forced, kept in the evidence. (templated)
    :param check_native_parity: re-check ONNX parity against the run's native model (it is unpickled;
        turn off to rely on the parity the training run logged).
    :param mlflow_conn_id: MLflow connection; ``[mlops] mlflow_conn_id`` when omitted.
    :param storage_root: storage root URI; ``[mlops] storage_root`` when omitted.
    :param aws_conn_id: AWS connection for an S3 storage root; ``[mlops] storage_conn_id`` when omitted.
    """

    template_fields: Sequence[str] = (
        "model_name", "candidate_run_id", "pipeline", "policy", "evaluation_uri", "partition", "champion_alias",
        "force", "force_reason",
    )  # fmt: skip
    template_fields_renderers = {"policy": "json"}
    operator_extra_links = (ModelCardLink(), GateEvidenceLink())
    ui_color = "#fff4d6"

    def __init__(
        self,
        *,
        model_name: str,
        candidate_run_id: str,
        pipeline: str,
        policy: Mapping[str, Any] | None = None,
        evaluation_uri: str | None = None,
        partition: str | None = None,
        champion_alias: str = contracts.ALIAS_CHAMPION,
        on_reject: str = "fail",
        force: bool | str = False,
        force_reason: str | None = None,
        check_native_parity: bool = True,
        mlflow_conn_id: str | None = None,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.candidate_run_id = candidate_run_id
        self.pipeline = pipeline
        self.policy = policy
        self.evaluation_uri = evaluation_uri
        self.partition = partition
        self.champion_alias = champion_alias
        self.on_reject = on_reject
        self.force = force
        self.force_reason = force_reason
        self.check_native_parity = check_native_parity
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.core import gating
        from airflow_mlops.exceptions import ModelRejected

        client, storage = self.mlflow_client, self.storage
        decision, candidate, champion = self._decide()
        folder = gating.evidence_location(storage, self.pipeline, self.run_partition(context), str(candidate.run_id))
        plots = gating.training_plots(client, str(candidate.run_id))
        decision, evidence = gating.write_evidence(storage, decision, folder, plots)
        self._record_on_run(client, str(candidate.run_id), decision, evidence)
        ModelCardLink.persist_uri(context, evidence.html_uri, storage.uri)
        GateEvidenceLink.persist_uri(context, evidence.decision_uri, storage.uri)
        receipt = self._receipt(decision, evidence, champion)
        self.log.info("Gate for run %s: %s; evidence %s", candidate.run_id, decision.summary(), decision.evidence_uri)
        if decision.passed:
            return receipt
        context["ti"].xcom_push(key="return_value", value=receipt)  # the verdict is a value: publish it first
        failed = "; ".join(f"{c.name}: {c.message}" for c in decision.failed_checks)
        message = f"Run {candidate.run_id} rejected by the gate. Failed: {failed}. Evidence: {decision.evidence_uri}"
        if self.on_reject == "skip":
            raise AirflowSkipException(message)
        raise ModelRejected(message)

    def _decide(self) -> tuple[Any, Any, Any]:
        """Score candidate and champion on the evaluation rows and apply the policy: decision, both models.

        Bad arguments and data, and a missing run or file, fail without retries; a model file that does not
        match its recorded checksum is a ``ModelIntegrityFailure``.
        """
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops.core import gating
        from airflow_mlops.core.errors import DataError, IntegrityError, SourceNotFoundError, SpecError
        from airflow_mlops.core.gating.policy import GatePolicy
        from airflow_mlops.core.params import parse_flag
        from airflow_mlops.exceptions import ModelIntegrityFailure

        try:
            if self.on_reject not in ("fail", "skip"):
                raise SpecError(f"'on_reject' must be 'fail' or 'skip'. Got {self.on_reject!r} instead.")
            policy = GatePolicy.from_mapping(self.policy)
            force = parse_flag(self.force, "The 'force' argument")
            candidate, champion = self._models(self.mlflow_client)
            uri = self._evaluation_uri(self.mlflow_client)
            frame, sha256 = gating.read_evaluation_frame(self.storage, uri)
            decision = gating.evaluate(
                candidate, champion, frame, policy, data_uri=uri, data_sha256=sha256, force=force,
                force_reason=self.force_reason,
            )  # fmt: skip
        except IntegrityError as exc:
            raise ModelIntegrityFailure(str(exc)) from exc
        except (SpecError, DataError, SourceNotFoundError) as exc:
            raise AirflowFailException(str(exc)) from exc
        return decision, candidate, champion

    def _evaluation_uri(self, client: Any) -> str:
        from airflow_mlops.core.errors import SpecError

        if self.evaluation_uri:
            return str(self.evaluation_uri)
        uri = client.get_run(str(self.candidate_run_id)).data.tags.get(contracts.TAG_TEST_SPLIT_URI)
        if not uri:
            raise SpecError(
                f"Run {self.candidate_run_id} has no {contracts.TAG_TEST_SPLIT_URI!r} tag (it did not write a test "
                "split): pass evaluation_uri, a named evaluation snapshot."
            )
        return str(uri)

    def _models(self, client: Any) -> tuple[Any, Any]:
        from airflow_mlops.core import registry
        from airflow_mlops.core.gating import load_run_model

        native = bool(self.check_native_parity)
        candidate = load_run_model(client, str(self.candidate_run_id), "candidate", native=native,
                                   on_test_split=not self.evaluation_uri)  # fmt: skip
        version = registry.alias_version(client, self.model_name, self.champion_alias)  # resolved once, recorded
        if version is None:
            return candidate, None
        found = client.get_model_version(self.model_name, version)
        recorded = (found.tags or {}).get(contracts.TAG_ONNX_SHA256)
        champion = load_run_model(client, str(found.run_id), "champion", expected_sha256=recorded, version=version,
                                  native=False)  # fmt: skip
        return candidate, champion

    def _record_on_run(self, client: Any, run_id: str, decision: Any, evidence: Any) -> None:
        from airflow_mlops.core.gating.evidence import gate_history

        for name, content in evidence.files.items():
            client.log_text(run_id, content.decode(), f"{contracts.GATE_ARTIFACT_DIR}/{name}")
        client.set_tag(run_id, contracts.TAG_GATE_PASSED, "true" if decision.passed else "false")
        client.set_tag(run_id, contracts.TAG_GATE_VERDICT, decision.verdict)
        client.set_tag(run_id, contracts.TAG_GATE_EVIDENCE_URI, decision.evidence_uri)
        previous = client.get_run(run_id).data.tags.get(contracts.TAG_GATE_HISTORY)
        client.set_tag(run_id, contracts.TAG_GATE_HISTORY, gate_history(previous, decision))

    def _receipt(self, decision: Any, evidence: Any, champion: Any) -> dict[str, Any]:
        record = decision.to_dict()
        return {
            "passed": decision.passed,
            "verdict": decision.verdict,
            "forced": decision.forced,
            "force_reason": decision.force_reason,
            "first_run": decision.first_run,
            "model_name": self.model_name,
            "candidate_run_id": decision.candidate["run_id"],
            "candidate_onnx_sha256": decision.candidate["sha256"],
            "champion_alias": self.champion_alias,
            "champion_version": None if champion is None else champion.version,
            "champion_run_id": None if champion is None else champion.run_id,
            "primary_metric": decision.primary_metric,
            "candidate_metrics": record["candidate_metrics"],
            "champion_metrics": record["champion_metrics"],
            "reasons": record["reasons"],
            "evidence_uri": decision.evidence_uri,
            "model_card_uri": evidence.html_uri,
            "evaluation_uri": decision.data["uri"],
            "evaluation_rows": decision.data["rows"],
        }


APPROVAL_BODY = """\
**Gate verdict: {{ gate.verdict | upper }}** for run `{{ gate.candidate_run_id }}` of model `{{ gate.model_name }}`
{%- if gate.forced %} (forced: {{ gate.force_reason }}){% endif %}.

{% if gate.champion_version -%}
Compared with champion version {{ gate.champion_version }} on {{ gate.evaluation_rows }} rows of `{{ gate.evaluation_uri }}`.
{%- else -%}
No champion yet: first-run policy, {{ gate.evaluation_rows }} rows of `{{ gate.evaluation_uri }}`.
{%- endif %}

| metric | candidate | champion |
|---|---|---|
{% for name, value in gate.candidate_metrics.items() -%}
| {{ name }}{% if name == gate.primary_metric %} (primary){% endif %} | {{ value | round(4) if value is number else value }} | {{ (gate.champion_metrics or {}).get(name) | round(4) if (gate.champion_metrics or {}).get(name) is number else "n/a" }} |
{% endfor %}
| check | status | observed | threshold |
|---|---|---|---|
{% for check in gate.reasons -%}
| {{ check.name }} | {{ check.status }} | {{ check.observed | round(4) if check.observed is number else check.observed }} | {{ check.threshold | round(4) if check.threshold is number else check.threshold }} |
{% endfor %}
Evidence: `{{ gate.evidence_uri }}` (model card: `{{ gate.model_card_uri }}`).
"""  # noqa: E501


def gate_approval_task(gate_task_id: str = "gate", *, task_id: str = "approve_promotion", **kwargs: Any) -> Any:
    """A human approval step between the gate and promotion (off unless you add it to the DAG).

    Returns Airflow's ``ApprovalOperator`` (standard provider, human-in-the-loop, Airflow 3.1+) whose
    body shows the gate's evidence summary: verdict, both metric sets, every check and the evidence
    location. "Approve" lets promotion run; "Reject" skips it. Place it as ``gate >> approval >> promote``.

    The answer (decision, who, when, the evidence's sha256) is recorded on the candidate run, the model
    version and the evidence bundle (:class:`~airflow_mlops.operators.approval.RecordedApprovalOperator`).

    :param gate_task_id: task id of the :class:`EvaluateModelGateOperator` whose receipt is shown.
    :param kwargs: passed to ``ApprovalOperator`` (``assigned_users``, ``response_timeout``, ...).
    """
    from airflow_mlops.operators.approval import RecordedApprovalOperator

    pull = "{% set gate = ti.xcom_pull(task_ids=" + repr(gate_task_id) + ") %}"
    subject = pull + "Promote {{ gate.model_name }} run {{ gate.candidate_run_id }}? Gate: {{ gate.verdict }}"
    kwargs.setdefault("subject", subject)
    return RecordedApprovalOperator(task_id=task_id, gate_task_id=gate_task_id, body=pull + APPROVAL_BODY, **kwargs)


def approval_route(params: dict[str, Any], group: str, **_: Any) -> str:
    """Through the human approval when the form asks for it, straight to registration otherwise."""
    return f"{group}.approve_promotion" if params.get("approval") else f"{group}.register"
