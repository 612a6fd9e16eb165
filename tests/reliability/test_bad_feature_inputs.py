"""Bad feature transforms and dimension tables, at training and at scoring.

Each is refused with an error that names the feature, join or column and what was expected, and nothing is
written: no MLflow run is opened, the storage root holds exactly what it held before (training), and no
prediction, serving log or temporary appears (scoring). docs/features.md lists the cases.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.scoring import ScoringSpec, score_partition
from airflow_mlops.core.serving import ServingModel
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import TrainingSpec, parquet_bytes, run_training, train_model
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.core.training.support import FLIGHTS
from tests.support.data import FLIGHTS_DIR, flights

ZONE = "America/New_York"
WEATHER: dict[str, Any] = {
    "name": "weather",
    "source": "dims/weather.parquet",
    "keys": {"origin": "origin"},
    "as_of": {"column": "sched_dep_ts", "dimension_column": "time_hour", "tolerance": "2h"},
    "columns": ["temp"],
}
GOOD: dict[str, Any] = {
    "numeric": ["hour", "distance", "temp", "sched_dow"],
    "categorical": ["carrier", "origin"],
    "timezones": {"sched_dep_ts": ZONE},
    "joins": [WEATHER],
    "derived": {"sched_dow": f"day_of_week(sched_dep_ts, '{ZONE}')"},
}


def spec_with(**features: Any) -> TrainingSpec:
    return TrainingSpec.from_mapping({**FLIGHTS, "features": {**GOOD, **features}, "reference_rows": 200})


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    dims = tmp_path / "storage" / "flights" / "dims"
    dims.mkdir(parents=True)
    shutil.copy(FLIGHTS_DIR / "weather.parquet", dims / "weather.parquet")
    return tmp_path


def entries(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home / "storage")) for p in (home / "storage").rglob("*"))


@pytest.mark.parametrize(
    ("features", "error", "message"),
    [
        ({"derived": {"sched_dow": "weekday(sched_dep_ts)"}}, SpecError, r"unknown function\(s\) \['weekday'\]"),
        ({"derived": {"sched_dow": "log(upper(carrier))"}}, SpecError, r"argument 1 of log\(\) must be number"),
    ],
    ids=["unknown function", "type mismatch"],
)
def test_expressions_are_refused_when_the_spec_is_parsed(features: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=rf"Derived feature 'sched_dow'.*{message}"):
        spec_with(**features)


def _without_dimension(home: Path) -> None:
    (home / "storage" / "flights" / "dims" / "weather.parquet").unlink()


def _dimension_without_key(home: Path) -> None:
    path = home / "storage" / "flights" / "dims" / "weather.parquet"
    pq.write_table(pq.read_table(path).drop(["origin"]), path)


@pytest.mark.parametrize(
    ("change", "features", "drop", "error", "message"),
    [
        (None, {"derived": {"sched_dow": "month(distance, 'UTC')"}}, None, SpecError,
         r"Derived feature 'sched_dow': the first argument of month\(\) must be timestamp; it is number"),
        (_without_dimension, {}, None, SourceNotFoundError, r"dimension '.*weather.parquet' does not exist"),
        (_dimension_without_key, {}, None, DataError, r"join 'weather' has no column\(s\) \['origin'\]"),
        (None, {}, "origin", DataError, r"missing feature column\(s\) \['origin'\]"),
        (None, {"timezones": {}}, None, DataError,
         r"Time zones do not match: join 'weather' compares 'sched_dep_ts', a naive timestamp"),
    ],
    ids=["type mismatch with the data", "missing dimension file", "join key absent from the dimension",
         "join key absent from the input", "time zones that do not match"],
)  # fmt: skip
def test_training_refuses_before_anything_is_written(
    home: Path, change: Callable[[Path], None] | None, features: dict[str, Any], drop: str | None, error: type,
    message: str,
) -> None:  # fmt: skip
    if change is not None:
        change(home)
    root = StorageRoot(str(home / "storage"))
    frame = flights(months=[1], sample=2000)
    snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, "p", "snapshot.parquet")
    sha = root.write_bytes(snapshot, parquet_bytes(frame.drop(columns=[drop]) if drop else frame))
    before = entries(home)
    hook = MlflowHook()
    hook.activate()
    experiment = hook.ensure_experiment("flights")
    with pytest.raises(error, match=message):
        run_training(spec_with(**features), root=root, snapshot_uri=snapshot, snapshot_sha256=sha,
                     pipeline="flights", partition="p", experiment_id=experiment)  # fmt: skip
    assert entries(home) == before
    assert hook.get_conn().search_runs([experiment]) == []


def test_scoring_refuses_before_anything_is_written(home: Path) -> None:
    root = StorageRoot(str(home / "storage"))
    training = spec_with()
    from airflow_mlops.core.features import bind

    result = train_model(
        flights(months=[1], sample=3000), training, transformer=bind(training.transforms, root, "flights")
    )
    model = ServingModel.from_bytes(
        result.onnx_bytes, result.spec_artifact(), name="m", version="1", expected_sha256=result.onnx_sha256
    )
    batch = home / "batch.parquet"
    flights(months=[2], sample=500).to_parquet(batch, index=False)
    spec = ScoringSpec(
        pipeline="flights", partition="p", input_uri=str(batch), scored_at=datetime(2013, 3, 1, tzinfo=UTC)
    )
    _without_dimension(home)
    before = entries(home)
    with pytest.raises(SourceNotFoundError, match=r"dimension '.*weather.parquet' does not exist"):
        score_partition(root, spec, model)
    assert entries(home) == before
    shutil.copy(FLIGHTS_DIR / "weather.parquet", home / "storage" / "flights" / "dims" / "weather.parquet")
    before = entries(home)
    pd.read_parquet(batch).drop(columns=["sched_dep_ts"]).to_parquet(batch, index=False)
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['sched_dep_ts'\]"):
        score_partition(root, spec, model)
    assert entries(home) == before
