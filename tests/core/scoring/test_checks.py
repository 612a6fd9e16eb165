"""What the served input held that the model reads without a word, counted per column."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.onnx_model import feed_arrow
from airflow_mlops.core.scoring.checks import _InputCounts
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.model import ServingModel
from tests.support import models
from tests.support.scoring import SCORED_AT, serving


def _model(vocabulary: bool = True) -> ServingModel:
    trained = models.flights_classifier("lightgbm")
    if vocabulary:
        spec = {**trained.spec, "vocabulary": {"carrier": ["AA", "UA"], "origin": ["JFK"], "dest": ["LAX", ""]}}
        trained = dataclasses.replace(trained, spec=spec)
    return serving(trained)


def _batch(**overrides: pa.Array) -> pa.RecordBatch:
    rows = 4
    columns: dict[str, pa.Array] = {c: pa.array(np.arange(rows, dtype=np.float64)) for c in models.FLIGHT_NUMERIC}
    columns.update(
        carrier=pa.array(["AA", "UA", "ZZ", None]).dictionary_encode(),
        origin=pa.array(["JFK", "JFK", "EWR", ""]),
        dest=pa.array(["LAX", "SFO", None, "SFO"]),
    )
    columns.update(overrides)
    return pa.RecordBatch.from_pydict(columns)


def _counts(batch: pa.RecordBatch, model: ServingModel, policy: str = "count") -> _InputCounts:
    spec = ScoringSpec("flights", "x", "/in.parquet", SCORED_AT, invalid_values=policy)  # type: ignore[arg-type]
    schema = pa.schema(
        [pa.field(f.name, f.type.value_type if pa.types.is_dictionary(f.type) else f.type) for f in batch.schema]
    )
    counts = _InputCounts(spec, model, schema)
    counts.update(batch, feed_arrow(batch, model.spec.inputs), first_row=0)
    return counts


def test_numbers_are_split_into_missing_infinite_and_overflowing_per_column() -> None:
    batch = _batch(
        distance=pa.array([np.nan, np.inf, -1e40, None]),
        hour=pa.array(["1e40", "-inf", "3", None]),  # numbers stored as text go through the pandas feed
        minute=pa.array([1, 2, 3, 4], pa.int64()),
    )
    checks = _counts(batch, _model()).to_dict()
    assert checks["missing_values"] == {"distance": 2, "hour": 1}
    assert checks["non_finite_values"] == {
        "distance": {"positive_infinity": 1, "negative_infinity": 0, "float32_overflow": 1},
        "hour": {"positive_infinity": 0, "negative_infinity": 1, "float32_overflow": 1},
    }


def test_refuse_names_the_columns_the_counts_and_the_rows() -> None:
    batch = _batch(distance=pa.array([np.inf, 1.0, 2.0, 3.0]))
    with pytest.raises(DataError, match=r"Rows 0 to 3 .* \{'distance': \{'positive_infinity': 1, "):
        _counts(batch, _model(), policy="refuse")
    missing_only = _batch(distance=pa.array([np.nan, None, 2.0, 3.0]))
    assert _counts(missing_only, _model(), policy="refuse").to_dict()["missing_values"] == {"distance": 2}


def test_unseen_categories_skip_missing_values_and_integer_columns_are_cast() -> None:
    checks = _counts(_batch(), _model()).to_dict()
    # carrier (dictionary): ZZ; origin: EWR ('' is missing); dest: SFO twice (null is missing)
    assert checks["unseen_categories"] == {"carrier": 1, "origin": 1, "dest": 2}
    assert checks["cast_to_string"] == {}
    cast = _counts(_batch(carrier=pa.array([1, 2, None, 4], pa.int64())), _model())
    assert cast.to_dict()["cast_to_string"] == {"carrier": "int64"}
    assert cast.to_dict()["unseen_categories"]["carrier"] == 3
    assert any("'carrier' is int64" in w for w in cast.warnings())
    assert _counts(_batch(), _model(vocabulary=False)).to_dict()["unseen_categories"] is None
