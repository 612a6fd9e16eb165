"""The gate policy: rendered strings are coerced, bad values are refused naming the key, metrics must
suit the model."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import GatePolicy, evaluate
from airflow_mlops.core.gating.coercion import Margin
from tests.core.gating.support import Exported, candidate, policy


def test_policy_coerces_rendered_strings() -> None:
    rules = GatePolicy.from_mapping(
        {"floors": {"roc_auc": "0.6", "log_loss": "0.7"}, "compare_metrics": "pr_auc", "tolerance": "0.01",
         "bootstrap": {"samples": "500"},
         "slices": {"columns": "origin, carrier", "floor": "0.5"}, "max_model_bytes": "2000000",
         "baseline": {"enabled": "false"}}
    )  # fmt: skip
    assert rules.floors == {"roc_auc": 0.6, "log_loss": 0.7} and rules.tolerance == 0.01
    assert rules.bootstrap.enabled and rules.bootstrap.samples == 500
    assert rules.slices.columns == ("origin", "carrier") and rules.max_model_bytes == 2_000_000
    assert not rules.baseline.enabled
    assert GatePolicy.from_mapping(None) == GatePolicy()


def test_the_compare_section_has_defaults_and_takes_absolute_or_relative_margins() -> None:
    default = GatePolicy.from_mapping(None).compare
    assert (default.proper_scoring_rule, default.max_ece) == ("auto", None)
    assert (default.tolerance_primary, default.tolerance_scoring_rule) == (Margin(0.01), Margin(0.02))
    assert default.min_gain == Margin(0.0)  # no minimum gain: the gate as it was
    compare = GatePolicy.from_mapping(
        {"compare": {"proper_scoring_rule": "brier", "tolerance": {"primary": "0.005", "scoring_rule": "1%"},
                     "min_gain": "2%", "max_ece": "0.05", "ece_bins": "15"}}
    ).compare  # fmt: skip
    assert compare.proper_scoring_rule == "brier" and compare.max_ece == 0.05 and compare.ece_bins == 15
    assert compare.tolerance_primary == Margin(0.005)
    assert compare.tolerance_scoring_rule == Margin(0.01, relative=True)
    assert compare.min_gain == Margin(0.02, relative=True) and compare.min_gain.of(0.7) == pytest.approx(0.014)
    single = GatePolicy.from_mapping({"compare": {"proper_scoring_rule": "none", "tolerance": {"primary": 0}}})
    assert single.to_dict()["compare"]["tolerance_primary"] == {"value": 0.0, "relative": False}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"floor": {}}, r"Unknown key\(s\) \['floor'\] in the gate policy"),
        ({"floors": {"auc": 0.6}}, r"'auc' is not a metric the gate knows"),
        ({"floors": {"roc_auc": "high"}}, r"'floors.roc_auc' parameter of GatePolicy must be a number. Got 'high'"),
        (
            {"compare_metrics": ["pr_auc"], "tolerance": -0.1},
            r"'tolerance' parameter .* must be a number >= 0. Got -0.1",
        ),
        ({"bootstrap": {"confidence": 1.3}}, r"'bootstrap.confidence' .* must be a number >= 0.5 and <= 0.999"),
        ({"bootstrap": {"samples": 10.5}}, r"'bootstrap.samples' .* must be an integer >= 100"),
        ({"slices": {"colums": ["origin"]}}, r"Unknown key\(s\) \['colums'\] in the 'slices' section"),
        ({"slices": {"columns": 3}}, r"'slices.columns' parameter of GatePolicy must be a list of names"),
        ({"baseline": {"kind": "forest"}}, r"'baseline.kind' .* must be one of \['auto', 'prior', 'mean', 'linear'\]"),
        ({"first_run": "allow"}, r"'first_run' .* must be one of \['floors_only', 'reject'\]"),
        ({"max_latency_ms_per_1k": 0}, r"'max_latency_ms_per_1k' .* must be a number > 0"),
        ({"bootstrap": {"enabled": "maybe"}}, r"'bootstrap.enabled' .* must be true or false. Got 'maybe'"),
        ([1, 2], r"gate policy must be a mapping of settings. Got list"),
        ({"tolerance": 0.005}, r"'tolerance' .* non-regression tolerance of 'compare_metrics', which lists no metric"),
        (
            {"compare_metrics": ["pr_auc"], "tolerance": {"roc_auc": 0.01}},
            r"names metric\(s\) \['roc_auc'\] that 'compare_metrics' does not list",
        ),
        ({"compare": {"primary": "roc_auc"}}, r"Unknown key\(s\) \['primary'\] in the 'compare' section"),
        (
            {"compare": {"proper_scoring_rule": "auc"}},
            r"'compare.proper_scoring_rule' .* one of \['auto', 'log_loss', 'brier', 'rmse', 'none'\]. Got 'auc'",
        ),
        ({"compare": {"tolerance": 0.01}}, r"'compare.tolerance' .* must map 'primary' and 'scoring_rule'"),
        ({"compare": {"tolerance": {"primry": 0.01}}}, r"Unknown key\(s\) \['primry'\] in the 'compare.tolerance'"),
        (
            {"compare": {"tolerance": {"primary": "-1%"}}},
            r"'compare.tolerance.primary' .* number >= 0 in metric units, or a percentage .* Got '-1%'",
        ),
        (
            {"compare": {"proper_scoring_rule": "none", "tolerance": {"scoring_rule": 0.02}}},
            r"'compare.tolerance.scoring_rule' .* has no effect with 'compare.proper_scoring_rule: none'",
        ),
        ({"compare": {"min_gain": "two percent"}}, r"'compare.min_gain' .* such as '2%'. Got 'two percent'"),
        ({"compare": {"min_gain": "150%"}}, r"'compare.min_gain' .* between 0% and 100%"),
        ({"compare": {"max_ece": 1.5}}, r"'compare.max_ece' .* must be a number >= 0 and <= 1. Got 1.5"),
        ({"compare": {"ece_bins": 1}}, r"'compare.ece_bins' .* must be an integer >= 2 and <= 100"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None,
)
def test_policy_rejects_bad_values_naming_the_key(raw: object, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        GatePolicy.from_mapping(raw)  # type: ignore[arg-type]


def test_policy_metrics_must_suit_the_model(good: Exported, evaluation: pd.DataFrame) -> None:
    with pytest.raises(SpecError, match="'floors' metric of the gate policy 'rmse' does not apply to a binary model"):
        evaluate(candidate(good), None, evaluation, policy(floors={"rmse": 3}))
    with pytest.raises(SpecError, match="baseline kind 'mean' applies to regressors"):
        evaluate(candidate(good), None, evaluation, policy(baseline={"kind": "mean"}))
    with pytest.raises(SpecError, match=r"'compare.proper_scoring_rule' metric of the gate policy 'rmse' does not"):
        evaluate(candidate(good), None, evaluation, policy(compare={"proper_scoring_rule": "rmse"}))
    with pytest.raises(SpecError, match=r"'compare_metrics' .* lists the primary metric 'roc_auc'"):
        evaluate(candidate(good), None, evaluation, policy(compare_metrics=["roc_auc", "pr_auc"]))
    with pytest.raises(SpecError, match=r"'compare.max_ece' .* applies to classifiers"):
        GatePolicy.from_mapping({"compare": {"max_ece": 0.1}}).check_task("regression")
