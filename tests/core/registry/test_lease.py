"""The promotion lease: held leases block, expired or own dead ones are taken over, and it is released."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.core import registry
from tests.core.registry.support import NAME


def test_a_held_lease_blocks_and_an_expired_one_is_taken_over(client: Any, three: list[str]) -> None:
    lock = NAME + registry.LOCK_SUFFIX
    client.create_registered_model(lock, tags={registry.TAG_LOCK_OWNER: "other#1", registry.TAG_LOCK_EXPIRES: "9e12"})
    with pytest.raises(registry.RegistryLockTimeout, match="held by other#1"):
        registry.promote(client, NAME, "1", expected=None, lock_timeout=0.3, sleep=lambda s: None)
    assert client.get_registered_model(NAME).aliases == {}
    client.set_registered_model_tag(lock, registry.TAG_LOCK_EXPIRES, "1")  # its holder died long ago
    assert registry.promote(client, NAME, "1", expected=None).changed
    assert client.search_registered_models(f"name = '{lock}'") == []


def test_a_retry_of_the_same_task_reclaims_the_lease_its_dead_try_left(client: Any, three: list[str]) -> None:
    lock = NAME + registry.LOCK_SUFFIX
    key = "flights_ct/manual__1/promote/-1"
    client.create_registered_model(
        lock, tags={registry.TAG_LOCK_OWNER: f"{key}#dead", registry.TAG_LOCK_EXPIRES: "9e12"}
    )
    with pytest.raises(registry.RegistryLockTimeout, match=f"held by {key}#dead"):  # another task still waits
        registry.promote(client, NAME, "1", expected=None, key="flights_ct/manual__2/promote/-1", lock_timeout=0.3,
                         sleep=lambda s: None)  # fmt: skip
    with pytest.raises(registry.RegistryLockTimeout):  # a caller without a task key never takes it
        registry.promote(client, NAME, "1", expected=None, lock_timeout=0.3, sleep=lambda s: None)
    assert client.get_registered_model(NAME).aliases == {}
    assert registry.promote(client, NAME, "1", expected=None, key=key).changed
    assert client.search_registered_models(f"name = '{lock}'") == []


def test_the_lease_is_released_when_the_promotion_fails(client: Any, three: list[str]) -> None:
    registry.promote(client, NAME, "1", expected=None)
    with pytest.raises(registry.ChampionMoved):
        registry.promote(client, NAME, "2", expected="3")
    assert client.search_registered_models(f"name = '{NAME}{registry.LOCK_SUFFIX}'") == []
    with registry.registry_lock(client, NAME, owner="me") as token:
        holder = client.get_registered_model(NAME + registry.LOCK_SUFFIX).tags[registry.TAG_LOCK_OWNER]
        assert holder == token and token.startswith("me#")


def test_a_lease_released_while_it_was_being_created_is_taken_at_once(client: Any, three: list[str]) -> None:
    """MLflow's store answers a name clash by reading the model back; if its holder released it in between,
    the clash surfaces as RESOURCE_DOES_NOT_EXIST. That is a free lease, not a failure of the promotion."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

    real_create = client.create_registered_model
    calls: list[str] = []

    def racing_create(name: str, **kwargs: Any) -> Any:
        calls.append(name)
        if len(calls) == 1:
            raise MlflowException(f"Registered Model with name={name} not found", error_code=RESOURCE_DOES_NOT_EXIST)
        return real_create(name, **kwargs)

    client.create_registered_model = racing_create
    assert registry.promote(client, NAME, "1", expected=None).changed
    assert calls == [NAME + registry.LOCK_SUFFIX] * 2
