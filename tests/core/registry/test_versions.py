"""Registration is idempotent and never half-done; promotion is compare-and-set; rollback is a promotion."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, SpecError
from airflow_mlops.core.registry import versions as registry
from tests.core.registry.support import client_for, gate_receipt, training_run

NAME = "flights_delay"


class Flaky:
    """A real MlflowClient whose chosen calls fail, the way a registry that went away fails."""

    def __init__(self, client: Any, failures: dict[str, Callable[[tuple[Any, ...]], bool]]) -> None:
        self._client = client
        self._failures = failures
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            should_fail = self._failures.get(name)
            if should_fail is not None and should_fail(args):
                raise ConnectionError(f"registry unreachable during {name}")
            return real(*args, **kwargs)

        return call


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return client_for(tmp_path)


def register(client: Any, run_id: str, **kwargs: Any) -> registry.Registration:
    tags = registry.registration_tags(dict(client.get_run(run_id).data.tags), run_id, gate_receipt(run_id))
    return registry.register_version(
        client, NAME, run_id, source=f"runs:/{run_id}/onnx", tags=tags,
        description=registry.version_description(run_id, gate_receipt(run_id)), **kwargs,
    )  # fmt: skip


def versions(client: Any) -> list[Any]:
    return sorted(client.search_model_versions(f"name = '{NAME}'"), key=lambda v: int(v.version))


def aliases(client: Any) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}


# -- registration ---------------------------------------------------------------------------------------
def test_register_copies_lineage_and_evidence_and_a_retry_returns_the_same_version(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)
    first = register(client, run_id)
    assert (first.version, first.created, first.completed, first.status) == ("1", True, False, "READY")
    version = client.get_model_version(NAME, "1")
    assert version.run_id == run_id and version.source == f"runs:/{run_id}/onnx"
    tags = version.tags
    assert tags[contracts.TAG_ONNX_SHA256] == client.get_run(run_id).data.tags[contracts.TAG_ONNX_SHA256]
    assert tags[contracts.TAG_DATASET_URI].endswith("data.parquet") and "unrelated" not in tags
    assert tags[contracts.TAG_SOURCE_RUN_ID] == run_id and tags[contracts.TAG_GATE_PASSED] == "true"
    assert tags[contracts.TAG_GATE_EVIDENCE_URI].endswith("decision.json")
    assert tags[contracts.TAG_REGISTRATION_COMPLETE] == "true"
    assert "**Gate: passed**" in version.description and "roc_auc: 0.71" in version.description
    again = register(client, run_id)
    assert (again.version, again.created, again.completed) == ("1", False, False)
    assert len(versions(client)) == 1
    other = register(client, training_run(client, tmp_path))
    assert other.version == "2" and len(versions(client)) == 2


def test_failure_after_creation_deletes_the_version_when_the_registry_answers(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)
    marker = contracts.TAG_REGISTRATION_COMPLETE
    flaky = Flaky(client, {"set_model_version_tag": lambda args: args[2] == marker})
    with pytest.raises(ConnectionError):
        register(flaky, run_id)
    assert versions(client) == []  # no half-registered version is left behind
    assert register(client, run_id).created


def test_failure_with_the_registry_gone_leaves_an_unmarked_version_that_a_retry_completes(
    client: Any, tmp_path: Path
) -> None:
    run_id = training_run(client, tmp_path)
    marker = contracts.TAG_REGISTRATION_COMPLETE
    down = Flaky(client, {"set_model_version_tag": lambda args: args[2] == marker,
                          "delete_model_version": lambda args: True})  # fmt: skip
    with pytest.raises(ConnectionError):
        register(down, run_id)
    (half,) = versions(client)
    assert contracts.TAG_REGISTRATION_COMPLETE not in half.tags
    with pytest.raises(registry.VersionNotPromotable, match="registration did not finish"):
        registry.promote(client, NAME, "1", expected=None)
    assert client.get_registered_model(NAME).aliases == {}
    resumed = register(client, run_id)
    assert (resumed.version, resumed.created, resumed.completed) == ("1", False, True)
    assert [str(v.version) for v in versions(client)] == ["1"]
    assert registry.promote(client, NAME, "1", expected=None).changed


def test_a_version_that_stays_pending_times_out_and_a_failed_one_is_replaced(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)

    class Pending(Flaky):
        status = "PENDING_REGISTRATION"

        def __getattr__(self, name: str) -> Any:
            real = super().__getattr__(name)
            if name not in ("create_model_version", "get_model_version"):
                return real

            def call(*args: Any, **kwargs: Any) -> Any:
                found = real(*args, **kwargs)
                found._status = self.status
                return found

            return call

    clock = iter(range(0, 10_000, 10))
    stuck = Pending(client, {})
    with pytest.raises(ArtifactError, match="still PENDING_REGISTRATION after 30 s; a retry resumes the wait"):
        register(stuck, run_id, ready_timeout=30, sleep=lambda s: None, clock=lambda: float(next(clock)))
    failing = Pending(client, {})
    failing.status = "FAILED_REGISTRATION"
    with pytest.raises(ArtifactError, match=r"failed to register version 2 .* It was deleted"):
        register(failing, run_id, sleep=lambda s: None)
    assert [str(v.version) for v in versions(client)] == []  # both attempts cleaned up after themselves
    assert register(client, run_id).version == "3"


def test_duplicates_of_one_run_collapse_to_the_oldest_version(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)
    client.create_registered_model(NAME)
    for _ in range(2):  # as two racing attempts would leave them
        client.create_model_version(NAME, f"runs:/{run_id}/onnx", run_id, await_creation_for=0)
    result = register(client, run_id)
    assert (result.version, result.created, result.completed) == ("1", False, True)
    assert [str(v.version) for v in versions(client)] == ["1"]


def test_model_names_and_run_ids_that_would_break_a_filter_are_refused(client: Any) -> None:
    with pytest.raises(SpecError, match="without quotes"):
        registry.register_version(client, "x' or name='y", "abc", source="s", tags={}, description="")
    with pytest.raises(SpecError, match="run id is letters, digits"):
        registry.register_version(client, NAME, "abc' or 1=1", source="s", tags={}, description="")


# -- promotion --------------------------------------------------------------------------------------------
@pytest.fixture
def three(client: Any, tmp_path: Path) -> list[str]:
    return [register(client, training_run(client, tmp_path)).version for _ in range(3)]


def test_promotion_keeps_the_previous_champion_and_clears_the_challenger(client: Any, three: list[str]) -> None:
    first = registry.promote(client, NAME, "1", expected=None, key="run-a")
    assert (first.version, first.previous_version, first.changed) == ("1", None, True)
    client.set_registered_model_alias(NAME, contracts.ALIAS_CHALLENGER, "2")
    second = registry.promote(client, NAME, "2", expected="1", key="run-b")
    assert (second.version, second.previous_version, second.changed) == ("2", "1", True)
    assert aliases(client) == {"champion": "2", "previous_champion": "1"}
    record = json.loads(client.get_registered_model(NAME).tags[contracts.TAG_LAST_PROMOTION])
    assert record["key"] == "run-b" and (record["from"], record["to"]) == ("1", "2")
    # a retry of the same promotion after it succeeded is recognised, not a conflict
    retry = registry.promote(client, NAME, "2", expected="1", key="run-b")
    assert (retry.changed, retry.previous_version) == (False, "1")
    assert client.search_registered_models(f"name = '{NAME}{registry.LOCK_SUFFIX}'") == []  # lease released


def test_compare_and_set_refuses_when_the_champion_moved(client: Any, three: list[str]) -> None:
    registry.promote(client, NAME, "1", expected=None)
    registry.promote(client, NAME, "2", expected="1")
    with pytest.raises(registry.ChampionMoved, match=r"points at version 2, but this promotion expected version 1"):
        registry.promote(client, NAME, "3", expected="1")
    with pytest.raises(registry.ChampionMoved, match="expected version none"):
        registry.promote(client, NAME, "3", expected=None)
    assert aliases(client) == {"champion": "2", "previous_champion": "1"}  # nothing changed


def test_only_a_completely_registered_version_from_the_gated_run_is_promoted(client: Any, three: list[str]) -> None:
    with pytest.raises(registry.VersionNotPromotable, match="has no version '9'"):
        registry.promote(client, NAME, "9", expected=None)
    run_of_1 = client.get_model_version(NAME, "1").run_id
    with pytest.raises(registry.VersionNotPromotable, match="refusing to promote what was not gated"):
        registry.promote(client, NAME, "2", expected=None, expected_run_id=run_of_1)
    assert registry.promote(client, NAME, "1", expected=None, expected_run_id=run_of_1).changed


def test_rollback_swaps_champion_and_previous_and_a_retry_does_not_swap_back(client: Any, three: list[str]) -> None:
    with pytest.raises(registry.VersionNotPromotable, match="no 'previous_champion' alias"):
        registry.rollback(client, NAME)
    registry.promote(client, NAME, "1", expected=None)
    registry.promote(client, NAME, "3", expected="1")
    back = registry.rollback(client, NAME, key="incident-7")
    assert (back.version, back.previous_version, back.mode) == ("1", "3", "rollback")
    assert aliases(client) == {"champion": "1", "previous_champion": "3"}
    retry = registry.rollback(client, NAME, key="incident-7")
    assert not retry.changed and aliases(client) == {"champion": "1", "previous_champion": "3"}
    forward = registry.rollback(client, NAME, key="incident-8")  # a new rollback rolls forward again
    assert forward.version == "3" and aliases(client)["champion"] == "3"
    with pytest.raises(registry.ChampionMoved):
        registry.rollback(client, NAME, expected="1", key="stale")


# -- the lease --------------------------------------------------------------------------------------------
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


def test_alias_lookup_tells_no_champion_from_no_answer(
    client: Any, three: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert registry.alias_version(client, "never_registered", "champion") is None
    assert registry.alias_version(client, NAME, "champion") is None
    from mlflow import MlflowClient

    dead = MlflowClient(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        registry.alias_version(dead, NAME, "champion")
