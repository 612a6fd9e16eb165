"""The promotion lease: held leases block and are renewed, expired ones are taken over, and it is released."""

from __future__ import annotations

import threading
import time
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


def test_a_lease_left_by_a_dead_try_is_taken_once_it_expires_by_anyone(client: Any, three: list[str]) -> None:
    """A key gives no right to a live-looking lease: the same task's retry waits for expiry like anyone."""
    lock = NAME + registry.LOCK_SUFFIX
    key = "flights_ct/manual__1/promote/-1"
    client.create_registered_model(
        lock, tags={registry.TAG_LOCK_OWNER: f"{key}#dead", registry.TAG_LOCK_EXPIRES: "9e12"}
    )
    with pytest.raises(registry.RegistryLockTimeout, match=f"held by {key}#dead"):
        registry.promote(client, NAME, "1", expected=None, key=key, lock_timeout=0.3, sleep=lambda s: None)
    assert client.get_registered_model(NAME).aliases == {}
    client.set_registered_model_tag(lock, registry.TAG_LOCK_EXPIRES, f"{time.time() + 0.5:.3f}")  # stops renewing
    assert registry.promote(client, NAME, "1", expected=None, key=key, lock_timeout=5, sleep=time.sleep).changed
    assert client.search_registered_models(f"name = '{lock}'") == []


def test_two_live_tries_of_one_task_are_serialised_and_only_one_moves_the_alias(
    client: Any, three: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zombie try and its retry (same dag, run and task) promote different versions against the same
    champion. The first holds the lease past its ttl while stalled; its renewals keep it, so the retry
    waits, then finds the champion moved. Only one receipt says changed."""
    from airflow_mlops.core.registry import promotion

    registry.promote(client, NAME, "1", expected=None)
    key = "flights_ct/scheduled__2013-06-01/promote/-1"
    inside, resume = threading.Event(), threading.Event()
    real_check = promotion._check_promotable

    def stalled_check(client_: Any, name: str, version: str) -> Any:
        if version == "2":  # the zombie try stalls with the lease held
            inside.set()
            resume.wait(30)
        return real_check(client_, name, version)

    monkeypatch.setattr(promotion, "_check_promotable", stalled_check)
    outcomes: dict[str, Any] = {}

    def attempt(version: str) -> None:
        try:
            outcomes[version] = registry.promote(
                client, NAME, version, expected="1", key=key, lock_ttl=0.6, lock_timeout=20, sleep=time.sleep
            )
        except Exception as exc:
            outcomes[version] = exc

    zombie = threading.Thread(target=attempt, args=("2",))
    zombie.start()
    assert inside.wait(30)
    retry = threading.Thread(target=attempt, args=("3",))
    retry.start()
    time.sleep(2.0)  # over three ttls: a lease that was not renewed would have been taken over by now
    assert retry.is_alive() and "3" not in outcomes
    resume.set()
    zombie.join(30)
    retry.join(30)
    assert isinstance(outcomes["2"], registry.Promotion) and outcomes["2"].changed
    assert isinstance(outcomes["3"], registry.ChampionMoved), outcomes["3"]
    aliases = {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
    assert aliases == {"champion": "2", "previous_champion": "1"}
    assert client.search_registered_models(f"name = '{NAME}{registry.LOCK_SUFFIX}'") == []


def test_a_holder_that_lost_its_lease_moves_nothing(
    client: Any, three: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder stalled past expiry (its renewals failed) and replaced must not write afterwards."""
    from airflow_mlops.core.registry import promotion

    lock = NAME + registry.LOCK_SUFFIX
    real_check = promotion._check_promotable

    def replaced_meanwhile(client_: Any, name: str, version: str) -> Any:
        client_.set_registered_model_tag(lock, registry.TAG_LOCK_OWNER, "another-promotion#1")
        return real_check(client_, name, version)

    monkeypatch.setattr(promotion, "_check_promotable", replaced_meanwhile)
    with pytest.raises(registry.RegistryLeaseLost, match=r"no longer held by .k. \(now: another-promotion#1\)"):
        registry.promote(client, NAME, "1", expected=None, key="k")
    assert client.get_registered_model(NAME).aliases == {}
    assert client.get_registered_model(lock).tags[registry.TAG_LOCK_OWNER] == "another-promotion#1"  # not ours


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
