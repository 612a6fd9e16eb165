"""IngestDatasetOperator.execute() with a minimal context, on real flights in files, S3 and PostgreSQL."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pendulum
import pyarrow.parquet as pq
import pytest
from airflow.sdk import DAG, Asset
from airflow.sdk.exceptions import AirflowSkipException
from airflow.sdk.execution_time.context import OutletEventAccessors

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import SpecError
from airflow_mlops.operators.ingestion import IngestDatasetOperator, dataset_asset

FEBRUARY = pendulum.datetime(2013, 2, 1, tz="UTC")
MONTH_1, MONTH_2 = 27004, 24951


def context(start: pendulum.DateTime | None = FEBRUARY) -> dict[str, Any]:
    end = start.add(months=1) if start is not None else None
    return {
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": start,
        "ds": start.strftime("%Y-%m-%d") if start else None,
        "outlet_events": OutletEventAccessors(),
        "dag_run": None,
    }


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("landing")
    replay.replay([1, 2], str(folder))
    return folder


def test_local_files_into_the_run_partition_with_the_asset_event(landing: Path, tmp_path: Path) -> None:
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=str(landing), pattern="flights_2013-*.parquet",
        watermark_column="sched_dep_ts", storage_root=str(tmp_path / "storage"),
    )  # fmt: skip
    ctx = context()
    receipt = task.execute(ctx)

    assert receipt["uri"] == f"{tmp_path}/storage/flights/snapshots/2013-02-01T00:00:00+00:00/data.parquet"
    assert receipt["rows"] == MONTH_1 + MONTH_2 and receipt["source_watermark"] == "2013-02-28T23:59:00"
    assert json.loads(json.dumps(receipt)) == receipt  # XCom-safe
    asset = Asset(uri="x-mlops://flights/dataset", name="x-mlops://flights/dataset")
    assert ctx["outlet_events"][asset].extra == receipt
    assert dataset_asset("flights") in task.outlets
    assert pq.read_table(receipt["uri"]).num_rows == receipt["rows"]


def test_templated_sql_is_bound_not_formatted(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, tmp_path: Path
) -> None:
    replay.replay([1, 2], postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_DB", postgres_url)
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="sql", sql_conn_id="flights_db",
        query="SELECT * FROM flights WHERE sched_dep_ts >= {{ data_interval_start }} "
              "AND sched_dep_ts < {{ data_interval_end }} AND origin = :origin",
        query_params={"origin": "JFK"}, order_by=["sched_dep_ts", "flight"], watermark_column="sched_dep_ts",
        storage_root=str(tmp_path / "storage"),
    )  # fmt: skip
    receipt = task.execute(context())
    table = pq.read_table(receipt["uri"])
    assert receipt["rows"] == table.num_rows == 8_421
    assert set(table["month"].to_pylist()) == {2} and set(table["origin"].to_pylist()) == {"JFK"}
    assert receipt["source"].endswith("/" + postgres_url.rsplit("/", 1)[1])  # names the database, not a password


def test_sql_file_from_the_dag_template_path(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, tmp_path: Path
) -> None:
    replay.replay([1], postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_DB", postgres_url)
    (tmp_path / "sql").mkdir()
    (tmp_path / "sql" / "day.sql").write_text("SELECT * FROM flights WHERE day = {{ params.day }} ORDER BY 1, flight")
    with DAG("ingest_sql_file", schedule=None, template_searchpath=[str(tmp_path / "sql")], params={"day": 3}):
        task = IngestDatasetOperator(
            task_id="ingest", pipeline="flights", source="sql", sql_conn_id="flights_db", query="day.sql",
            storage_root=str(tmp_path / "storage"),
        )  # fmt: skip
    receipt = task.execute({**context(), "params": {"day": 3}})
    assert receipt["rows"] == 914


def test_s3_source_and_s3_storage_root_through_aws_connections(
    monkeypatch: pytest.MonkeyPatch,
    s3_server,  # type: ignore[no-untyped-def]
    s3_bucket: str,
    landing: Path,
) -> None:
    client = s3_server.client()
    client.upload_file(str(landing / "flights_2013-01.parquet"), s3_bucket, "landing/flights_2013-01.parquet")
    monkeypatch.setenv("AIRFLOW_CONN_LANDING", s3_server.airflow_conn_uri())
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="s3", path=f"s3://{s3_bucket}/landing", pattern="*.parquet",
        aws_conn_id="landing", storage_root=f"s3://{s3_bucket}/mlops", storage_conn_id="landing", partition="2013-01",
    )  # fmt: skip
    receipt = task.execute(context())
    assert receipt["uri"] == f"s3://{s3_bucket}/mlops/flights/snapshots/2013-01/data.parquet"
    listed = client.list_objects_v2(Bucket=s3_bucket, Prefix="mlops/")["Contents"]
    keys = sorted(o["Key"] for o in listed if "/.tmp/" not in o["Key"])
    assert keys == ["mlops/flights/snapshots/2013-01/data.parquet", "mlops/flights/snapshots/2013-01/receipt.json"]
    assert receipt["rows"] == MONTH_1
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & set(os.environ)


def test_empty_with_skip_skips_and_writes_nothing(landing: Path, tmp_path: Path) -> None:
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=str(landing), pattern="flights_2013-*.parquet",
        schema={"month": "int64"}, keep_extra_columns=False, on_empty="skip", storage_root=str(tmp_path / "s"),
    )  # fmt: skip
    empty = tmp_path / "empty"
    empty.mkdir()
    pq.write_table(pq.read_table(landing / "flights_2013-01.parquet").slice(0, 0), empty / "flights_2013-03.parquet")
    task.path = str(empty)
    ctx = context()
    with pytest.raises(AirflowSkipException, match=r"returned no rows for partition '2013-02-01T00:00:00\+00:00'"):
        task.execute(ctx)
    assert not (tmp_path / "s").exists()
    assert len(ctx["outlet_events"]) == 0


def test_bad_arguments_fail_before_anything_is_written(landing: Path, tmp_path: Path) -> None:
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=str(landing), pattern="*.parquet",
        chunk_rows="lots", storage_root=str(tmp_path / "s"),
    )  # fmt: skip
    with pytest.raises(SpecError, match=r"'chunk_rows' parameter of IngestSpec must be an integer .* Got 'lots'"):
        task.execute(context())
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=str(landing), storage_root=str(tmp_path / "s"),
        pattern="*.parquet",
    )  # fmt: skip
    with pytest.raises(SpecError, match=r"no data interval, logical date or run_after .* pass 'partition'"):
        task.execute(context(start=None))
    assert not (tmp_path / "s").exists()


def test_quoted_template_values_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="sql", query="SELECT * FROM flights WHERE day = '{{ ds }}'",
        storage_root=str(tmp_path / "s"),
    )  # fmt: skip
    with pytest.raises(SpecError, match=r"inside a quoted SQL literal"):
        task.execute(context())


def test_declared_outlets_are_kept_and_the_constructor_touches_nothing(tmp_path: Path) -> None:
    other = Asset(uri="s3://bucket/audit", name="audit")
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=str(tmp_path / "does-not-exist"), outlets=[other],
    )  # fmt: skip
    assert task.outlets == [other, dataset_asset("flights")]
    assert dataset_asset("flights").uri == "x-mlops://flights/dataset"
