"""Drift policy: thresholds, hysteresis, cooldown, minimum labels, replay and persisted state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core.drift.policy import DriftPolicy, Observation, cooldown_seconds, decide
from airflow_mlops.core.drift.state import decide_and_save, load_state, save_state, state_uri
from airflow_mlops.core.errors import ArtifactError, SpecError
from airflow_mlops.core.storage import StorageRoot

REF = "flights_delay/v1"


def obs(day: int, share: float | None, **figures: Any) -> Observation:
    return Observation.create(f"2013-04-{day:02d}", f"2013-04-{day:02d}T00:00:00+00:00", figures.pop("ref", REF),
                              drift_share=share, **figures)  # fmt: skip


def run(policy: DriftPolicy, observations: list[Observation]) -> tuple[list[str], dict[str, Any]]:
    """Feed observations one by one through decide(); return the statuses and the final state."""
    state: dict[str, Any] = {}
    statuses = []
    for item in observations:
        decision, state = decide(policy, state, item)
        statuses.append(decision.status)
    return statuses, state


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"drift_share": 2}, "'drift_share' parameter must be a number >= 0 and <= 1"),
        ({"cooldown": "a week"}, "'cooldown' parameter must be a duration: seconds, or a number with a unit"),
        ({"min_new_labels": -1}, "'min_new_labels' parameter must be an integer >= 0"),
        ({"drift_share": 0.3, "hysteresis": 0.4}, "must not exceed its 'drift_share'"),
        ({"quality_drop": 0.01, "quality_hysteresis": 0.02}, "must not exceed its 'quality_drop'"),
        ({"trigger_columns": [1]}, "'trigger_columns' of DriftPolicy must be a list of column names"),
        ({"cooldwn": "1d"}, "Unknown DriftPolicy parameter\\(s\\) \\['cooldwn'\\]"),
    ],
    ids=["share", "cooldown", "labels", "hysteresis", "quality-hysteresis", "columns", "unknown"],
)
def test_bad_policy_is_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        DriftPolicy.from_mapping(raw)


def test_templated_strings_are_coerced() -> None:
    policy = DriftPolicy.from_mapping(
        {"drift_share": "0.4", "cooldown": "7d", "min_new_labels": "500", "trigger_columns": "temp, dest",
         "quality_drop": "0.03"}
    )  # fmt: skip
    assert policy.drift_share == 0.4 and policy.cooldown == 7 * 86400 and policy.min_new_labels == 500
    assert policy.trigger_columns == ("temp", "dest") and policy.quality_drop == 0.03
    assert [cooldown_seconds(x) for x in ("90", "15m", "12h", "2w", 30, 0)] == [90, 900, 43200, 1209600, 30, 0]


def test_drift_share_threshold_triggers() -> None:
    statuses, _ = run(DriftPolicy.from_mapping({"drift_share": 0.5}), [obs(1, 0.2), obs(2, 0.5), obs(3, 0.1)])
    assert statuses == ["ok", "retrain", "ok"]


def test_quality_drop_and_named_column_trigger() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": None, "quality_drop": 0.05, "trigger_columns": ["temp"]})
    statuses, _ = run(
        policy,
        [obs(1, 0.9), obs(2, 0.0, quality_drop=0.06, quality_metric="roc_auc"), obs(3, 0.0, drifted_columns=["temp"])],
    )
    assert statuses == ["ok", "retrain", "retrain"]


def test_hysteresis_keeps_the_alarm_on_until_the_share_clears() -> None:
    """With 0.5 and hysteresis 0.2, 0.45 after an alarm stays an alarm; 0.25 clears it; 0.45 then is fine."""
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "hysteresis": 0.2, "cooldown": "2d"})
    statuses, _ = run(policy, [obs(1, 0.55), obs(2, 0.45), obs(4, 0.45), obs(5, 0.25), obs(6, 0.45), obs(7, 0.5)])
    assert statuses == ["retrain", "cooldown", "retrain", "ok", "ok", "retrain"]
    plain, _ = run(DriftPolicy.from_mapping({"drift_share": 0.5}), [obs(1, 0.55), obs(2, 0.45)])
    assert plain == ["retrain", "ok"]


def test_cooldown_allows_one_trigger_per_period() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "cooldown": "7d"})
    days = [1, 2, 5, 8, 9, 15]
    state: dict[str, Any] = {}
    found = []
    for day in days:
        decision, state = decide(policy, state, obs(day, 0.8))
        found.append((decision.status, decision.next_eligible_at))
    assert [s for s, _ in found] == ["retrain", "cooldown", "cooldown", "retrain", "cooldown", "retrain"]
    assert found[1][1] == "2013-04-08T00:00:00+00:00"


def test_minimum_new_labelled_rows() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "min_new_labels": 1000})
    statuses, state = run(
        policy,
        [obs(1, 0.8, labelled_rows=400), obs(2, 0.8, labelled_rows=400), obs(3, 0.8, labelled_rows=300), obs(4, 0.8)],
    )
    assert statuses == ["awaiting_labels", "awaiting_labels", "retrain", "awaiting_labels"]
    assert state["carry"]["labelled_since_trigger"] == 0


def test_insufficient_data_is_no_decision() -> None:
    statuses, _ = run(DriftPolicy(), [obs(1, None), obs(2, 0.9)])
    assert statuses == ["no_data", "retrain"]


def test_a_new_champion_starts_with_the_alarm_off() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "hysteresis": 0.3})
    statuses, _ = run(policy, [obs(1, 0.6), obs(2, 0.4), obs(3, 0.4, ref="flights_delay/v2")])
    assert statuses == ["retrain", "retrain", "ok"]


def test_rerun_of_a_batch_replaces_it_and_decides_the_same() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "min_new_labels": 100})
    first, state = decide(policy, {}, obs(1, 0.9, labelled_rows=150))
    again, state = decide(policy, state, obs(1, 0.9, labelled_rows=150))
    assert first.status == again.status == "retrain"
    assert len(state["observations"]) == 1 and state["generation"] == 2


def test_a_late_batch_is_replayed_in_batch_order() -> None:
    """A backfilled earlier batch changes the carried state the same way a live run would have."""
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "cooldown": "5d"})
    _, state = decide(policy, {}, obs(10, 0.9))
    late, state = decide(policy, state, obs(7, 0.9))
    assert late.status == "retrain"
    assert state["decisions"] == {
        "2013-04-07": {"status": "retrain", "retrain": True},
        "2013-04-10": {"status": "cooldown", "retrain": False},
    }


def test_history_is_folded_and_older_batches_are_stale() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "history": 3, "cooldown": "30d"})
    statuses, state = run(policy, [obs(d, 0.9 if d == 1 else 0.1) for d in range(1, 7)] + [obs(8, 0.9)])
    assert statuses == ["retrain", "ok", "ok", "ok", "ok", "ok", "cooldown"]
    assert len(state["observations"]) == 3
    assert state["base"]["last_trigger_at"] == "2013-04-01T00:00:00+00:00"
    stale, unchanged = decide(policy, state, obs(2, 0.9))
    assert stale.status == "stale" and not stale.retrain and unchanged["observations"] == state["observations"]


def test_state_is_persisted_atomically_and_guards_concurrent_writes(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path))
    uri = state_uri(root, "flights", "flights delay@prod")
    assert uri == f"{tmp_path}/flights/drift/_policy/flights_delay_prod.json"
    assert load_state(root, uri) == {}
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "cooldown": "2d"})
    assert decide_and_save(root, uri, policy, obs(1, 0.9)).retrain
    assert decide_and_save(root, uri, policy, obs(1, 0.9)).retrain  # the rerun decides the same
    assert decide_and_save(root, uri, policy, obs(2, 0.9)).status == "cooldown"
    stored = json.loads(Path(uri).read_text())
    assert stored["generation"] == 3 and [o["batch_id"] for o in stored["observations"]] == ["2013-04-01", "2013-04-02"]
    with pytest.raises(ArtifactError, match="changed while this check ran"):
        save_state(root, uri, stored, expected_generation=1)
    Path(uri).write_text("{not json")
    with pytest.raises(ArtifactError, match="is not valid JSON"):
        load_state(root, uri)


# -- quality unknown without labels; one point per batch; the weighted signal -------------------------
def test_an_unlabelled_check_leaves_quality_unknown_and_never_counts_it() -> None:
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "quality_drop": 0.05, "quality_hysteresis": 0.02})
    labelled = Observation.create("2013-04:labelled", "2013-04-30T00:00:00+00:00", REF, drift_share=0.1,
                                  quality_drop=0.08, quality_metric="roc_auc", labelled_rows=500)  # fmt: skip
    first, state = decide(policy, {}, labelled)
    assert first.retrain and first.reasons == ("roc_auc drop 0.0800 >= 0.0500",)
    later = Observation.create("2013-05", "2013-05-31T00:00:00+00:00", REF, drift_share=0.1)
    decision, state = decide(policy, state, later)
    assert decision.status == "ok" and not decision.alarm and decision.reasons == ()
    assert decision.conditions["quality"] is None
    assert decision.conditions["quality_note"] == "quality unknown (no labels in this batch): not counted"
    assert not any("n/a" in r for r in decision.reasons)
    # the hysteresis of quality is kept: the next labelled batch at 0.04 (above 0.05 - 0.02) is still on
    back = Observation.create("2013-06:labelled", "2013-06-30T00:00:00+00:00", REF, drift_share=0.1,
                              quality_drop=0.04, quality_metric="roc_auc", labelled_rows=500)  # fmt: skip
    decision, _ = decide(policy, state, back)
    assert decision.conditions["quality"] is True and decision.reasons == ("roc_auc drop 0.0400 >= 0.0300",)


@pytest.mark.parametrize("first_triggers", ["serving", "labelled"])
def test_one_batch_gives_the_policy_one_point_when_its_two_checks_disagree(first_triggers: str) -> None:
    """The serving check of a partition and its labelled check are one batch: one retrain at most."""
    policy = DriftPolicy.from_mapping({"drift_share": 0.5, "quality_drop": 0.05})
    serving = Observation.create("2013-07", "2013-08-01T00:00:00+00:00", REF,
                                 drift_share=0.6 if first_triggers == "serving" else 0.1)  # fmt: skip
    labelled = Observation.create("2013-07:labelled", "2013-08-01T00:00:00+00:00", REF, drift_share=0.1,
                                  quality_drop=0.09, quality_metric="roc_auc", labelled_rows=800)  # fmt: skip
    first, state = decide(policy, {}, serving)
    second, state = decide(policy, state, labelled)
    statuses = [first.status, second.status]
    assert statuses.count("retrain") == 1
    if first_triggers == "serving":
        assert statuses == ["retrain", "already_triggered"] and "batch 2013-07 already triggered" in second.reasons[-1]
    else:
        assert statuses == ["ok", "retrain"]
    assert sum(d["retrain"] for d in state["decisions"].values()) == 1
    # the next batch may trigger again
    nxt = Observation.create("2013-08", "2013-09-01T00:00:00+00:00", REF, drift_share=0.7)
    assert decide(policy, state, nxt)[0].retrain


def test_the_policy_signal_is_the_weighted_share_unless_it_says_plain() -> None:
    figures = {"drift_share": 0.6, "weighted_drift_share": 0.2}
    weighted = Observation.create("2013-04", "2013-04-30T00:00:00+00:00", REF, **figures)
    assert decide(DriftPolicy.from_mapping({"drift_share": 0.5}), {}, weighted)[0].status == "ok"
    plain = DriftPolicy.from_mapping({"drift_share": 0.5, "signal": "plain"})
    assert decide(plain, {}, weighted)[0].reasons == ("drift share 0.600 >= 0.500",)
    unweighed = Observation.create("2013-04", "2013-04-30T00:00:00+00:00", REF, drift_share=0.6)
    (reason,) = decide(DriftPolicy(), {}, unweighed)[0].reasons
    assert reason == "drift share 0.600 >= 0.500 (plain: no feature importance to weigh it)"
    with pytest.raises(SpecError, match="'signal' of DriftPolicy must be 'weighted' or 'plain'"):
        DriftPolicy.from_mapping({"signal": "mean"})
