"""Canary operators: a gated candidate waits as the ``challenger`` alias, shadow-scored beside the champion,
until its shadow batches say to promote it or drop it.

In the reference DAGs (docs/registry.md#canary): ``continuous_training`` gives a passed, registered candidate
the ``challenger`` alias with :class:`NameChallengerOperator` instead of promoting it, when the pipeline
file sets ``gate.canary_batches`` and there is a champion to compare with; ``batch_serving`` scores every
partition with the champion and, in its shadow, the challenger; :class:`JudgeChallengerOperator` then
pools the shadow reports and either lets the challenger wait, drops it (alias removed, reason on the
version, alert), or branches to a :class:`~airflow_mlops.operators.registry.PromoteModelOperator` that
moves ``champion`` through the usual compare-and-set under the promotion lease.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseBranchOperator

from airflow_mlops.core import contracts
from airflow_mlops.exceptions import ModelRejected
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.operators.base import MlopsBaseOperator
from airflow_mlops.operators.monitoring import ALERT_CONTEXT_KEY
from airflow_mlops.operators.registry import ModelNotPromotable, _task_key, bad_input_fails, parse_gate_receipt

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context

VERDICT_KEY = "verdict"  # the XCom key of JudgeChallengerOperator's receipt


class NameChallengerOperator(MlopsBaseOperator):
    """Point the ``challenger`` alias at a gated, registered version instead of promoting it.

    The version must be completely registered, come from the run the gate passed, and not be the
    champion. The alias moves under the promotion lease; a challenger it replaces is recorded as dropped
    (``mlops.canary.status``, ``mlops.canary.reason`` on that version).

    :param model_name: registered model name. (templated)
    :param version: the version to shadow (``register.output["version"]``). (templated)
    :param gate_receipt: the gate's receipt (``gate.output``); a rejected receipt is refused. (templated)
    :param lock_timeout: seconds to wait for a concurrent promotion of the same model.
    :param mlflow_conn_id: MLflow connection; the ``[mlops]`` default when omitted.
    """

    template_fields: Sequence[str] = ("model_name", "version", "gate_receipt")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#f7f0d9"

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int,
        gate_receipt: Any = None,
        lock_timeout: float = 60.0,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.gate_receipt = gate_receipt
        self.lock_timeout = lock_timeout
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.canary.record import name_challenger
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.registry import VersionNotPromotable

        with bad_input_fails():
            gate = parse_gate_receipt(self.gate_receipt, "NameChallengerOperator")
            if gate is not None and not gate["passed"]:
                raise ModelRejected(f"The gate rejected run {gate['candidate_run_id']}; it is not a challenger.")
            version = str(self.version or "")
            if not version:
                raise SpecError("NameChallengerOperator needs the 'version' to shadow (register.output['version']).")
            client = self.mlflow_client
            run_id = str(client.get_model_version(self.model_name, version).run_id)
            if gate is not None and run_id != str(gate["candidate_run_id"]):
                raise SpecError(f"Version {version} comes from run {run_id}, not run {gate['candidate_run_id']} "
                                "that the gate passed: refusing to shadow what was not gated.")  # fmt: skip
            try:
                replaced = name_challenger(
                    client, self.model_name, version, key=_task_key(context), lock_timeout=float(self.lock_timeout)
                )
            except VersionNotPromotable as exc:
                raise ModelNotPromotable(str(exc)) from exc
        MlflowModelVersionLink.persist(context, name=self.model_name, version=version)
        self.log.info("Model %s: version %s is the challenger (replaced: %s)", self.model_name, version, replaced)
        url = self.mlflow_hook.model_version_url(self.model_name, version)
        return {"name": self.model_name, "version": version, "alias": contracts.ALIAS_CHALLENGER,
                "replaced_challenger": replaced, "url": url}  # fmt: skip


class JudgeChallengerOperator(MlopsBaseOperator, BaseBranchOperator):
    """Judge the ``challenger`` on its shadow batches; branch to the promotion when it passes.

    Reads this run's shadow reports (the scoring receipts' ``shadow_report_uri``), adds their figures to
    the batches recorded on the challenger's version, and applies the canary policy
    (:func:`airflow_mlops.core.canary.judge`). The verdict goes to the version's tags, to ``canary.json``
    beside the gate's evidence, and to XCom (key ``verdict``). Then:

    - ``wait`` (too few batches, or no labels yet) or no challenger: every downstream task is skipped;
    - ``drop``: the alias is removed, the reason recorded, the notifiers alerted; downstream skipped;
    - ``promote``: ``promote_task_id`` runs (a ``PromoteModelOperator`` reading the verdict's ``version``
      and ``champion_version``), everything else downstream is skipped.

    A challenger gated against another champion than the one serving now is dropped: it must be gated
    again; so is one whose version does not record a passed gate. Shadow batches against another
    champion are not counted.

    :param model_name: registered model name. (templated)
    :param receipts: the scoring receipts of this run (``score.output``). (templated)
    :param policy: the canary policy, ``CanaryPolicy.to_dict()`` (the pipeline file's ``canary``). (templated)
    :param champion_version: the champion the partitions were scored with (``resolve_champion``); the
        ``champion`` alias when omitted. (templated)
    :param promote_task_id: the task to run on a ``promote`` verdict.
    :param notifiers: notifiers called with the verdict when the challenger is dropped.
    :param storage_root: storage root of the reports; ``[mlops] storage_root`` when omitted.
    :param aws_conn_id: connection of an S3 storage root. :param mlflow_conn_id: MLflow connection.
    """

    template_fields: Sequence[str] = ("model_name", "receipts", "policy", "champion_version")
    ui_color = "#f7f0d9"

    def __init__(
        self, *, model_name: str, receipts: Any, policy: Any, promote_task_id: str, champion_version: str | None = None,
        notifiers: Sequence[BaseNotifier] = (), storage_root: str | None = None, aws_conn_id: str | None = None,
        mlflow_conn_id: str | None = None, **kwargs: Any,
    ) -> None:  # fmt: skip
        super().__init__(**kwargs)
        self.model_name = model_name
        self.receipts = receipts
        self.policy = policy
        self.promote_task_id = promote_task_id
        self.champion_version = champion_version
        self.notifiers = notifiers
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def choose_branch(self, context: Context) -> list[str]:
        from airflow_mlops.exceptions import MlopsVerdictFailure

        with bad_input_fails():
            try:
                receipt = self.judge(context)
            except ValueError as exc:  # a policy that cannot work gives the same answer on every retry
                raise MlopsVerdictFailure(str(exc)) from exc
        context["ti"].xcom_push(key=VERDICT_KEY, value=receipt)
        self.log.info("Canary of %s: %s (%s)", self.model_name, receipt["decision"], "; ".join(receipt["reasons"]))
        return [self.promote_task_id] if receipt["decision"] == "promote" else []

    def judge(self, context: Context) -> dict[str, Any]:
        """The verdict on the current challenger, recorded; the drop done. The receipt pushed as ``verdict``."""
        from airflow_mlops.core import registry
        from airflow_mlops.core.canary import CanaryPolicy, judge, merge
        from airflow_mlops.core.canary.record import drop_challenger, record_verdict, recorded_batches

        policy = CanaryPolicy.from_dict(self.policy if isinstance(self.policy, dict) else _literal(self.policy))
        client = self.mlflow_client
        challenger = registry.alias_version(client, self.model_name, contracts.ALIAS_CHALLENGER)
        if challenger is None:
            return {"decision": "none", "reasons": ["no challenger"], "version": None, "champion_version": None}
        tags = dict(client.get_model_version(self.model_name, challenger).tags or {})
        champion = str(self.champion_version or registry.alias_version(client, self.model_name, "champion") or "")
        task, new = self._shadow_batches(policy, challenger)
        batches = merge(recorded_batches(tags), new)
        metric = policy.metric_for(task)
        verdict = judge(policy, batches, challenger=challenger, champion=champion, metric=metric)
        gated_against = tags.get(contracts.TAG_GATE_CHAMPION_VERSION) or ""
        if gated_against and gated_against != champion:
            verdict = _dropped(verdict, f"the gate compared it with version {gated_against}, but version "
                                        f"{champion} is the champion now: it must be gated again")  # fmt: skip
        if verdict.decision == "promote" and tags.get(contracts.TAG_GATE_PASSED) != "true":
            verdict = _dropped(verdict, "its version does not record a passed gate (mlops.gate_passed)")
        uri = record_verdict(client, self.storage, self.model_name, verdict, batches, tags.get(
            contracts.TAG_GATE_EVIDENCE_URI))  # fmt: skip
        receipt = {**verdict.to_dict(), "model_name": self.model_name, "version": challenger, "canary_uri": uri}
        if verdict.decision == "drop":
            drop_challenger(client, self.model_name, challenger, "; ".join(verdict.reasons), key=_task_key(context))
            self._alert(context, receipt)
        return receipt

    def _shadow_batches(self, policy: Any, challenger: str) -> tuple[str, list[Any]]:
        """The task of the models and this run's shadow batches of ``challenger``, from the reports."""
        import json

        from airflow_mlops.core.canary import ShadowBatch

        reports = []
        for receipt in list(self.receipts or []):
            uri = (receipt or {}).get("shadow_report_uri") if isinstance(receipt, dict) else None
            if uri:
                reports.append(json.loads(self.storage.read_bytes(str(uri))))
        task = next((str(r["task"]) for r in reports if r.get("task")), "binary")
        batches = [ShadowBatch.from_report(r, policy.metric_for(task)) for r in reports]
        return task, [b for b in batches if b.challenger_version == challenger]

    def _alert(self, context: Context, receipt: dict[str, Any]) -> None:
        from airflow_mlops.core.monitoring.findings import Finding

        message = f"Challenger version {receipt['version']} of {self.model_name} dropped: " + "; ".join(
            receipt["reasons"]
        )
        alert = Finding("canary", "alert", message, receipt).to_dict()
        self.log.warning("%s", message)
        for notifier in self.notifiers:
            try:
                notifier({**context, ALERT_CONTEXT_KEY: alert})  # type: ignore[arg-type]
            except Exception:  # a broken alert channel must not hide the verdict
                self.log.exception("Notifier %s failed for the canary verdict", type(notifier).__name__)


def _literal(value: Any) -> dict[str, Any]:
    """A policy rendered into a string by Jinja (a Python literal or JSON)."""
    import ast

    from airflow_mlops.core.errors import SpecError

    try:
        parsed = ast.literal_eval(str(value))
    except (ValueError, SyntaxError):
        parsed = None
    if not isinstance(parsed, dict):
        raise SpecError(f"The 'policy' of JudgeChallengerOperator must be a mapping (CanaryPolicy). Got {value!r}.")
    return parsed


def _dropped(verdict: Any, reason: str) -> Any:
    import dataclasses

    return dataclasses.replace(verdict, decision="drop", reasons=(*verdict.reasons, reason))


def canary_route(ti: Any, params: dict[str, Any], group: str, **_: Any) -> str:
    """Promote at once when there is no champion to shadow the candidate against (or the form forces the
    promotion); otherwise name it the challenger, which ``batch_serving`` judges on its shadow batches."""
    gate = ti.xcom_pull(task_ids=f"{group}.gate") or {}
    if params.get("force_promotion") or not gate.get("champion_version"):
        print("No champion to shadow the candidate against, or a forced promotion: promoting it at once.")
        return f"{group}.promote"
    return f"{group}.name_challenger"
