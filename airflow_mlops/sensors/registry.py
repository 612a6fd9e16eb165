"""Wait on the MLflow registry: a version READY, or an alias (``champion``) moving to a new version."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_mlops.exceptions import MlopsVerdictFailure
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.operators.base import MlopsHookMixin
from airflow_mlops.triggers.registry import ERROR, EVENT_STATUSES, FAILED, ModelVersionReadyTrigger, check_registry

if TYPE_CHECKING:
    from airflow.sdk import Context


class ModelVersionFailed(MlopsVerdictFailure):
    """The registry failed the version's registration: waiting longer cannot help. Not retried."""


class ModelVersionSensor(BaseSensorOperator, MlopsHookMixin):
    """Wait until a model version is READY, or until an alias points at a version other than a known one.

    Give ``version`` to wait for that version (READY and, with ``require_complete``, marked complete by
    :class:`~airflow_mlops.operators.registry.RegisterModelOperator`); or give ``alias`` to wait until it
    exists and differs from ``off_version`` (e.g. a batch DAG waiting for a new champion). With
    ``deferrable=True`` the wait runs in the triggerer and frees the worker slot.

    Returns ``{"model_name", "version", "alias", "status", "previous_version"}``.

    :param model_name: registered model name. (templated)
    :param version: version to wait for. (templated)
    :param alias: alias to watch instead of a version. (templated)
    :param off_version: version the alias points at now; the sensor waits for any other. (templated)
    :param require_complete: a READY version must also be completely registered (default True).
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param mlflow_conn_id: MLflow connection; the ``[mlops]`` default when omitted.
    """

    template_fields: Sequence[str] = ("model_name", "version", "alias", "off_version")
    operator_extra_links = (MlflowModelVersionLink(),)

    def __init__(
        self,
        *,
        model_name: str,
        version: str | int | None = None,
        alias: str | None = None,
        off_version: str | int | None = None,
        require_complete: bool = True,
        deferrable: bool = False,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.version = version
        self.alias = alias
        self.off_version = off_version
        self.require_complete = require_complete
        self.deferrable = deferrable
        self.mlflow_conn_id = mlflow_conn_id

    def _target(self) -> tuple[str | None, str | None, str | None]:
        from airflow_mlops.core.errors import SpecError

        version = None if self.version in (None, "") else str(self.version)
        alias = self.alias or None
        if (version is None) == (alias is None):
            raise SpecError(
                "ModelVersionSensor needs exactly one of 'version' or 'alias'. "
                f"Got version={version!r}, alias={alias!r}."
            )
        off = None if self.off_version in (None, "", "none", "None") else str(self.off_version)
        return version, alias, off

    def _look(self) -> dict[str, Any] | None:
        version, alias, off = self._target()
        return check_registry(self.mlflow_conn_id, self.model_name, version, alias, off, self.require_complete)

    def poke(self, context: Context) -> PokeReturnValue:
        payload = self._look()
        if payload is None:
            self.log.info("Waiting for %s (version=%s, alias=%s)", self.model_name, self.version, self.alias)
            return PokeReturnValue(is_done=False)
        return PokeReturnValue(is_done=True, xcom_value=self._finish(context, payload))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        payload = self._look()  # often already true: no need to occupy the triggerer
        if payload is not None:
            return self._finish(context, payload)
        version, alias, off = self._target()
        self.defer(
            trigger=ModelVersionReadyTrigger(
                model_name=self.model_name,
                version=version,
                alias=alias,
                off_version=off,
                require_complete=self.require_complete,
                poll_interval=float(self.poke_interval),
                mlflow_conn_id=self.mlflow_conn_id,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=float(self.timeout)) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Validate the trigger's one event strictly; anything unexpected is an error, not a success."""
        from airflow_mlops.core.errors import MlopsError

        if not isinstance(event, dict) or event.get("status") not in EVENT_STATUSES:
            raise MlopsError(f"ModelVersionSensor got an unexpected event from its trigger: {event!r}.")
        if event.get("model_name") != self.model_name:
            raise MlopsError(f"The trigger reported on model {event.get('model_name')!r}, not {self.model_name!r}.")
        status = event["status"]
        if status == ERROR:
            raise MlopsError(f"Waiting for {self.model_name} failed: {event.get('message')}")
        version = event.get("version")
        if not isinstance(version, str) or not version.isdigit():
            raise MlopsError(f"The trigger's event has no valid version number: {event!r}.")
        return self._finish(context, event)

    def _finish(self, context: Context, payload: dict[str, Any]) -> dict[str, Any]:
        if payload["status"] == FAILED:
            raise ModelVersionFailed(
                f"Version {payload['version']} of {self.model_name} failed to register: {payload.get('message')}"
            )
        MlflowModelVersionLink.persist(context, name=self.model_name, version=payload["version"])
        return {
            "model_name": self.model_name,
            "version": payload["version"],
            "alias": payload.get("alias"),
            "status": payload["status"],
            "previous_version": payload.get("previous_version"),
        }
