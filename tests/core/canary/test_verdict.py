"""The canary policy's settings and the decision on a challenger's shadow batches."""

from __future__ import annotations

import pytest

from airflow_mlops.core.canary import CanaryPolicy, ShadowBatch, judge, merge
from airflow_mlops.core.errors import SpecError


def batch(
    partition: str, agreement: float = 0.95, auc: tuple[float, float] | None = (0.70, 0.70), **kw: object
) -> ShadowBatch:
    values: dict[str, object] = {
        "partition": partition, "status": "ok", "champion_version": "1", "challenger_version": "2", "rows": 1000,
        "agreement": agreement, "labelled_rows": 900 if auc else 0,
        "champion_metric": auc[0] if auc else None, "challenger_metric": auc[1] if auc else None,
    }  # fmt: skip
    values.update(kw)
    return ShadowBatch(**values)  # type: ignore[arg-type]


def decide(policy: CanaryPolicy, *batches: ShadowBatch) -> tuple[str, tuple[str, ...]]:
    verdict = judge(policy, batches, challenger="2", champion="1", metric="roc_auc")
    return verdict.decision, verdict.reasons


def test_defaults_are_documented_values_and_off_without_batches() -> None:
    assert not CanaryPolicy.from_mapping(None).enabled
    policy = CanaryPolicy.from_mapping(2)
    assert (policy.batches, policy.min_agreement, policy.max_quality_drop, policy.require_labels) == (
        2,
        0.9,
        0.01,
        True,
    )
    assert (
        policy.max_batches == 4
        and policy.metric_for("binary") == "roc_auc"
        and policy.metric_for("regression") == "rmse"
    )
    assert CanaryPolicy.from_dict(policy.to_dict()) == policy


@pytest.mark.parametrize(
    ("batches", "raw", "message"),
    [
        ("two", {}, r"gate.canary_batches must be an integer in \[0, 24\]. Got 'two'"),
        (2, {"min_agreement": 1.5}, r"'min_agreement' parameter must be a number >= 0 and <= 1. Got 1.5"),
        (2, {"metric": "auc"}, r"gate.canary.metric must be one of .*Got 'auc'"),
        (2, {"max_batches": 1}, r"gate.canary.max_batches must be an integer in \[2, 24\]. Got 1"),
        (2, {"agreement": 0.9}, r"unknown key\(s\) \['agreement'\]"),
        (None, {"min_agreement": 0.8}, r"canary_batches is not set"),
    ],
    ids=["batches", "agreement", "metric", "max-batches", "unknown-key", "thresholds-without-batches"],
)
def test_bad_settings_are_refused_with_what_was_expected(batches: object, raw: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        CanaryPolicy.from_mapping(batches, raw)


def test_waits_for_the_batches_then_promotes_an_agreeing_challenger_as_good_as_the_champion() -> None:
    policy = CanaryPolicy.from_mapping(2)
    assert decide(policy, batch("2013-05"))[0] == "wait"
    decision, reasons = decide(policy, batch("2013-05"), batch("2013-06", auc=(0.70, 0.695)))
    assert decision == "promote" and "agreement 0.950 over 2 batches" in reasons[0]
    # Batches against another champion, or of another challenger, do not count.
    assert decide(policy, batch("2013-05"), batch("2013-06", champion_version="3"))[0] == "wait"


@pytest.mark.parametrize(
    ("batches", "reason"),
    [
        (
            (batch("a", agreement=0.95), batch("b", agreement=0.7)),
            "agreement 0.825 over 2 batches is below min_agreement 0.9",
        ),
        ((batch("a", auc=(0.70, 0.66)), batch("b", auc=(0.70, 0.68))), "0.0300 worse on the labelled rows"),
        ((batch("a", status="failed", rows=0, agreement=None, reason="KeyError: 'x'"),), "could not score batch a"),
    ],
    ids=["disagrees", "underperforms", "cannot-score"],
)
def test_drops_a_challenger_that_disagrees_underperforms_or_fails(
    batches: tuple[ShadowBatch, ...], reason: str
) -> None:
    decision, reasons = decide(CanaryPolicy.from_mapping(2), *batches)
    assert decision == "drop" and reason in " ".join(reasons)


def test_without_labels_it_waits_until_max_batches_unless_labels_are_not_required() -> None:
    blind = [batch(p, auc=None) for p in ("a", "b", "c", "d")]
    policy = CanaryPolicy.from_mapping(2)
    assert decide(policy, *blind[:2])[0] == "wait"
    assert decide(policy, *blind)[0] == "drop"
    assert decide(CanaryPolicy.from_mapping(2, {"require_labels": False}), *blind[:2])[0] == "promote"


def test_a_rescored_partition_replaces_its_figures() -> None:
    merged = merge([batch("a", agreement=0.5), batch("b")], [batch("a", agreement=0.99)])
    assert [(b.partition, b.agreement) for b in merged] == [("a", 0.99), ("b", 0.95)]
