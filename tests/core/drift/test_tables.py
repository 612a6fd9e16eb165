"""Drift inputs: Parquet columns read one at a time, sampled by row group."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from airflow_mlops.core.drift import tables as drift
from tests.support import drift as flights_drift
from tests.support.data import flights


def test_parquet_columns_are_read_one_at_a_time_and_sampled_by_row_group(tmp_path: Path) -> None:
    frame = flights_drift.with_weather(flights([5], sample=5000))
    path = tmp_path / "batch.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=700)
    table = drift.open_table(str(path))
    rows = drift.sample_rows(table.num_rows, 1234, seed=3)
    assert rows is not None and len(rows) == 1234
    for column in ("temp", "dest", "sched_dep_ts"):
        expected = frame[column].iloc[rows].reset_index(drop=True)
        pd.testing.assert_series_equal(table.column(column, rows).reset_index(drop=True), expected, check_names=False)
    assert table.non_null_count("temp") == int(frame["temp"].notna().sum())
