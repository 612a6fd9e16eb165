"""Feature cost measured on real models' exported ONNX graphs and reference samples (core.feature_cost.measurement)."""

from __future__ import annotations

import onnx
import pytest
import yaml

from airflow_mlops.core.errors import ArtifactError, DataError, SpecError
from airflow_mlops.core.feature_cost import CostPolicy, check_feature_cost, measure_feature_cost
from airflow_mlops.core.training import TrainingSpec, parquet_bytes, train_model
from tests.core.feature_cost.support import measured, trained
from tests.operators.monitoring_support import REPO, small_spec
from tests.support.data import flights


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
