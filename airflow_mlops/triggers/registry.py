"""Deferrable wait on the MLflow registry: a version becoming READY, or an alias moving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

# Terminal statuses of the one event a ModelVersionReadyTrigger yields.
READY = "ready"
MOVED = "moved"
FAILED = "failed"
ERROR = "error"
EVENT_STATUSES = (READY, MOVED, FAILED, ERROR)


def check_registry(
    mlflow_conn_id: str | None,
    model_name: str,
    version: str | None,
    alias: str | None,
    off_version: str | None,
    require_complete: bool,
) -> dict[str, Any] | None:
    """One look at the registry: the terminal event payload, or None to keep waiting.

    Shared by the sensor's poke and the trigger, so both wait for exactly the same thing.
    """
    from airflow_mlops.core import registry
    from airflow_mlops.hooks.mlflow import MlflowHook

    client = MlflowHook(mlflow_conn_id).get_conn()
    base = {"model_name": model_name, "alias": alias, "message": ""}
    if alias:
        current = registry.alias_version(client, model_name, alias)
        if current is None or current == (None if off_version is None else str(off_version)):
            return None
        return {**base, "status": MOVED, "version": current, "previous_version": off_version}
    state = registry.version_state(client, model_name, str(version))
    if state["status"] == registry.FAILED:
        return {**base, "status": FAILED, "version": str(version), "message": state["message"]}
    if state["status"] == registry.READY and (state["complete"] or not require_complete):
        return {**base, "status": READY, "version": str(version)}
    return None


class ModelVersionReadyTrigger(BaseTrigger):
    """Poll the registry until a version is READY (and completely registered) or an alias moves.

    Yields exactly one event, ``{"status": ..., "model_name", "version", "alias", "message"}`` with
    status ``ready`` / ``moved`` (done), ``failed`` (the registry failed the version) or ``error``
    (the registry could not be reached ``max_errors`` times in a row).

    :param model_name: registered model name.
    :param version: the version to wait for; or
    :param alias: the alias to watch, until it points at a version other than ``off_version``.
    :param off_version: the version the alias is known to point at now (None: wait for it to exist).
    :param require_complete: a READY version must also carry the registration-complete mark.
    :param poll_interval: seconds between looks.
    :param max_errors: consecutive failed looks tolerated before giving up with an ``error`` event.
    :param mlflow_conn_id: MLflow connection.
    """

    def __init__(
        self,
        *,
        model_name: str,
        version: str | None = None,
        alias: str | None = None,
        off_version: str | None = None,
        require_complete: bool = True,
        poll_interval: float = 30.0,
        max_errors: int = 5,
        mlflow_conn_id: str | None = None,
    ) -> None:
        super().__init__()
        self.model_name = model_name
        self.version = version
        self.alias = alias
        self.off_version = off_version
        self.require_complete = require_complete
        self.poll_interval = poll_interval
        self.max_errors = max_errors
        self.mlflow_conn_id = mlflow_conn_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "model_name": self.model_name,
                "version": self.version,
                "alias": self.alias,
                "off_version": self.off_version,
                "require_complete": self.require_complete,
                "poll_interval": self.poll_interval,
                "max_errors": self.max_errors,
                "mlflow_conn_id": self.mlflow_conn_id,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        errors = 0
        while True:
            try:
                # MLflow's client is blocking: keep it off the triggerer's event loop
                payload = await asyncio.to_thread(
                    check_registry,
                    self.mlflow_conn_id,
                    self.model_name,
                    self.version,
                    self.alias,
                    self.off_version,
                    self.require_complete,
                )
            except Exception as exc:  # the registry may be briefly unreachable: count, then give up
                errors += 1
                self.log.warning(
                    "Looking up %s in the registry failed (%d/%d): %s", self.model_name, errors, self.max_errors, exc
                )
                if errors >= self.max_errors:
                    yield TriggerEvent(
                        {
                            "status": ERROR,
                            "model_name": self.model_name,
                            "version": self.version,
                            "alias": self.alias,
                            "message": f"{type(exc).__name__}: {exc}",
                        }
                    )
                    return
            else:
                errors = 0
                if payload is not None:
                    yield TriggerEvent(payload)
                    return
            await asyncio.sleep(self.poll_interval)
