"""Validation and classification: bad input sorted into schema, empty, error and value skew."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import validation as v
from tests.core.validation.support import SPACED, TEMPERATURE


def test_the_reference_passes_its_own_suite(suite: Any, reference: pd.DataFrame) -> None:
    result = v.validate_frame(reference, suite)
    assert (result.passed, result.severity, result.failed) == (True, "ok", 0), result.failures
    assert result.evaluated == len(suite.expectations)


def _set(column: str, rows: slice, value: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def mutate(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        values = frame[column].astype(object)
        values.iloc[rows] = value
        frame[column] = values.infer_objects() if not isinstance(value, str) else values
        return frame

    return mutate


def _with_nans(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[:120], TEMPERATURE] = np.nan
    return frame


def _with_infinities(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame.index[:3], TEMPERATURE] = [np.inf, -np.inf, np.inf]
    return frame


def _mixed_types(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    values = frame["carrier"].tolist()
    values[:5] = [1, 2, 3, 4, 5]
    frame["carrier"] = pd.Series(values, dtype=object)
    return frame


BAD_INPUT: list[tuple[str, Callable[[pd.DataFrame], pd.DataFrame], str, str, str | None, str]] = [
    # id, mutation, severity, kind of the first matching failure, its column, words in its reason
    ("empty-frame", lambda f: f.iloc[0:0], "error", "empty", None, "the snapshot has no rows"),
    ("all-null-column", lambda f: f.assign(carrier=None), "error", "schema", "carrier", "holds no values"),
    ("nan-in-numeric", _with_nans, "warn", "value", TEMPERATURE, "nulls (30.00%), at most 0.00% allowed"),
    ("inf-in-numeric", _with_infinities, "warn", "value", TEMPERATURE, "3 values (0.75%) outside"),
    ("mixed-type-object-column", _mixed_types, "error", "schema", "carrier", "5 values (1.25%) not of type"),
    ("new-categorical-value", _set("carrier", slice(0, 7), "ZZ"), "warn", "value", "carrier", "outside the known"),
    ("new-value-in-spaced-name", _set(SPACED, slice(0, 2), "gone"), "warn", "value", SPACED, "e.g. ['gone', 'gone']"),
    ("unicode-column-renamed", lambda f: f.rename(columns={TEMPERATURE: "Temperature C"}), "error", "schema", None,
     "missing columns ['Température °C']; unexpected columns ['Temperature C']"),
    ("column-dropped", lambda f: f.drop(columns=["delay"]), "error", "schema", "delay", "column 'delay' is missing"),
    ("column-added", lambda f: f.assign(**{"new col": 1}), "error", "schema", None, "unexpected columns ['new col']"),
    ("numeric-became-text", lambda f: f.assign(distance=f["distance"].astype(str)), "error", "schema", "distance",
     "not of type"),
    ("too-few-rows", lambda f: f.iloc[:150], "warn", "value", None, "150 rows, expected [200, 600]"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "severity", "kind", "column", "words"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_classified(
    suite: Any,
    reference: pd.DataFrame,
    mutate: Callable[[pd.DataFrame], pd.DataFrame],
    severity: str,
    kind: str,
    column: str | None,
    words: str,
) -> None:
    result = v.validate_frame(mutate(reference), suite)
    assert result.severity == severity
    assert result.passed is (severity != "error")
    matches = [f for f in result.failures if f.kind == kind and f.column == column and words in f.reason]
    assert matches, [f.to_dict() for f in result.failures]
    if severity == "warn":
        assert all(not f.blocking for f in result.failures)
    else:
        assert result.failures[0].blocking  # blocking failures are listed first
        assert words in result.failure_message() or kind == "value"
    json.loads(v.dumps(result.to_dict()))  # the receipt is strict JSON


def test_an_empty_snapshot_reports_emptiness_not_every_vacuous_check(suite: Any, reference: pd.DataFrame) -> None:
    result = v.validate_frame(reference.iloc[0:0], suite)
    assert [f.kind for f in result.failures] == ["empty"]
    assert result.counts == {"schema": 0, "empty": 1, "error": 0, "value": 0}
    assert result.failures_omitted > 0  # the vacuous checks are counted as left out, not hidden silently


def test_a_dropped_column_is_reported_once_not_per_expectation(suite: Any, reference: pd.DataFrame) -> None:
    result = v.validate_frame(reference.drop(columns=["delay"]), suite)
    assert [f.reason for f in result.failures if f.column == "delay"] == ["column 'delay' is missing from the data"]
    assert result.counts["schema"] >= 4  # columns set, type, values present, and the column's value checks


def test_a_suite_naming_a_column_the_data_lacks_is_schema_skew(reference: pd.DataFrame, suite: Any) -> None:
    handwritten = v.suite_from_dict(
        {
            "name": "handwritten",
            "expectations": [
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ghost"}},
                {"type": "expect_column_values_to_be_between", "kwargs": {"column": "distance", "min_value": 0}},
            ],
        }
    )
    result = v.validate_frame(reference, handwritten)
    assert result.severity == "error"
    (failure,) = result.failures
    assert (failure.kind, failure.column, failure.observed) == ("schema", "ghost", {"missing_columns": ["ghost"]})
    assert "column 'ghost' is missing from the data" in result.failure_message()


def test_unevaluable_expectations_block_and_meta_overrides_the_kind(reference: pd.DataFrame, suite: Any) -> None:
    handwritten = v.suite_from_dict(
        {
            "name": "handwritten",
            "expectations": [
                # A range on a text column: GX cannot compare, so nothing was checked.
                {"type": "expect_column_quantile_values_to_be_between", "kwargs": {"column": "carrier",
                 "quantile_ranges": {"quantiles": [0.5], "value_ranges": [[0, 1]]}}},
                # A type check the author wants only as a warning.
                {"type": "expect_column_values_to_be_of_type", "kwargs": {"column": "distance", "type_": "float64"},
                 "meta": {"mlops_skew": "value"}},
            ],
        }
    )  # fmt: skip
    result = v.validate_frame(reference, handwritten)
    kinds = {f.expectation_type: f.kind for f in result.failures}
    assert kinds == {
        "expect_column_quantile_values_to_be_between": "error",
        "expect_column_values_to_be_of_type": "value",
    }
    assert result.severity == "error"
    (error,) = [f for f in result.failures if f.kind == "error"]
    assert "could not be evaluated" in error.reason and "exception" in error.observed


def test_the_receipt_is_capped_and_counts_the_rest(suite: Any, reference: pd.DataFrame) -> None:
    frame = reference.assign(distance=-reference["distance"], **{TEMPERATURE: reference[TEMPERATURE] * 100})
    frame[SPACED] = "other"
    result = v.validate_frame(frame, suite, max_failures=2)
    assert len(result.failures) == 2
    assert result.failures_omitted == result.failed - 2
    assert result.to_dict()["failed_expectations_omitted"] == result.failures_omitted
