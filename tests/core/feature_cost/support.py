"""Flights models trained once per session for the feature cost tests, and the specs they are trained on."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from airflow_mlops.core.feature_cost import measure_feature_cost
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


# A derived feature the data never reaches: every distance is above every edge, so each row runs through
# all 100 comparisons of the bucketing to land in the last bucket. Constant, it is never split on.
BAND_EDGES = ", ".join(str(-edge) for edge in range(100, 0, -1))


def with_band(spec: dict[str, Any]) -> dict[str, Any]:
    """``distance_band``, a bucketing of ``distance`` by 100 edges below any distance: costly to compute,
    worth nothing to the model."""
    features = spec["features"]
    features["derived"] = {**features["derived"], "distance_band": f"bucket(distance, [{BAND_EDGES}])"}
    features["numeric"] = [*features["numeric"], "distance_band"]
    return spec


@cache
def trained(name: str) -> TrainingResult:
    if name == "shipped":  # the flights spec as shipped, on two months
        return train_model(flights(months=[1, 2], sample=30_000), TrainingSpec.from_mapping(shipped_spec()))
    if name == "band":
        return train_model(flights(months=[1, 2], sample=6000), TrainingSpec.from_mapping(with_band(small_spec())))
    return train_model(flights(months=[1, 2], sample=6000), TrainingSpec.from_mapping(with_tailnum(small_spec())))


def measured(name: str) -> Any:
    result = trained(name)
    return measure_feature_cost(result.onnx_bytes, result.onnx_inputs, parquet_bytes(result.reference))
