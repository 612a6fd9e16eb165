"""Register a gated candidate in the MLflow registry and move the ``champion`` alias to it."""

from __future__ import annotations

import ast
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset

from airflow_mlops.core import contracts
from airflow_mlops.exceptions import MlopsVerdictFailure, ModelRejected
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

ANY_CHAMPION = "any"


class PromotionConflict(MlopsVerdictFailure):
    """The champion moved after the gate evaluated it: another promotion won. Not retried."""


class ModelNotPromotable(MlopsVerdictFailure):
    """The version cannot be promoted (missing, incompletely registered, not what the gate passed)."""


def model_asset(pipeline: str) -> Asset:
    """The asset a promotion updates: ``x-mlops://<pipeline>/model``."""
    uri = contracts.asset_uri(pipeline, "model")
    return Asset(name=uri, uri=uri)


def parse_gate_receipt(value: Any, where: str) -> dict[str, Any] | None:
    """The gate's receipt as a dict: given as ``gate.output`` (a dict) or rendered into a string."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            try:
                value = ast.literal_eval(value)  # a dict rendered by Jinja prints as a Python literal
            except (ValueError, SyntaxError):
                value = None
    if not isinstance(value, Mapping) or "passed" not in value or "candidate_run_id" not in value:
        from airflow_mlops.core.errors import SpecError

        raise SpecError(
            f"The 'gate_receipt' of {where} must be the receipt of EvaluateModelGateOperator (pass gate.output), "
            f"a mapping with 'passed' and 'candidate_run_id'. Got {value!r} instead."
        )
    return dict(value)


@contextlib.contextmanager
def bad_input_fails() -> Iterator[None]:
    """Turn errors a retry cannot fix (bad arguments, a run or artifact that does not exist) into a
    failure without retries; everything else (a registry that does not answer) stays retryable."""
    from airflow.sdk.exceptions import AirflowFailException

    from airflow_mlops.core.errors import SourceNotFoundError, SpecError

    try:
        yield
    except (SpecError, SourceNotFoundError) as exc:
        raise AirflowFailException(str(exc)) from exc


def run_tags(client: Any, run_id: str) -> dict[str, str]:
    """The tags of an MLflow run; a run that does not exist is a SourceNotFoundError."""
    from mlflow.exceptions import MlflowException

    from airflow_mlops.core.errors import SourceNotFoundError

    try:
        return dict(client.get_run(run_id).data.tags)
    except MlflowException as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise SourceNotFoundError(f"There is no MLflow run {run_id!r}.") from exc
        raise


def _task_key(context: Context) -> str:
    ti = context["ti"]
    return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}/{getattr(ti, 'map_index', -1)}"


class RegisterModelOperator(MlopsBaseOperator):
    """Register a training run's model as a new version, once: a retry returns the same version.

    The version's source is ``<source_path>`` under the run's artifact URI (what ``mlflow.register_model``
    stores for a ``runs:/`` URI, so that a tracking server can serve the MLmodel its UI shows); it carries
    the run's ``mlops.*`` lineage tags (the ONNX sha256 among them), the source run id and the gate's
    verdict and evidence URI, and a Markdown description of the gate's findings linking the model card.
    It is marked complete only once ``READY`` and fully tagged; an interrupted registration is completed
    by the retry (see :mod:`airflow_mlops.core.registry.registration`).

    :param model_name: registered model name. (templated)
    :param run_id: MLflow run of the candidate; defaults to the gate receipt's candidate run. (templated)
    :param gate_receipt: the gate's receipt (``gate.output``); a rejected receipt is refused. (templated)
    :param require_gate: refuse to register without a gate receipt (default True).
    :param source_path: run artifact folder registered as the version's source (default ``onnx``: the MLflow
        model of the exported graph, loadable with ``mlflow.pyfunc.load_model``). (templated)
    :param alias: optional alias set on the new version, e.g. ``challenger``; never ``champion``,
        which only :class:`PromoteModelOperator` moves. (templated)
    :param ready_timeout: seconds to wait for the version to become ``READY``.
    :param mlflow_conn_id: MLflow connection; the ``[mlops]`` default when omitted.
    """

    template_fields: Sequence[str] = ("model_name", "run_id", "gate_receipt", "source_path", "alias")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#d9ecf7"

    def __init__(
        self,
        *,
        model_name: str,
        run_id: str | None = None,
        gate_receipt: Any = None,
        require_gate: bool = True,
        source_path: str = contracts.ARTIFACT_ONNX_MODEL,
        alias: str | None = None,
        ready_timeout: float = 300.0,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.run_id = run_id
        self.gate_receipt = gate_receipt
        self.require_gate = require_gate
        self.source_path = source_path
        self.alias = alias
        self.ready_timeout = ready_timeout
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        with bad_input_fails():
            return self._register(context)

    def _register(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import registry
        from airflow_mlops.core.errors import SpecError

        gate = parse_gate_receipt(self.gate_receipt, "RegisterModelOperator")
        run_id = self._run_to_register(gate)
        client = self.mlflow_client
        tags = run_tags(client, run_id)
        if not tags.get(contracts.TAG_ONNX_SHA256):
            raise SpecError(
                f"Run {run_id} has no {contracts.TAG_ONNX_SHA256!r} tag: it was not trained by TrainModelOperator."
            )
        info = client.get_run(run_id).info
        card_url = None if gate is None else registry.model_card_url(
            self.mlflow_hook.ui_url, info.experiment_id, run_id, info.artifact_uri
        )  # fmt: skip
        result = registry.register_version(
            client,
            self.model_name,
            run_id,
            source=registry.version_source(info.artifact_uri, self.source_path),
            tags=registry.registration_tags(tags, run_id, gate),
            description=registry.version_description(run_id, gate, card_url),
            ready_timeout=float(self.ready_timeout),
        )
        if self.alias:
            client.set_registered_model_alias(self.model_name, self.alias, result.version)
        MlflowModelVersionLink.persist(context, name=self.model_name, version=result.version)
        self.log.info(
            "Model %s version %s from run %s (created=%s, completed=%s)",
            self.model_name,
            result.version,
            run_id,
            result.created,
            result.completed,
        )
        url = self.mlflow_hook.model_version_url(self.model_name, result.version)
        return {**result.to_dict(), "alias": self.alias, "url": url}

    def _run_to_register(self, gate: dict[str, Any] | None) -> str:
        """The run to register, once the arguments and the gate's verdict allow it."""
        from airflow_mlops.core.errors import SpecError

        run_id = str(self.run_id or (gate or {}).get("candidate_run_id") or "")
        if gate is None and self.require_gate:
            raise SpecError(
                "RegisterModelOperator needs the gate's receipt (gate_receipt=gate.output), or require_gate=False."
            )
        if gate is not None and str(gate["candidate_run_id"]) != run_id:
            raise SpecError(
                f"The gate evaluated run {gate['candidate_run_id']!r}, not run {run_id!r}: refusing to register it."
            )
        if gate is not None and not gate["passed"]:
            raise ModelRejected(
                f"The gate rejected run {run_id}; it is not registered. Evidence: {gate.get('evidence_uri')}"
            )
        if self.alias == contracts.ALIAS_CHAMPION:
            raise SpecError("RegisterModelOperator does not set 'champion'; promote with PromoteModelOperator.")
        return run_id


class PromoteModelOperator(MlopsBaseOperator):
    """Move the ``champion`` alias to a version, compare-and-set against the champion the gate saw.

    The old champion gets ``previous_champion``, so rolling back is promoting it again: run this
    operator with ``mode="rollback"`` (no version needed) and the two swap. Promotions of one model are
    serialised; if the champion is not the one the gate evaluated, nothing changes and
    :class:`PromotionConflict` is raised (no retry). On success the asset ``x-mlops://<pipeline>/model``
    gets an event whose extra names the model, version and previous version.

    :param model_name: registered model name. (templated)
    :param pipeline: pipeline name; sets the outlet asset (fixed at parse time, not templated).
    :param version: version to promote (``register.output["version"]``); ignored for rollback. (templated)
    :param gate_receipt: the gate's receipt: gives the champion it evaluated, and the version must come
        from the run it passed. (templated)
    :param expected_champion_version: the version expected to hold the alias, instead of the receipt's;
        ``"none"`` for no champion, ``"any"`` to skip the comparison. (templated)
    :param mode: ``promote`` or ``rollback``.
    :param alias: alias moved (``champion``). :param previous_alias: alias kept for rollback.
    :param lock_timeout: seconds to wait for a concurrent promotion of the same model to finish.
    :param lock_ttl: seconds the promotion lease lasts unrenewed (renewed while this task runs): how long
        the next promotion waits after a try that died holding it.
    :param mlflow_conn_id: MLflow connection; the ``[mlops]`` default when omitted.
    """

    template_fields: Sequence[str] = ("model_name", "version", "gate_receipt", "expected_champion_version")
    operator_extra_links = (MlflowModelVersionLink(),)
    ui_color = "#d9f7e3"

    def __init__(
        self,
        *,
        model_name: str,
        pipeline: str,
        version: str | int | None = None,
        gate_receipt: Any = None,
        expected_champion_version: str | None = None,
        mode: str = "promote",
        alias: str = contracts.ALIAS_CHAMPION,
        previous_alias: str = contracts.ALIAS_PREVIOUS_CHAMPION,
        lock_timeout: float = 60.0,
        lock_ttl: float = 30.0,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        # The outlet must be known when the DAG is parsed so consumers can be scheduled on it.
        kwargs.setdefault("outlets", [model_asset(pipeline)])
        super().__init__(**kwargs)
        self.model_name = model_name
        self.pipeline = pipeline
        self.version = version
        self.gate_receipt = gate_receipt
        self.expected_champion_version = expected_champion_version
        self.mode = mode
        self.alias = alias
        self.previous_alias = previous_alias
        self.lock_timeout = lock_timeout
        self.lock_ttl = lock_ttl
        self.mlflow_conn_id = mlflow_conn_id

    def _expected(self, gate: dict[str, Any] | None) -> Any:
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.registry.promotion import _UNSET

        raw = self.expected_champion_version
        if raw not in (None, ""):
            text = str(raw).strip().lower()
            return _UNSET if text == ANY_CHAMPION else (None if text == "none" else str(raw).strip())
        if gate is not None:
            return None if gate.get("champion_version") in (None, "") else str(gate["champion_version"])
        if self.mode == "rollback":
            return _UNSET
        raise SpecError(
            "PromoteModelOperator needs the gate's receipt (gate_receipt=gate.output) or expected_champion_version "
            f"for its compare-and-set; pass expected_champion_version={ANY_CHAMPION!r} to promote unconditionally."
        )

    def execute(self, context: Context) -> dict[str, Any]:
        with bad_input_fails():
            return self._promote(context)

    def _promote(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.errors import SpecError

        if self.mode not in ("promote", "rollback"):
            raise SpecError(f"The 'mode' of PromoteModelOperator must be 'promote' or 'rollback'. Got {self.mode!r}.")
        gate = parse_gate_receipt(self.gate_receipt, "PromoteModelOperator")
        if gate is not None and not gate["passed"]:
            raise ModelRejected(f"The gate rejected run {gate['candidate_run_id']}; it is not promoted.")
        result = self._move_alias(context, gate, self._expected(gate))
        url = self.mlflow_hook.model_version_url(self.model_name, result.version)
        receipt = {
            **result.to_dict(),
            "model_uri": f"models:/{self.model_name}@{self.alias}",
            "url": url,
            "asset_uri": contracts.asset_uri(self.pipeline, "model"),
        }
        self._emit(context, receipt)
        MlflowModelVersionLink.persist(context, name=self.model_name, version=result.version)
        self.log.info(
            "%s of %s: %s -> version %s (previous %s, changed=%s)",
            self.mode,
            self.model_name,
            self.alias,
            result.version,
            result.previous_version,
            result.changed,
        )
        return receipt

    def _move_alias(self, context: Context, gate: dict[str, Any] | None, expected: Any) -> Any:
        """Promote or roll back under the registry's compare-and-set; a lost race is a ``PromotionConflict``."""
        from airflow_mlops.core import registry
        from airflow_mlops.core.errors import SpecError

        client = self.mlflow_client
        common = {
            "alias": self.alias,
            "previous_alias": self.previous_alias,
            "key": _task_key(context),
            "lock_timeout": float(self.lock_timeout),
            "lock_ttl": float(self.lock_ttl),
            "expected": expected,
        }
        try:
            if self.mode == "rollback":
                return registry.rollback(client, self.model_name, **common)
            if self.version in (None, ""):
                raise SpecError("PromoteModelOperator needs the 'version' to promote (register.output['version']).")
            run_id = None if gate is None else str(gate["candidate_run_id"])
            return registry.promote(client, self.model_name, str(self.version), expected_run_id=run_id, **common)
        except registry.ChampionMoved as exc:
            raise PromotionConflict(str(exc)) from exc
        except registry.VersionNotPromotable as exc:
            raise ModelNotPromotable(str(exc)) from exc

    def _emit(self, context: Context, receipt: dict[str, Any]) -> None:
        uri = receipt["asset_uri"]
        for outlet in self.outlets:
            if isinstance(outlet, Asset) and outlet.uri == uri:
                context["outlet_events"][outlet].extra = {
                    k: receipt[k]
                    for k in ("name", "alias", "version", "previous_version", "mode", "changed", "model_uri")
                }
