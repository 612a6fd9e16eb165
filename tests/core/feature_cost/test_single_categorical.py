"""A model with one categorical feature: its column is picked by a Gather node, which the attribution follows."""

from __future__ import annotations

from airflow_mlops.core.feature_cost import measure_feature_cost
from airflow_mlops.core.training import TrainingSpec, parquet_bytes, train_model
from tests.support.weather import TARGET, weather_visibility


def test_a_lone_categorical_feature_is_traced_through_its_gather() -> None:
    weather = weather_visibility()
    spec = TrainingSpec.from_mapping(
        {
            "task": "multiclass",
            "target": TARGET,
            "features": {"numeric": ["humid", "dewp", "temp"], "categorical": ["origin"]},
            "estimator": {"type": "lightgbm", "params": {"n_estimators": 20}},
            "split": {"method": "time", "column": "time_hour"},
            "seed": 0,
        }
    )
    result = train_model(weather[weather["month"] <= 2], spec)
    measured = measure_feature_cost(result.onnx_bytes, result.onnx_inputs, parquet_bytes(result.reference))
    rows = {row["feature"]: row for row in measured.table({})}
    assert set(rows) == {"humid", "dewp", "temp", "origin"}
    assert rows["origin"]["columns"] == 3  # EWR, JFK, LGA one-hot
    assert rows["humid"]["split_nodes"] > 0
