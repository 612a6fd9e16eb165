"""Type normalisation: declared types come first and convert alike from every source; numbers never become times."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.ingestion.snapshot import ingest
from airflow_mlops.core.storage import StorageRoot
from tests.core.ingestion.support import LOCAL, files_spec, nothing_written


def test_declared_schema_comes_first_with_its_types_and_extras_can_be_dropped(landing: Path, root: StorageRoot) -> None:
    declared = {"arr_delay": "float64", "carrier": "string", "sched_dep_ts": "timestamptz"}
    kept = ingest(files_spec(landing, schema=declared), root=root, pipeline="k", partition="p", filesystem=LOCAL)
    dropped = ingest(
        files_spec(landing, schema=declared, keep_extra_columns="false"),
        root=root,
        pipeline="d",
        partition="p",
        filesystem=LOCAL,
    )
    assert kept is not None and dropped is not None
    assert list(kept.columns[:3]) == ["arr_delay", "carrier", "sched_dep_ts"] and len(kept.columns) == 22
    assert dict(dropped.schema) == {
        "arr_delay": "double",
        "carrier": "string",
        "sched_dep_ts": "timestamp[us, tz=UTC]",
    }
    assert pq.read_table(dropped.uri).column_names == ["arr_delay", "carrier", "sched_dep_ts"]


def test_declared_timestamps_convert_alike_from_csv_and_parquet(landing: Path, root: StorageRoot) -> None:
    declared = {"sched_dep_ts": "timestamptz", "time_hour": "timestamp", "month": "string"}
    snapshots = [
        ingest(
            files_spec(landing, f"*.{fmt}", schema=declared), root=root, pipeline=fmt, partition="p", filesystem=LOCAL
        )
        for fmt in ("parquet", "csv")
    ]
    assert snapshots[0] is not None and snapshots[1] is not None
    assert snapshots[0].sha256 == snapshots[1].sha256
    first = pq.read_table(snapshots[0].uri).slice(0, 1).to_pylist()[0]
    assert first["sched_dep_ts"] == dt.datetime(2013, 1, 1, 5, 15, tzinfo=dt.UTC)  # naive text read as UTC
    assert first["time_hour"] == dt.datetime(2013, 1, 1, 10, 0)  # an instant, kept as its UTC wall time
    assert first["month"] == "1"


@pytest.mark.parametrize("pattern", ["*.parquet", "*.csv"])
def test_numbers_are_not_silently_read_as_epoch_times(landing: Path, root: StorageRoot, pattern: str) -> None:
    spec = files_spec(landing, pattern, schema={"dep_time": "timestamp"})
    with pytest.raises(DataError, match=r"column 'dep_time' of .* holds numbers \(int\d+\); the declared type"):
        ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)
