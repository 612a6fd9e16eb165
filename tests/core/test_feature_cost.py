"""Feature cost on real flights models: measured on the exported ONNX graph and the reference sample."""

from __future__ import annotations

from functools import cache
from typing import Any

import onnx
import pytest
import yaml

from airflow_mlops.core.errors import ArtifactError, DataError, SpecError
from airflow_mlops.core.feature_cost import CostPolicy, check_feature_cost, measure_feature_cost
from airflow_mlops.core.training import TrainingResult, TrainingSpec, parquet_bytes, train_model
from tests.operators.monitoring_support import REPO, small_spec
from tests.support.data import flights


def shipped_spec() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "include" / "pipelines" / "flights_delay.yaml").read_text())["training"])


def with_tailnum(spec: dict[str, Any]) -> dict[str, Any]:
    """``tailnum`` as a categorical: the plane's registration, which a 9-tree model never splits on,
    yet serving it costs a 64-entry one-hot encoder and a string column to coerce."""
    spec["features"]["categorical"] = [*spec["features"]["categorical"], "tailnum"]
    spec["categories"] = {"max": 64, "min_frequency": 3}
    return spec


@cache
def trained(name: str) -> TrainingResult:
    if name == "shipped":  # the flights spec as shipped, on two months
        return train_model(flights(months=[1, 2], sample=30_000), TrainingSpec.from_mapping(shipped_spec()))
    return train_model(flights(months=[1, 2], sample=6000), TrainingSpec.from_mapping(with_tailnum(small_spec())))


def measured(name: str) -> Any:
    result = trained(name)
    return measure_feature_cost(result.onnx_bytes, result.onnx_inputs, parquet_bytes(result.reference))


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


def test_inputs_that_cannot_be_measured_are_refused() -> None:
    result = trained("shipped")
    sample = parquet_bytes(result.reference)
    with pytest.raises(ArtifactError, match="cannot be parsed"):
        measure_feature_cost(b"not a model", result.onnx_inputs, sample)
    without_dest = parquet_bytes(result.reference.drop(columns=["dest"]))
    with pytest.raises(DataError, match="sample is not a readable Parquet file holding the model's features"):
        measure_feature_cost(result.onnx_bytes, result.onnx_inputs, without_dest)
    with pytest.raises(SpecError, match=r"feature\(s\) \['day'\]"):
        check_feature_cost(measured("shipped"), {**result.importance, "day": 0.1}, CostPolicy())
    with pytest.raises(SpecError, match="no feature importance"):
        check_feature_cost(measured("shipped"), {}, CostPolicy())


def test_a_linear_model_is_split_by_the_columns_each_feature_fills() -> None:
    spec = small_spec()
    spec.update(estimator={"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}})
    spec["early_stopping_rounds"] = None
    january = flights(months=[1], sample=6000)
    result = train_model(
        january.assign(distance=january["distance"].where(january.index % 7 > 0)), TrainingSpec.from_mapping(spec)
    )
    measurement = measure_feature_cost(result.onnx_bytes, result.onnx_inputs, parquet_bytes(result.reference))
    costs = measurement.features
    kept = result.spec_artifact()["vocabulary"]
    # Traced through the imputer and scaler of the numeric columns and the one-hot encoders.
    assert {name: costs[name].columns for name in kept} == {name: len(values) for name, values in kept.items()}
    assert all(c.split_nodes == 0 for c in costs.values())
    assert costs["dest"].model_bytes > costs["origin"].model_bytes > costs["hour"].model_bytes > 0
    assert 0.08 < costs["distance"].missing_rate < 0.25 and costs["hour"].missing_rate == 0.0


def test_a_regression_ensemble_is_attributed_like_a_classifier() -> None:
    from tests.support.data import bike_sharing

    spec = dict(yaml.safe_load((REPO / "include" / "pipelines" / "bike_sharing.yaml").read_text())["training"])
    spec.pop("search")
    spec["estimator"]["params"].update(n_estimators=200, learning_rate=0.1)
    result = train_model(bike_sharing(), TrainingSpec.from_mapping(spec))
    measurement = measure_feature_cost(result.onnx_bytes, result.onnx_inputs, parquet_bytes(result.reference))
    ensemble = next(n for n in onnx.load_from_string(result.onnx_bytes).graph.node if n.op_type.startswith("Tree"))
    assert ensemble.op_type == "TreeEnsembleRegressor"
    modes = next(a.strings for a in ensemble.attribute if a.name == "nodes_modes")
    assert sum(c.split_nodes for c in measurement.features.values()) == sum(m != b"LEAF" for m in modes)
    assert measurement.features["season"].columns == len(result.spec_artifact()["vocabulary"]["season"])
    assert check_feature_cost(measurement, result.importance, CostPolicy()).details["rows"] == 10_000
