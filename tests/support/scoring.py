"""Shared helpers of the scoring and serving tests: a serving model from a trained one, a scoring spec,
and the February flights partition."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.model import ServingModel
from airflow_mlops.core.storage import StorageRoot
from tests.support import models

SCORED_AT = datetime(2013, 3, 1, tzinfo=UTC)
PASSTHROUGH = ("flight", "tailnum", "sched_dep_ts")
REPO = Path(__file__).resolve().parents[2]


def serving(trained: models.TrainedModel, version: str = "1", **kwargs: Any) -> ServingModel:
    return ServingModel.from_bytes(
        trained.onnx_bytes, trained.spec, name="flights", version=version, expected_sha256=trained.sha256, **kwargs
    )


def spec_for(input_uri: Path | str, partition: str = "2013-02", **kwargs: Any) -> ScoringSpec:
    values: dict[str, Any] = {
        "pipeline": "flights",
        "partition": partition,
        "input_uri": str(input_uri),
        "scored_at": SCORED_AT,
        "passthrough_columns": PASSTHROUGH,
        "chunk_rows": 700,
    }
    values.update(kwargs)
    return ScoringSpec(**values)


@pytest.fixture(scope="module")
def february() -> pd.DataFrame:
    return models.flights_frame((2,), 3000)


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(str(tmp_path / "storage"))


@pytest.fixture
def february_file(tmp_path: Path, february: pd.DataFrame) -> Path:
    path = tmp_path / "in" / "february.parquet"
    path.parent.mkdir()
    february.to_parquet(path, index=False)
    return path
