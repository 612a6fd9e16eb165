"""Suite inference from a reference frame: what is checked, options, refused references."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.core import validation as v
from airflow_mlops.core.errors import DataError, SpecError
from tests.core.validation.support import expectations_of, reference_frame


def test_inferred_suite_records_schema_nulls_domains_ranges_and_rows(suite: Any, reference: pd.DataFrame) -> None:
    (columns,) = expectations_of(suite, "expect_table_columns_to_match_set")
    assert columns["kwargs"]["column_set"] == list(reference.columns)
    assert columns["kwargs"].get("exact_match", True) is True  # GX leaves its default out of the JSON
    assert columns["severity"] == "critical"
    (delay_type,) = expectations_of(suite, "expect_column_values_to_be_in_type_list", "delay")
    assert set(delay_type["kwargs"]["type_list"]) >= {"Int32Dtype", "int64", "float64"}  # kind, not exact dtype
    (ts_type,) = expectations_of(suite, "expect_column_values_to_be_of_type", "ts")
    assert ts_type["kwargs"]["type_"] == "datetime64"
    # No nulls in the reference: none allowed. 5% nulls: a bound of 5% * 1.5 + 1%.
    (distance_nulls,) = expectations_of(suite, "expect_column_values_to_not_be_null", "distance")
    assert "mostly" not in distance_nulls["kwargs"]
    (delay_nulls,) = expectations_of(suite, "expect_column_values_to_not_be_null", "delay")
    rate = float(reference["delay"].isna().mean())
    assert delay_nulls["kwargs"]["mostly"] == pytest.approx(1 - (rate * 1.5 + 0.01), abs=1e-6)
    assert delay_nulls["severity"] == "warning"
    # Domains for low-cardinality text and booleans, not for identifiers.
    assert expectations_of(suite, "expect_column_values_to_be_in_set", "carrier")[0]["kwargs"]["value_set"] == [
        "AA",
        "DL",
        "UA",
    ]
    assert expectations_of(suite, "expect_column_values_to_be_in_set", "flag")[0]["kwargs"]["value_set"] == [
        False,
        True,
    ]
    assert expectations_of(suite, "expect_column_values_to_be_in_set", "tailnum") == []
    # Numeric ranges with a 10% margin, quantiles; a two-valued column gets its rate checked instead.
    (distance_range,) = expectations_of(suite, "expect_column_values_to_be_between", "distance")
    low, high = reference["distance"].min(), reference["distance"].max()
    assert distance_range["kwargs"]["min_value"] == pytest.approx(low - 0.1 * (high - low))
    assert distance_range["kwargs"]["max_value"] == pytest.approx(high + 0.1 * (high - low))
    assert len(expectations_of(suite, "expect_column_quantile_values_to_be_between", "distance")) == 1
    assert expectations_of(suite, "expect_column_quantile_values_to_be_between", "cancelled") == []
    (rate_check,) = expectations_of(suite, "expect_column_mean_to_be_between", "cancelled")
    share = float(reference["cancelled"].mean())
    assert rate_check["kwargs"]["min_value"] == pytest.approx(share * 0.5)
    assert rate_check["kwargs"]["max_value"] == pytest.approx(share * 1.5)
    # Datetimes: type and nulls only. Row count: 400 +/- 50%.
    assert expectations_of(suite, "expect_column_values_to_be_between", "ts") == []
    (rows,) = expectations_of(suite, "expect_table_row_count_to_be_between")
    assert (rows["kwargs"]["min_value"], rows["kwargs"]["max_value"]) == (200, 600)


def test_inferred_suite_is_deterministic_and_round_trips_through_json(suite: Any, reference: pd.DataFrame) -> None:
    again = v.infer_suite(reference, name="test.inferred", source="reference_frame()")
    assert v.dumps(v.suite_to_dict(again)) == v.dumps(v.suite_to_dict(suite))
    loaded = v.suite_from_dict(json.loads(v.dumps(v.suite_to_dict(suite))))
    assert v.suite_to_dict(loaded) == v.suite_to_dict(suite)


def test_inference_options_change_what_is_checked(suite: Any, reference: pd.DataFrame) -> None:
    spec = v.InferenceSpec(
        schema_only_columns=("distance",),
        categorical_columns=("cancelled",),
        row_count_tolerance=None,
        column_order=True,
        type_check="exact",
    )
    custom = v.infer_suite(reference, spec)
    assert expectations_of(custom, "expect_column_values_to_be_between", "distance") == []
    assert expectations_of(custom, "expect_column_values_to_not_be_null", "distance") != []
    assert expectations_of(custom, "expect_column_values_to_be_in_set", "cancelled")[0]["kwargs"]["value_set"] == [
        0,
        1,
    ]
    (rows,) = expectations_of(custom, "expect_table_row_count_to_be_between")
    assert rows["kwargs"] == {"min_value": 1}
    assert expectations_of(custom, "expect_table_columns_to_match_ordered_list") != []
    (delay_type,) = expectations_of(custom, "expect_column_values_to_be_of_type", "delay")
    assert delay_type["kwargs"]["type_"] == "int32"


@pytest.mark.parametrize(
    ("frame", "spec", "error", "match"),
    [
        (reference_frame().iloc[0:0], None, DataError, r"reference frame has no rows"),
        (pd.DataFrame(index=range(3)), None, DataError, r"has no columns"),
        (reference_frame().rename(columns={"delay": "distance"}), None, DataError, r"duplicate column names"),
        (reference_frame(), v.InferenceSpec(schema_only_columns=("nope",)), SpecError, r"names columns \['nope'\]"),
    ],
    ids=["no-rows", "no-columns", "duplicate-names", "unknown-column-in-spec"],
)
def test_bad_references_are_refused(frame: pd.DataFrame, spec: Any, error: type, match: str, suite: Any) -> None:
    with pytest.raises(error, match=match):
        v.infer_suite(frame, spec)
