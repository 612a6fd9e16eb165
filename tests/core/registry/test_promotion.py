"""Promotion is compare-and-set on the alias and keeps the previous champion; rollback is a promotion."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_mlops.core import contracts, registry
from tests.core.registry.support import NAME, aliases


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


def test_every_alias_move_is_kept_with_who_and_when_in_a_bounded_history(client: Any, three: list[str]) -> None:
    registry.promote(client, NAME, "1", expected=None, key="dag/run-a/promote")
    registry.promote(client, NAME, "2", expected="1", key="dag/run-b/promote")
    registry.rollback(client, NAME, key="rollback-1", by="alice")
    history = registry.promotion_history(client.get_registered_model(NAME).tags)
    assert [(h["from"], h["to"], h["mode"], h["by"]) for h in history] == [
        (None, "1", "promote", "dag/run-a/promote"),  # a task's move is recorded under its key
        ("1", "2", "promote", "dag/run-b/promote"),
        ("2", "1", "rollback", "alice"),
    ]
    assert history[0]["at"] <= history[1]["at"] <= history[2]["at"]
    for i in range(30):  # bounded: the oldest moves go, the tag stays within what MLflow's SQL stores keep
        registry.rollback(client, NAME, key=f"swap-{i}", by="someone with a rather long name " * 3)
    tag = client.get_registered_model(NAME).tags[contracts.TAG_PROMOTION_HISTORY]
    kept = registry.promotion_history(client.get_registered_model(NAME).tags)
    assert len(tag) <= 4000 and 1 < len(kept) <= 20 and kept[-1]["key"] == "swap-29"


def test_an_unreadable_history_tag_reads_as_no_history() -> None:
    assert registry.promotion_history({contracts.TAG_PROMOTION_HISTORY: "not json"}) == []
    assert registry.promotion_history({contracts.TAG_PROMOTION_HISTORY: '{"a": 1}'}) == []
    assert registry.promotion_history(None) == []
