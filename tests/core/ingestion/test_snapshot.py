"""Snapshots on real data: one normalised, byte-reproducible Parquet file per partition, with its receipt."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.ingestion.snapshot import ingest, partition_key
from airflow_mlops.core.storage import StorageRoot
from tests.core.ingestion.support import LOCAL, MONTH_1, MONTH_2, files_spec


# -- files: the good path ----------------------------------------------------------------------
def test_parquet_landing_becomes_one_normalised_snapshot(landing: Path, root: StorageRoot) -> None:
    spec = files_spec(landing, watermark_column="sched_dep_ts", chunk_rows=20_000)
    receipt = ingest(spec, root=root, pipeline="flights", partition="2013-02", filesystem=LOCAL)

    assert receipt is not None
    assert receipt.uri == f"{root.uri}/flights/snapshots/2013-02/data.parquet"
    assert receipt.rows == MONTH_1 + MONTH_2
    assert receipt.source_watermark == "2013-02-28T23:59:00"
    schema = dict(receipt.schema)
    assert schema["sched_dep_ts"] == "timestamp[us]"
    assert schema["time_hour"] == "timestamp[us, tz=UTC]"
    assert schema["cancelled"] == schema["dep_time"] == "int64"  # int8/int32 in the source
    assert schema["carrier"] == "string"
    table = pq.read_table(receipt.uri)
    assert table.num_rows == receipt.rows and table.column_names == list(receipt.columns)
    metadata = pq.ParquetFile(receipt.uri).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [20_000, 20_000, 11_955]
    assert root.sha256(receipt.uri) == receipt.sha256
    assert json.loads(root.read_bytes(receipt.uri.replace("data.parquet", "receipt.json"))) == receipt.to_dict()


def test_rerun_of_a_partition_writes_identical_bytes(landing: Path, root: StorageRoot) -> None:
    spec = files_spec(landing, chunk_rows=30_000)
    first = ingest(spec, root=root, pipeline="flights", partition="p", filesystem=LOCAL)
    assert first is not None
    before = Path(first.uri).read_bytes()
    second = ingest(spec, root=root, pipeline="flights", partition="p", filesystem=LOCAL)
    assert second == first
    assert Path(first.uri).read_bytes() == before
    assert sorted(p.name for p in Path(first.uri).parent.iterdir()) == ["data.parquet", "receipt.json"]


def test_csv_and_parquet_landings_of_the_same_rows_give_the_same_snapshot(landing: Path, root: StorageRoot) -> None:
    from_parquet = ingest(files_spec(landing, "*.parquet"), root=root, pipeline="a", partition="p", filesystem=LOCAL)
    from_csv = ingest(files_spec(landing, "*.csv"), root=root, pipeline="b", partition="p", filesystem=LOCAL)
    assert from_parquet is not None and from_csv is not None
    assert from_csv.schema_fingerprint == from_parquet.schema_fingerprint
    assert from_csv.sha256 == from_parquet.sha256


def test_row_groups_do_not_depend_on_how_the_source_is_split(
    tmp_path: Path, flights: pa.Table, root: StorageRoot
) -> None:
    rows = pa.concat_tables([replay.month_rows(flights, 1), replay.month_rows(flights, 2)])
    (tmp_path / "one").mkdir()
    pq.write_table(rows, tmp_path / "one" / "all.parquet", row_group_size=7_000)
    (tmp_path / "two").mkdir()
    pq.write_table(rows.slice(0, 33_333), tmp_path / "two" / "a.parquet", row_group_size=5_000)
    pq.write_table(rows.slice(33_333), tmp_path / "two" / "b.parquet")
    one = ingest(
        files_spec(tmp_path / "one", chunk_rows=16_384), root=root, pipeline="x", partition="1", filesystem=LOCAL
    )
    two = ingest(
        files_spec(tmp_path / "two", chunk_rows=16_384), root=root, pipeline="x", partition="2", filesystem=LOCAL
    )
    assert one is not None and two is not None and one.sha256 == two.sha256


# -- partitions --------------------------------------------------------------------------------
def test_partition_keys() -> None:
    assert partition_key(dt.datetime(2013, 4, 1, tzinfo=dt.UTC)) == "2013-04-01T00:00:00+00:00"
    assert partition_key(dt.datetime(2013, 4, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2013-04-01T00:00:00+00:00"
    )
    assert partition_key(dt.date(2013, 4, 1)) == "2013-04-01"
    with pytest.raises(SpecError, match=r"partition key .* Got '../etc'"):
        partition_key("../etc")
