from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.core.backtest import BatchRule, read_history, split_batches
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError


def hourly(days: int) -> pd.DataFrame:
    times = pd.date_range("2011-01-01", periods=24 * days, freq="h")
    return pd.DataFrame({"timestamp": times[::-1], "y": range(len(times))})  # unordered on purpose


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("monthly", BatchRule(period="monthly")), ("Weekly", BatchRule(period="weekly")), ("rows=50", BatchRule(rows=50))],
    ids=["monthly", "weekly-any-case", "rows"],
)
def test_batch_rule_parses(raw: str, expected: BatchRule) -> None:
    assert BatchRule.parse(raw) == expected


@pytest.mark.parametrize("raw", ["yearly", "rows=0", "rows=x"])
def test_batch_rule_refuses_anything_else(raw: str) -> None:
    with pytest.raises(SpecError, match="monthly, weekly, daily or rows=N"):
        BatchRule.parse(raw)


def test_monthly_batches_from_a_date_leave_earlier_rows_to_the_first_champion() -> None:
    history = split_batches(hourly(120), BatchRule.parse("monthly"), "timestamp", start="2011-03-01")
    assert [b.label for b in history.batches] == ["2011-03", "2011-04"]
    assert len(history.initial) == 24 * (31 + 28)
    assert history.initial["timestamp"].is_monotonic_increasing
    assert history.batches[0].start.startswith("2011-03-01T00") and history.batches[0].end.startswith("2011-03-31T23")
    assert sum(b.rows for b in history.batches) + len(history.initial) == 24 * 120


def test_without_start_the_first_period_trains_and_to_cuts_the_end() -> None:
    history = split_batches(hourly(120), BatchRule.parse("weekly"), "timestamp", end="2011-02-01")
    assert len(history.initial) == 24 * 2  # 2011-01-01 is a Saturday: its week holds two days
    assert history.batches[0].label == "2011-01-03"
    assert history.batches[-1].frame["timestamp"].max() < pd.Timestamp("2011-02-01")


def test_rows_batches_count_rows_after_start() -> None:
    history = split_batches(hourly(10), BatchRule.parse("rows=100"), "timestamp", start="2011-01-05")
    assert len(history.initial) == 24 * 4
    assert [b.rows for b in history.batches] == [100, 44]


def test_a_cut_without_batches_is_refused() -> None:
    with pytest.raises(DataError, match="both must be non-empty"):
        split_batches(hourly(20), BatchRule.parse("monthly"), "timestamp")


def test_a_calendar_rule_needs_a_time_column() -> None:
    with pytest.raises(SpecError, match="needs a time column"):
        split_batches(hourly(20), BatchRule.parse("daily"), None)


def test_read_history_reads_a_folder_in_name_order(tmp_path: Path) -> None:
    frame = hourly(2)
    frame.iloc[:10].to_parquet(tmp_path / "a.parquet")
    frame.iloc[10:].to_csv(tmp_path / "b.csv", index=False)
    assert len(read_history(tmp_path)) == len(frame)
    with pytest.raises(SourceNotFoundError, match="No Parquet or CSV"):
        read_history(tmp_path / "missing.parquet")
