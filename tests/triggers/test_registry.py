"""ModelVersionReadyTrigger: JSON-able arguments, and one terminal event from real polling."""

from __future__ import annotations

import asyncio
import importlib
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts, registry
from airflow_mlops.triggers import registry as triggers
from airflow_mlops.triggers.registry import ModelVersionReadyTrigger
from tests.operators.registry_support import embedded_registry_client, register_gated_version

NAME = "flights_delay"


def test_serialize_round_trip_with_json_arguments() -> None:
    trigger = ModelVersionReadyTrigger(
        model_name=NAME, alias="champion", off_version="3", poll_interval=5.0, max_errors=3, mlflow_conn_id="mlflow_x"
    )
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_mlops.triggers.registry.ModelVersionReadyTrigger"
    kwargs = json.loads(json.dumps(kwargs))  # what the triggerer stores is JSON
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)


async def _events(trigger: ModelVersionReadyTrigger, timeout: float = 60) -> list[dict[str, Any]]:
    """Every event the trigger yields (a trigger must stop after its one terminal event)."""

    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(collect(), timeout)


@pytest.fixture
def client(mlops_env: Path) -> Any:
    return embedded_registry_client(mlops_env)


def _register(client: Any) -> str:
    return register_gated_version(client, NAME)


def test_waits_for_the_registration_to_complete_then_yields_once(client: Any) -> None:
    version = _register(client)
    client.delete_model_version_tag(NAME, version, contracts.TAG_REGISTRATION_COMPLETE)  # as if interrupted
    trigger = ModelVersionReadyTrigger(model_name=NAME, version=version, poll_interval=0.05)

    async def scenario() -> list[dict[str, Any]]:
        waiting = asyncio.create_task(_events(trigger))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # READY but not marked complete: still waiting
        await asyncio.to_thread(
            client.set_model_version_tag, NAME, version, contracts.TAG_REGISTRATION_COMPLETE, "true"
        )
        return await waiting

    events = asyncio.run(scenario())
    assert events == [{"status": "ready", "model_name": NAME, "version": version, "alias": None, "message": ""}]


def test_yields_when_the_alias_moves_off_the_known_version(client: Any) -> None:
    first, second = _register(client), _register(client)
    client.set_registered_model_alias(NAME, "champion", first)
    trigger = ModelVersionReadyTrigger(model_name=NAME, alias="champion", off_version=first, poll_interval=0.05)
    mover = threading.Timer(0.4, client.set_registered_model_alias, args=(NAME, "champion", second))
    mover.start()
    events = asyncio.run(_events(trigger))
    mover.join()
    assert events == [
        {"status": "moved", "model_name": NAME, "version": second, "alias": "champion", "message": "",
         "previous_version": first}
    ]  # fmt: skip


def test_a_failed_registration_and_an_unreachable_registry_end_the_wait(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = _register(client)
    real = registry.version_state
    monkeypatch.setattr(registry, "version_state", lambda *a: {**real(*a), "status": "FAILED_REGISTRATION",
                                                                "message": "copy failed"})  # fmt: skip
    events = asyncio.run(_events(ModelVersionReadyTrigger(model_name=NAME, version=version, poll_interval=0.01)))
    assert [(e["status"], e["message"]) for e in events] == [("failed", "copy failed")]

    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DOWN", json.dumps({"conn_type": "mlflow", "host": "http://127.0.0.1:9"}))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    down = ModelVersionReadyTrigger(
        model_name=NAME, version="1", poll_interval=0.01, max_errors=2, mlflow_conn_id="mlflow_down"
    )
    (event,) = asyncio.run(_events(down))
    assert event["status"] == triggers.ERROR and "127.0.0.1" in event["message"]
