"""The feature cost rule (core.feature_cost.verdict) on real flights models: who pays for their cost, who does not."""

from __future__ import annotations

from typing import Any

import onnx
import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.feature_cost import CostPolicy, check_feature_cost
from tests.core.feature_cost.support import measured, trained


def test_the_shipped_flights_model_pays_for_every_feature() -> None:
    result = trained("shipped")
    measurement = measured("shipped")
    finding = check_feature_cost(measurement, result.importance, CostPolicy())
    assert finding.severity == "ok", finding.message
    table = {row["feature"]: row for row in finding.details["features"]}
    assert set(table) == set(result.spec.features)
    # Columns traced through the graph: one per numeric feature, one per kept category.
    kept = result.spec_artifact()["vocabulary"]
    assert {name: table[name]["columns"] for name in kept} == {name: len(values) for name, values in kept.items()}
    assert all(table[name]["columns"] == 1 for name in result.spec.numeric_features)
    # Every branch node of the ensemble is attributed to exactly one feature.
    ensemble = next(n for n in onnx.load_from_string(result.onnx_bytes).graph.node if n.op_type.startswith("Tree"))
    modes = next(a.strings for a in ensemble.attribute if a.name == "nodes_modes")
    assert sum(row["split_nodes"] for row in table.values()) == sum(m != b"LEAF" for m in modes)
    assert sum(row["model_bytes"] for row in table.values()) <= measurement.model_bytes
    assert sum(row["cost_share"] for row in table.values()) == pytest.approx(1.0, abs=1e-4)
    assert all(row["serving_ms_per_1k"] > 0 and row["missing_rate"] == 0.0 for row in table.values())
    assert measurement.rows == 10_000 and measurement.seconds < 5


def test_an_expensive_feature_the_model_does_not_use_is_flagged() -> None:
    result = trained("tailnum")
    finding = check_feature_cost(measured("tailnum"), result.importance, CostPolicy())
    tailnum = next(row for row in finding.details["features"] if row["feature"] == "tailnum")
    assert tailnum["split_nodes"] == 0 and tailnum["importance_share"] == 0.0
    assert tailnum["columns"] == 64 and tailnum["cost_share"] > 0.02  # its encoder and coercion
    assert finding.severity == "warn" and "tailnum" in finding.details["flagged"]
    assert "tailnum: " in finding.message and "of the cost for 0.0% of the importance" in finding.message


def test_absolute_budgets_flag_whatever_the_importance() -> None:
    result = trained("shipped")
    measurement = measured("shipped")
    generous = CostPolicy(max_serving_ms_per_1k=1000.0, max_model_bytes=10e6)
    assert check_feature_cost(measurement, result.importance, generous).severity == "ok"
    heaviest = max(measurement.features.values(), key=lambda c: c.model_bytes)
    tight = CostPolicy(max_cost_ratio=1000.0, max_model_bytes=heaviest.model_bytes - 1)
    finding = check_feature_cost(measurement, result.importance, tight)
    assert list(finding.details["flagged"]) == [heaviest.feature]
    assert "bytes of the model (budget" in finding.message


@pytest.mark.parametrize(
    ("raw", "match"),
    [
        ({"max_cost_ratio": "0.5"}, "'max_cost_ratio' parameter must be a number >= 1"),
        ({"min_cost_share": "2"}, "'min_cost_share' parameter must be a number >= 0 and <= 1"),
        ({"max_serving_ms_per_1k": "fast"}, "'max_serving_ms_per_1k'"),
        ({"max_latency": 3}, r"Unknown feature cost setting\(s\) \['max_latency'\]"),
    ],
    ids=["ratio-below-one", "share-above-one", "budget-not-a-number", "unknown-setting"],
)
def test_a_bad_policy_is_refused_naming_the_setting(raw: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        CostPolicy.from_mapping(raw)


def test_policy_from_rendered_strings() -> None:
    policy = CostPolicy.from_mapping({"max_cost_ratio": "4", "min_cost_share": "0.1", "max_model_bytes": "None"})
    assert policy == CostPolicy(max_cost_ratio=4.0, min_cost_share=0.1)
