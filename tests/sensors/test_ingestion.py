"""DatasetAvailableSensor: poke, reschedule-free timeout, deferral and strict resumption, on real landings."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk import PokeReturnValue
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import MlopsError, SourceNotFoundError, SpecError
from airflow_mlops.sensors.ingestion import DatasetAvailableSensor
from airflow_mlops.triggers.ingestion import DatasetAvailableTrigger


def sensor(**kwargs: Any) -> DatasetAvailableSensor:
    return DatasetAvailableSensor(task_id="wait", poke_interval=0.05, timeout=0.3, **kwargs)


def test_poke_sees_a_month_land(tmp_path: Path) -> None:
    task = sensor(source="local", path=str(tmp_path), pattern="flights_2013-*.parquet", min_count=2)
    first = task.poke({})
    assert isinstance(first, PokeReturnValue) and not first.is_done
    assert first.xcom_value["count"] == 0
    replay.replay([1, 2], str(tmp_path))
    second = task.poke({})
    assert second.is_done
    assert second.xcom_value["items"] == [
        str(tmp_path / "flights_2013-01.parquet"),
        str(tmp_path / "flights_2013-02.parquet"),
    ]
    assert second.xcom_value["last_item"] == "flights_2013-02.parquet"


def test_start_after_waits_for_data_newer_than_last_seen(tmp_path: Path) -> None:
    replay.replay([1, 2], str(tmp_path))
    task = sensor(source="local", path=str(tmp_path), pattern="*.parquet", start_after="flights_2013-02.parquet")
    assert not task.poke({}).is_done
    replay.replay([3], str(tmp_path))
    done = task.poke({})
    assert done.is_done and done.xcom_value["items"] == [str(tmp_path / "flights_2013-03.parquet")]


@pytest.mark.parametrize("on_timeout", ["fail", "skip"])
def test_timeout_fails_or_skips_with_what_was_awaited(tmp_path: Path, on_timeout: str) -> None:
    task = sensor(source="local", path=str(tmp_path), pattern="*.csv", min_count=3, on_timeout=on_timeout)
    error = AirflowSensorTimeout if on_timeout == "fail" else AirflowSkipException
    expected = rf"Timed out after 0.3 s waiting for files '{tmp_path}/\*.csv': found 0, expected at least 3"
    with pytest.raises(error, match=expected):
        task.execute({})


def test_deferrable_returns_at_once_when_data_is_there(tmp_path: Path) -> None:
    replay.replay([1], str(tmp_path))
    task = sensor(source="local", path=str(tmp_path), pattern="*.parquet", deferrable=True)
    assert task.execute({})["count"] == 1


def test_deferrable_hands_a_json_trigger_to_the_triggerer(tmp_path: Path) -> None:
    task = sensor(
        source="local", path=str(tmp_path), pattern="*.parquet", since=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        deferrable=True,
    )  # fmt: skip
    task.timeout = 3600
    before = dt.datetime.now(dt.UTC)
    with pytest.raises(TaskDeferred) as deferred:
        task.execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, DatasetAvailableTrigger) and deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["watch"] == {
        "source": "local", "path": str(tmp_path), "pattern": "*.parquet", "since": "2024-01-01T00:00:00+00:00",
        "min_count": 1,
    }  # fmt: skip
    deadline = dt.datetime.fromisoformat(kwargs["deadline"])
    assert before + dt.timedelta(seconds=3599) <= deadline <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3600)
    assert deferred.value.timeout is not None and deferred.value.timeout > dt.timedelta(seconds=3600)


REPORT = {
    "source": "files '/landing/*.parquet'", "count": 1, "min_count": 1, "ready": True, "items": ["/landing/a.parquet"],
    "last_item": "a.parquet", "newest_modified": "2024-01-01T00:00:00+00:00", "watermark": None,
}  # fmt: skip
WAITING = {**REPORT, "count": 0, "ready": False, "items": [], "last_item": None, "newest_modified": None}


def test_execute_complete_returns_the_report_of_an_available_event() -> None:
    assert (
        sensor(source="local", path="/landing").execute_complete({}, {"status": "available", "report": REPORT})
        == REPORT
    )


@pytest.mark.parametrize(
    ("on_timeout", "error"), [("fail", AirflowSensorTimeout), ("skip", AirflowSkipException)], ids=["fail", "skip"]
)
def test_execute_complete_timeout(on_timeout: str, error: type[Exception]) -> None:
    task = sensor(source="local", path="/landing", on_timeout=on_timeout)
    with pytest.raises(error, match=r"waiting for files '/landing/\*.parquet': found 0, expected at least 1"):
        task.execute_complete({}, {"status": "timeout", "report": WAITING})


def test_execute_complete_raises_the_error_class_of_the_trigger() -> None:
    event = {"status": "error", "error_class": "SourceNotFoundError", "message": "The S3 bucket 'b' does not exist."}
    with pytest.raises(SourceNotFoundError, match=r"wait: waiting for data failed: The S3 bucket 'b' does not exist"):
        sensor(source="local", path="/landing").execute_complete({}, event)
    event = {"status": "error", "error_class": "KeyboardInterrupt", "message": "odd"}
    with pytest.raises(MlopsError, match="waiting for data failed: odd") as raised:
        sensor(source="local", path="/landing").execute_complete({}, event)
    assert type(raised.value) is MlopsError  # never instantiate an arbitrary class named by an event


@pytest.mark.parametrize(
    "event",
    [
        None,
        "available",
        {"status": "done", "report": REPORT},
        {"status": "available"},
        {"status": "available", "report": WAITING},
        {"status": "timeout", "report": REPORT},
        {"status": "available", "report": {**REPORT, "count": "1"}},
        {"status": "available", "report": REPORT, "extra": 1},
        {"status": "error", "message": "no class"},
    ],
    ids=["none", "string", "unknown-status", "no-report", "available-not-ready", "timeout-but-ready", "bad-count",
         "extra-key", "error-without-class"],
)  # fmt: skip
def test_execute_complete_rejects_malformed_events(event: Any) -> None:
    with pytest.raises(MlopsError, match=r"wait: (unexpected trigger event|the trigger sent a malformed report)"):
        sensor(source="local", path="/landing").execute_complete({}, event)


def test_sql_rows_past_a_watermark(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    replay.replay([1], postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_DB", postgres_url)
    task = sensor(
        source="sql", sql_conn_id="flights_db", table="flights", watermark_column="sched_dep_ts",
        since="2013-01-31T23:59:00", min_count=1000,
    )  # fmt: skip
    waiting = task.poke({})
    assert not waiting.is_done and waiting.xcom_value["watermark"] is None  # nothing past the watermark yet
    replay.replay([2], postgres_url)
    done = task.poke({})
    assert done.is_done and done.xcom_value["count"] == 24951
    assert done.xcom_value["watermark"] == "2013-02-28T23:59:00"


def test_sql_query_template_values_are_bound(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    replay.replay([1], postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_DB", postgres_url)
    task = sensor(
        source="sql", sql_conn_id="flights_db", query="SELECT * FROM flights WHERE day = {{ day }} AND origin = :o",
        query_params={"o": "EWR"},
    )  # fmt: skip
    report = task.poke({"day": 2}).xcom_value
    assert report["count"] == 350 and report["source"] == "SQL query"


def test_s3_objects_through_the_aws_connection(
    monkeypatch: pytest.MonkeyPatch,
    s3_server,  # type: ignore[no-untyped-def]
    s3_bucket: str,
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LANDING", s3_server.airflow_conn_uri())
    task = sensor(source="s3", path=f"s3://{s3_bucket}/landing", pattern="*.csv", aws_conn_id="landing")
    assert not task.poke({}).is_done
    s3_server.client().put_object(Bucket=s3_bucket, Key="landing/flights_2013-01.csv", Body=b"month\n1\n")
    s3_server.client().put_object(Bucket=s3_bucket, Key="landing/.tmp/upload-in-progress.csv", Body=b"month\n")
    done = task.poke({})
    assert done.is_done and done.xcom_value["items"] == [f"s3://{s3_bucket}/landing/flights_2013-01.csv"]
    missing = sensor(source="s3", path="s3://no-such-bucket-here/landing", aws_conn_id="landing")
    with pytest.raises(SourceNotFoundError, match=r"S3 bucket 'no-such-bucket-here'"):
        missing.poke({})


def test_bad_arguments_are_errors_not_waits(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"'on_timeout' parameter of 'wait' must be 'fail' or 'skip'. Got 'later'"):
        sensor(source="local", path=str(tmp_path), on_timeout="later").poke({})
    with pytest.raises(SpecError, match=r"'since' .* ISO 8601 date-time for file sources. Got 'yesterday'"):
        sensor(source="local", path=str(tmp_path), since="yesterday").poke({})


def _snapshot(storage: Path, **source: Any) -> dict[str, Any]:
    """A training snapshot of pipeline ``trips`` taken now, as continuous_training's ingest task takes it."""
    import pendulum
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    start = pendulum.datetime(2013, 2, 1, tz="UTC")
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="trips", watermark_column="sched_dep_ts", storage_root=str(storage), **source
    )
    return task.execute({"data_interval_start": start, "logical_date": start, "outlet_events": OutletEventAccessors(),
                         "dag_run": None})  # fmt: skip


def test_new_pipeline_data_means_files_landed_after_its_latest_snapshot(tmp_path: Path) -> None:
    from airflow_mlops.sensors.ingestion import PipelineNewDataSensor

    landing, storage = tmp_path / "landing", tmp_path / "storage"
    replay.replay([1], str(landing))

    def watch() -> PipelineNewDataSensor:
        return PipelineNewDataSensor(
            task_id="wait", pipeline="trips", storage_root=str(storage), source="local", path=str(landing),
            pattern="flights_2013-*.parquet", min_count=1, poke_interval=0.05, timeout=0.3,
        )  # fmt: skip

    assert watch().poke({}).is_done  # no snapshot yet: what has landed is new
    _snapshot(storage, source="local", path=str(landing), pattern="flights_2013-*.parquet")
    waiting = watch().poke({})
    assert not waiting.is_done and waiting.xcom_value["count"] == 0  # January is in the snapshot
    replay.replay([2], str(landing))
    landed = watch().poke({})
    assert landed.is_done and landed.xcom_value["items"] == [str(landing / "flights_2013-02.parquet")]


def test_new_pipeline_data_means_sql_rows_past_its_latest_snapshots_watermark(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str, tmp_path: Path
) -> None:
    from airflow_mlops.sensors.ingestion import PipelineNewDataSensor

    replay.replay([1], postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_TRIPS_DB", postgres_url)
    source = {"source": "sql", "sql_conn_id": "trips_db", "table": "flights"}
    receipt = _snapshot(tmp_path, **source)
    assert receipt["source_watermark"] == "2013-01-31T23:59:00"
    watch = PipelineNewDataSensor(
        task_id="wait", pipeline="trips", storage_root=str(tmp_path), watermark_column="sched_dep_ts",
        min_count=20_000, poke_interval=0.05, timeout=0.3, **source,
    )  # fmt: skip
    assert not watch.poke({}).is_done
    assert watch.since == "2013-01-31T23:59:00"  # read from the snapshot's receipt
    replay.replay([2], postgres_url)
    done = watch.poke({})
    assert done.is_done and done.xcom_value["count"] == 24951
