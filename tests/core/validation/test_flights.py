"""Real data: a suite inferred from January-March 2013 flights, checked against every later month.

The seasons move the delay distributions (summer storms, the December holidays), the timetable changes
and carriers renumber flights: all of that is value skew and must warn, never stop. Renaming or dropping a
column is schema skew and must stop.

``python -m tests.core.validation.test_flights`` prints the per-month table of docs/validation.md from
the full data; the tests use seeded samples to stay fast.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from airflow_mlops.core import validation as v
from tests.support.data import flights

# Time keys move with every batch by design: check their presence, type and nulls, not their values.
TIME_KEYS = ("sched_dep_ts", "year", "month", "day", "time_hour")
LATER_MONTHS = tuple(range(4, 13))
SAMPLE = 6000  # flights per month in the tests (a month has 25-30 thousand)


def build_suite(sample: int | None) -> Any:
    reference = flights((1, 2, 3), sample=None if sample is None else 3 * sample)
    spec = v.InferenceSpec(expected_rows=len(reference) // 3, schema_only_columns=TIME_KEYS)
    return v.infer_suite(reference, spec, name="flights.jan-mar", source="flights 2013-01..03")


@pytest.fixture(scope="module")
def suite() -> Any:
    return build_suite(SAMPLE)


@pytest.fixture(scope="module")
def monthly(suite: Any) -> dict[int, v.ValidationResult]:
    return {month: v.validate_frame(flights([month], sample=SAMPLE), suite) for month in LATER_MONTHS}


def test_seasonal_shifts_are_value_skew_not_schema_skew(monthly: dict[int, v.ValidationResult]) -> None:
    for month, result in monthly.items():
        assert result.passed, (month, result.failure_message())
        assert result.counts["schema"] == result.counts["error"] == result.counts["empty"] == 0, month
        assert result.severity in {"ok", "warn"}
    # The summer delays are the textbook shift: the upper quantiles of departure delay move out of range.
    for month in (6, 7):
        fired = {(f.column, f.expectation_type) for f in monthly[month].failures}
        assert ("dep_delay", "expect_column_quantile_values_to_be_between") in fired, (month, fired)
    assert sum(r.severity == "warn" for r in monthly.values()) >= 5


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"rename": {"dep_delay": "departure_delay"}}, "missing columns ['dep_delay']"),
        ({"drop": ["carrier"]}, "column 'carrier' is missing from the data"),
    ],
    ids=["renamed", "dropped"],
)
def test_renaming_or_dropping_a_column_stops(suite: Any, change: dict[str, Any], words: str) -> None:
    month = flights([7], sample=SAMPLE)
    changed = month.rename(columns=change["rename"]) if "rename" in change else month.drop(columns=change["drop"])
    result = v.validate_frame(changed, suite)
    assert (result.passed, result.severity) == (False, "error")
    assert words in result.failure_message()


def _fired(failure: v.FailedExpectation) -> str:
    check = failure.expectation_type.removeprefix("expect_column_").removeprefix("expect_table_")
    detail = failure.reason.split(" (expected")[0]
    detail = detail.split(": ", 1)[1] if detail.startswith("column '") else detail
    return f"`{failure.column}` {check.removesuffix('_to_be_between').removesuffix('_values')}: {detail}"


def markdown_table(results: dict[int, v.ValidationResult]) -> str:
    lines = ["| month | rows | severity | what fired (all value skew) |", "|---|---|---|---|"]
    for month, result in results.items():
        fired = "<br>".join(_fired(f) for f in result.failures)
        lines.append(f"| 2013-{month:02d} | {result.rows:,} | {result.severity} | {fired or '-'} |")
    return "\n".join(lines)


def main() -> None:
    suite = build_suite(None)
    results = {month: v.validate_frame(flights([month]), suite, max_failures=100) for month in LATER_MONTHS}
    print(f"suite: {len(suite.expectations)} expectations inferred from 2013-01..03 (time keys schema-only)")
    print(markdown_table(results))
    blocking = {m: r.counts for m, r in results.items() if not r.passed}
    print("blocking:", blocking or "none")
    sys.exit(1 if blocking else 0)


if __name__ == "__main__":
    main()
