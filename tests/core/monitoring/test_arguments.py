"""Parsing of the monitoring operators' arguments (core.monitoring.arguments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from airflow_mlops.core import monitoring as m
from airflow_mlops.core.errors import SpecError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("36h", timedelta(hours=36)), ("7d", timedelta(days=7)), (90, timedelta(seconds=90)),
     ("1.5w", timedelta(weeks=1.5)), (None, None), ("", None)],
    ids=["hours", "days", "seconds", "weeks", "none", "empty"],
)  # fmt: skip
def test_parse_duration(raw: object, expected: timedelta | None) -> None:
    assert m.parse_duration(raw, "max_model_age") == expected


@pytest.mark.parametrize("raw", ["soon", "-3d", 0, True, "3y"], ids=["word", "negative", "zero", "bool", "unit"])
def test_parse_duration_names_the_parameter(raw: object) -> None:
    with pytest.raises(SpecError, match="'max_model_age'"):
        m.parse_duration(raw, "max_model_age")


def test_parse_timestamp_reads_iso_epoch_and_naive_as_utc() -> None:
    assert m.parse_timestamp("2013-05-01T00:00:00Z", "t") == datetime(2013, 5, 1, tzinfo=UTC)
    assert m.parse_timestamp("2013-05-01 00:00:00", "t") == datetime(2013, 5, 1, tzinfo=UTC)
    assert m.parse_timestamp(0, "t") == datetime(1970, 1, 1, tzinfo=UTC)
    with pytest.raises(SpecError, match="'data_timestamp'"):
        m.parse_timestamp("last tuesday", "data_timestamp")
