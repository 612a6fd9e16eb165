"""The gate policy: rendered strings are coerced, bad values are refused naming the key, metrics must
suit the model."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import GatePolicy, evaluate
from tests.core.gating.support import Exported, candidate, policy


def test_policy_coerces_rendered_strings() -> None:
    rules = GatePolicy.from_mapping(
        {"floors": {"roc_auc": "0.6", "log_loss": "0.7"}, "tolerance": "0.01", "bootstrap": {"samples": "500"},
         "slices": {"columns": "origin, carrier", "floor": "0.5"}, "max_model_bytes": "2000000",
         "baseline": {"enabled": "false"}}
    )  # fmt: skip
    assert rules.floors == {"roc_auc": 0.6, "log_loss": 0.7} and rules.tolerance == 0.01
    assert rules.bootstrap.enabled and rules.bootstrap.samples == 500
    assert rules.slices.columns == ("origin", "carrier") and rules.max_model_bytes == 2_000_000
    assert not rules.baseline.enabled
    assert GatePolicy.from_mapping(None) == GatePolicy()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"floor": {}}, r"Unknown key\(s\) \['floor'\] in the gate policy"),
        ({"floors": {"auc": 0.6}}, r"'auc' is not a metric the gate knows"),
        ({"floors": {"roc_auc": "high"}}, r"'floors.roc_auc' parameter of GatePolicy must be a number. Got 'high'"),
        ({"tolerance": -0.1}, r"'tolerance' parameter of GatePolicy must be a number >= 0. Got -0.1"),
        ({"bootstrap": {"confidence": 1.3}}, r"'bootstrap.confidence' .* must be a number >= 0.5 and <= 0.999"),
        ({"bootstrap": {"samples": 10.5}}, r"'bootstrap.samples' .* must be an integer >= 100"),
        ({"slices": {"colums": ["origin"]}}, r"Unknown key\(s\) \['colums'\] in the 'slices' section"),
        ({"slices": {"columns": 3}}, r"'slices.columns' parameter of GatePolicy must be a list of names"),
        ({"baseline": {"kind": "forest"}}, r"'baseline.kind' .* must be one of \['auto', 'prior', 'mean', 'linear'\]"),
        ({"first_run": "allow"}, r"'first_run' .* must be one of \['floors_only', 'reject'\]"),
        ({"max_latency_ms_per_1k": 0}, r"'max_latency_ms_per_1k' .* must be a number > 0"),
        ({"bootstrap": {"enabled": "maybe"}}, r"'bootstrap.enabled' .* must be true or false. Got 'maybe'"),
        ([1, 2], r"gate policy must be a mapping of settings. Got list"),
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
