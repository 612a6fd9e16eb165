"""The data-event probe: files newer than last seen, SQL rows past a watermark, strict reports."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.availability import Availability, WatchSpec, probe
from tests.core.ingestion.support import LOCAL, write_month


def test_probe_files_newer_than_last_seen(tmp_path: Path, flights: pa.Table) -> None:
    for month in (1, 2, 3):
        write_month(flights, month, tmp_path / f"flights_2013-{month:02d}.parquet")
        stamp = dt.datetime(2024, 1, month, tzinfo=dt.UTC).timestamp()
        os.utime(tmp_path / f"flights_2013-{month:02d}.parquet", (stamp, stamp))
    everything = probe(
        WatchSpec.from_mapping({"source": "local", "path": str(tmp_path), "pattern": "*.parquet"}), filesystem=LOCAL
    )
    assert (everything.count, everything.last_item) == (3, "flights_2013-03.parquet")
    assert everything.newest_modified == "2024-01-03T00:00:00+00:00"
    newer = WatchSpec.from_mapping(
        {"source": "local", "path": str(tmp_path), "since": "2024-01-01T12:00:00Z", "min_count": 3}
    )
    report = probe(newer, filesystem=LOCAL)
    assert (report.count, report.ready) == (2, False)
    assert report.items == (str(tmp_path / "flights_2013-02.parquet"), str(tmp_path / "flights_2013-03.parquet"))
    after = WatchSpec.from_mapping({"source": "local", "path": str(tmp_path), "start_after": "flights_2013-02.parquet"})
    assert probe(after, filesystem=LOCAL).items == (str(tmp_path / "flights_2013-03.parquet"),)
    nothing = WatchSpec.from_mapping({"source": "local", "path": str(tmp_path / "not-yet")})
    assert probe(nothing, filesystem=LOCAL).count == 0  # a landing folder that does not exist yet is empty


def test_probe_sql_rows_past_a_watermark(pg: sa.Engine) -> None:
    spec = WatchSpec.from_mapping(
        {"source": "sql", "table": "flights", "watermark_column": "sched_dep_ts", "since": "2013-02-28T20:00:00"}
        | {"min_count": 100}
    )
    report = probe(spec, engine=pg)
    assert (report.count, report.ready, report.watermark) == (79, False, "2013-02-28T23:59:00")
    with pytest.raises(SourceNotFoundError, match=r"SQL table 'flihgts' .* the table does not exist"):
        probe(WatchSpec.from_mapping({"source": "sql", "table": "flihgts"}), engine=pg)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"source": "local", "path": "/x", "since": "last tuesday"},
            r"'since' .* ISO 8601 date-time .* 'last tuesday'",
        ),
        ({"source": "local", "path": "/x", "min_count": 0}, r"'min_count' .* integer in \[1, "),
        ({"source": "sql", "table": "t", "since": 5}, r"'since' compares with 'watermark_column'; set it"),
        ({"source": "sql", "table": "t", "path": "/x"}, r"'path', 'pattern' and 'start_after' apply to file sources"),
        ({"source": "s3", "path": "bucket/x"}, r"needs an 's3://bucket/prefix' path"),
    ],
    ids=["since-not-a-time", "min-count", "since-without-column", "path-for-sql", "s3-path"],
)
def test_bad_watch_specs(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        WatchSpec.from_mapping(mapping)


def test_availability_reports_are_rebuilt_strictly() -> None:
    report = Availability(source="files", count=2, min_count=1, items=("a", "b"), last_item="b")
    assert Availability.from_dict(report.to_dict()) == report
    for broken in (
        {**report.to_dict(), "count": "2"},
        {**report.to_dict(), "ready": False},
        {k: v for k, v in report.to_dict().items() if k != "items"},
        {**report.to_dict(), "extra": 1},
        "available",
    ):
        with pytest.raises(SpecError, match="availability report"):
            Availability.from_dict(broken)
