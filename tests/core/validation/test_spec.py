"""The inference spec: rendered template values coerced, bad settings named (no GX needed)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.core import validation as v
from airflow_mlops.core.errors import SpecError


def test_spec_from_mapping_coerces_rendered_strings() -> None:
    spec = v.InferenceSpec.from_mapping(
        {
            "categorical_max_unique": "20",
            "range_margin": "0.25",
            "expected_rows": "30000",
            "row_count_tolerance": "none",
            "quantiles": "[0.1, 0.9]",
            "schema_only_columns": '["ts"]',
            "column_order": "true",
            "type_check": "exact",
        }
    )
    assert spec.categorical_max_unique == 20 and spec.range_margin == 0.25 and spec.expected_rows == 30000
    assert spec.row_count_tolerance is None and spec.quantiles == (0.1, 0.9) and spec.schema_only_columns == ("ts",)
    assert spec.column_order is True and spec.type_check == "exact"


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"range_margin": "-1"}, r"'range_margin' parameter of InferenceSpec must be a float >= 0\. Got -1\.0"),
        ({"categorical_max_ratio": "1.5"}, r"categorical_max_ratio.*\(0, 1\]"),
        ({"quantiles": "[0.5, 2]"}, r"quantiles.*floats in \[0, 1\]"),
        ({"expected_rows": "2.5"}, r"'expected_rows' inference setting could not be read\. Got '2.5'"),
        ({"type_check": "loose"}, r"type_check.*'kind' or 'exact'. Got 'loose'"),
        ({"range_margn": "0.1"}, r"Unknown inference settings \['range_margn'\]"),
        ({"quantiles": "0.5"}, r"'quantiles' inference setting could not be read"),
        ({"categorical_columns": ["a"], "schema_only_columns": ["a"]}, r"no column also in schema_only_columns"),
    ],
    ids=["negative-margin", "ratio-above-one", "quantile-above-one", "fractional-rows", "unknown-type-check",
         "typo", "scalar-for-list", "contradiction"],
)  # fmt: skip
def test_bad_inference_settings_are_named(mapping: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        v.InferenceSpec.from_mapping(mapping)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(True, True), ("on", True), (" YES ", True), ("1", True), (False, False), ("off", False), ("No", False)],
    ids=["bool", "on", "yes-spaced", "one", "bool-false", "off", "no"],
)
def test_column_order_reads_the_package_wide_flag_words(raw: Any, expected: bool) -> None:
    assert v.InferenceSpec.from_mapping({"column_order": raw}).column_order is expected


@pytest.mark.parametrize(
    ("mapping", "match"),
    [
        ({"column_order": "maybe"}, r"'column_order' inference setting could not be read\. Got 'maybe'"),
        ({"column_order": ""}, r"'column_order' inference setting could not be read"),
        ({"range_margin": "inf"}, r"'range_margin' inference setting could not be read\. Got 'inf'"),
        ({"null_rate_factor": True}, r"'null_rate_factor' inference setting could not be read\. Got True"),
        ({"quantiles": "[0.5, NaN]"}, r"'quantiles' inference setting could not be read"),
    ],
    ids=["flag-word", "empty-flag", "infinite", "bool-for-number", "nan-quantile"],
)
def test_unreadable_settings_are_named(mapping: dict[str, Any], match: str) -> None:
    with pytest.raises(SpecError, match=match):
        v.InferenceSpec.from_mapping(mapping)


def test_counts_accept_integral_numbers_in_any_spelling() -> None:
    spec = v.InferenceSpec.from_mapping({"expected_rows": "3e4", "categorical_max_unique": 20.0})
    assert (spec.expected_rows, spec.categorical_max_unique) == (30000, 20)
    assert isinstance(spec.expected_rows, int) and isinstance(spec.categorical_max_unique, int)
