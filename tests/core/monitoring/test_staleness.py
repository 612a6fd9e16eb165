"""What model age costs (core.monitoring.staleness): models of different ages on the same rows, a cost
per month of age against the policy's limit, and a policy that names what is wrong with it."""

from __future__ import annotations

import pytest

from airflow_mlops.core import monitoring as m
from airflow_mlops.core.errors import SpecError


def aged(version: str, age_days: float, quality: float | None) -> m.AgedQuality:
    return m.AgedQuality(version, "2013-06-30T00:00:00+00:00", "tag", age_days, quality)


def test_the_cost_per_month_is_the_fitted_loss_of_quality_with_age() -> None:
    policy = m.StalenessImpactPolicy(max_cost_per_month=0.01)
    # roc_auc 0.02 lower for every 30 days older, all on the same batch
    points = [aged("3", 30, 0.70), aged("2", 60, 0.68), aged("1", 90, 0.66)]
    finding = m.age_cost(points, metric="roc_auc", higher_is_better=True, rows=4000, policy=policy)
    assert finding.is_alert and finding.details["cost_per_month"] == pytest.approx(0.02)
    assert "v3 30 d 0.7000, v2 60 d 0.6800, v1 90 d 0.6600" in finding.message
    relaxed = m.StalenessImpactPolicy(max_cost_per_month=0.03)
    assert m.age_cost(points, metric="roc_auc", higher_is_better=True, rows=4000, policy=relaxed).severity == "ok"
    # a newer model that does worse costs nothing: the cost is negative
    reversed_ = [aged("3", 30, 0.66), aged("1", 90, 0.70)]
    gain = m.age_cost(reversed_, metric="roc_auc", higher_is_better=True, rows=4000, policy=policy)
    assert gain.severity == "ok" and gain.details["cost_per_month"] == pytest.approx(-0.02)
    # an error that grows with age is a cost too
    errors = [aged("2", 10, 5.0), aged("1", 40, 6.0)]
    rmse = m.age_cost(errors, metric="rmse", higher_is_better=False, rows=100, policy=m.StalenessImpactPolicy(0.5))
    assert rmse.is_alert and rmse.details["cost_per_month"] == pytest.approx(1.0)


def test_one_age_or_an_undefined_quality_is_not_judged() -> None:
    policy = m.StalenessImpactPolicy(max_cost_per_month=0.0)
    one = m.age_cost([aged("1", 30, 0.7)], metric="roc_auc", higher_is_better=True, rows=10, policy=policy)
    assert one.severity == "ok" and "2 ages are needed" in one.message and "cost_per_month" not in one.details
    undefined = [aged("2", 30, 0.7), aged("1", 60, None)]
    finding = m.age_cost(undefined, metric="roc_auc", higher_is_better=True, rows=10, policy=policy)
    assert finding.severity == "ok" and len(finding.details["points"]) == 2


def test_the_policy_has_defaults_and_refuses_bad_values() -> None:
    assert m.StalenessImpactPolicy.from_mapping(None).to_dict() == {
        "max_cost_per_month": 0.01, "max_versions": 4, "min_versions": 2,
    }  # fmt: skip
    assert m.StalenessImpactPolicy.from_mapping({"max_cost_per_month": "0.005"}).max_cost_per_month == 0.005
    with pytest.raises(SpecError, match=r"'max_cost_per_month' parameter must be a number >= 0\. Got -0\.1"):
        m.StalenessImpactPolicy.from_mapping({"max_cost_per_month": -0.1})
    with pytest.raises(SpecError, match="'max_versions' parameter must be an integer >= 2"):
        m.StalenessImpactPolicy.from_mapping({"max_versions": 1.5})
    with pytest.raises(SpecError, match=r"Unknown key\(s\) \['threshold'\]"):
        m.StalenessImpactPolicy.from_mapping({"threshold": 0.01})
    with pytest.raises(SpecError, match="must be a mapping"):
        m.StalenessImpactPolicy.from_mapping(0.01)  # type: ignore[arg-type]
