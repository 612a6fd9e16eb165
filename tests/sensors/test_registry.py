"""ModelVersionSensor: poke and deferrable modes wait for the same thing; events are validated strictly."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import TaskDeferred

from airflow_mlops.core import contracts, registry
from airflow_mlops.core.errors import MlopsError, SpecError
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.sensors.registry import ModelVersionFailed, ModelVersionSensor
from airflow_mlops.triggers.registry import ModelVersionReadyTrigger
from tests.operators.registry_support import embedded_registry_client, register_gated_version, task_context

NAME = "flights_delay"


@pytest.fixture
def client(mlops_env: Path) -> Any:
    return embedded_registry_client(mlops_env)


def _register(client: Any) -> str:
    return register_gated_version(client, NAME)


def test_poke_waits_for_a_complete_version(client: Any) -> None:
    version = _register(client)
    client.delete_model_version_tag(NAME, version, contracts.TAG_REGISTRATION_COMPLETE)
    sensor = ModelVersionSensor(task_id="wait", model_name=NAME, version=version)
    context = task_context("wait")
    assert not sensor.poke(context)
    relaxed = ModelVersionSensor(task_id="wait", model_name=NAME, version=version, require_complete=False)
    assert relaxed.poke(context)
    client.set_model_version_tag(NAME, version, contracts.TAG_REGISTRATION_COMPLETE, "true")
    done = sensor.poke(context)
    assert done.is_done and done.xcom_value == {
        "model_name": NAME, "version": version, "alias": None, "status": "ready", "previous_version": None
    }  # fmt: skip
    assert context["ti"].pushed[MlflowModelVersionLink.key] == {"name": NAME, "version": version}


def test_poke_watches_an_alias_move(client: Any) -> None:
    first, second = _register(client), _register(client)
    sensor = ModelVersionSensor(task_id="wait", model_name=NAME, alias="champion", off_version=first)
    assert not sensor.poke(task_context())  # no champion yet
    client.set_registered_model_alias(NAME, "champion", first)
    assert not sensor.poke(task_context())  # still the known one
    client.set_registered_model_alias(NAME, "champion", second)
    result = sensor.poke(task_context())
    assert result.xcom_value["version"] == second and result.xcom_value["previous_version"] == first


def test_a_failed_version_fails_without_retry(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    version = _register(client)
    monkeypatch.setattr(registry, "version_state", lambda *a: {"exists": True, "status": "FAILED_REGISTRATION",
                                                               "complete": False, "message": "bad source"})  # fmt: skip
    with pytest.raises(ModelVersionFailed, match="failed to register: bad source"):
        ModelVersionSensor(task_id="wait", model_name=NAME, version=version).poke(task_context())


@pytest.mark.parametrize("target", [{}, {"version": "1", "alias": "champion"}], ids=["neither", "both"])
def test_exactly_one_of_version_or_alias(client: Any, target: dict[str, str]) -> None:
    with pytest.raises(SpecError, match="exactly one of 'version' or 'alias'"):
        ModelVersionSensor(task_id="wait", model_name=NAME, **target).poke(task_context())


def test_deferrable_mode_returns_at_once_or_defers_to_the_trigger(client: Any) -> None:
    version = _register(client)
    ready = ModelVersionSensor(task_id="wait", model_name=NAME, version=version, deferrable=True)
    assert ready.execute(task_context())["status"] == "ready"
    waiting = ModelVersionSensor(
        task_id="wait", model_name=NAME, alias="champion", off_version="none", deferrable=True, poke_interval=7,
        timeout=600,
    )  # fmt: skip
    with pytest.raises(TaskDeferred) as deferred:
        waiting.execute(task_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, ModelVersionReadyTrigger) and deferred.value.method_name == "execute_complete"
    assert (trigger.alias, trigger.off_version, trigger.poll_interval) == ("champion", None, 7.0)
    assert deferred.value.timeout == timedelta(seconds=600)


GOOD = {"status": "moved", "model_name": NAME, "version": "4", "alias": "champion", "message": "",
        "previous_version": "3"}  # fmt: skip


def test_execute_complete_accepts_only_a_well_formed_event(client: Any) -> None:
    sensor = ModelVersionSensor(task_id="wait", model_name=NAME, alias="champion", off_version="3", deferrable=True)
    assert sensor.execute_complete(task_context(), dict(GOOD))["version"] == "4"
    bad = [
        (None, "unexpected event"),
        ({**GOOD, "status": "done"}, "unexpected event"),
        ({**GOOD, "model_name": "other"}, "reported on model 'other'"),
        ({**GOOD, "version": "four"}, "no valid version number"),
        ({**GOOD, "status": "error", "message": "refused"}, "Waiting for flights_delay failed: refused"),
    ]
    for event, message in bad:
        with pytest.raises(MlopsError, match=message):
            sensor.execute_complete(task_context(), event)
    with pytest.raises(ModelVersionFailed):
        sensor.execute_complete(task_context(), {**GOOD, "status": "failed"})
