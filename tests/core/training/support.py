"""Training specs for the training tests: flights delay (binary) and bike sharing (regression)."""

from __future__ import annotations

from typing import Any

from airflow_mlops.core.training import TrainingSpec

FLIGHTS: dict[str, Any] = {
    "task": "binary",
    "target": "arr_delayed_15",
    "features": {"numeric": ["hour", "minute", "distance"], "categorical": ["carrier", "origin", "dest"]},
    "estimator": {"params": {"n_estimators": 60, "learning_rate": 0.1, "num_leaves": 15}},
    "split": {"method": "time", "column": "sched_dep_ts"},
    "early_stopping_rounds": 10,
    "categories": {"max": 20, "min_frequency": 5},
    "reference_rows": 500,
    "seed": 3,
}
BIKE: dict[str, Any] = {
    "task": "regression",
    "target": "cnt",
    "features": {"numeric": ["hr", "temp", "hum", "yr", "mnth"], "categorical": ["weathersit", "workingday"]},
    "estimator": {"params": {"n_estimators": 150, "learning_rate": 0.1}},
    "split": {"method": "time", "column": "timestamp"},
}


def spec_of(base: dict[str, Any], **changes: Any) -> TrainingSpec:
    return TrainingSpec.from_mapping({**base, **changes})
