"""DatasetAvailableTrigger: serialize round trip and async runs against real landings."""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from airflow.triggers.base import TriggerEvent

from airflow_mlops.cli import replay
from airflow_mlops.triggers.ingestion import DatasetAvailableTrigger


def trigger(watch: dict[str, Any], deadline: dt.datetime | None = None, **kwargs: Any) -> DatasetAvailableTrigger:
    arguments = {"sql_conn_id": "mlops_sql_default", "aws_conn_id": None, "poke_interval": 0.05, **kwargs}
    return DatasetAvailableTrigger(watch=watch, deadline=deadline.isoformat() if deadline else None, **arguments)


def in_seconds(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)


async def events(trig: DatasetAvailableTrigger) -> list[TriggerEvent]:
    return [event async for event in trig.run()]


def test_serialize_round_trip() -> None:
    original = trigger(
        {"source": "s3", "path": "s3://landing/flights", "pattern": "*.csv", "start_after": "flights_2013-02.csv"},
        deadline=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), aws_conn_id="landing",
    )  # fmt: skip
    classpath, kwargs = original.serialize()
    module, _, name = classpath.rpartition(".")
    rebuilt = getattr(importlib.import_module(module), name)(**json.loads(json.dumps(kwargs)))
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs["deadline"] == "2030-01-01T00:00:00+00:00" and kwargs["aws_conn_id"] == "landing"


def test_waits_without_blocking_the_loop_until_a_month_lands(tmp_path: Path) -> None:
    trig = trigger({"source": "local", "path": str(tmp_path), "pattern": "*.parquet"}, deadline=in_seconds(60))

    async def scenario() -> tuple[list[TriggerEvent], int]:
        ticks = 0

        async def heartbeat() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        async def land_later() -> None:
            await asyncio.sleep(0.4)
            await asyncio.to_thread(replay.replay, [4], str(tmp_path))

        beat = asyncio.create_task(heartbeat())
        landing = asyncio.create_task(land_later())
        found = await asyncio.wait_for(events(trig), timeout=60)
        await landing
        beat.cancel()
        return found, ticks

    found, ticks = asyncio.run(scenario())
    assert len(found) == 1 and found[0].payload["status"] == "available"
    report = found[0].payload["report"]
    assert report["items"] == [str(tmp_path / "flights_2013-04.parquet")] and report["count"] == 1
    assert ticks > 20  # the event loop kept running while the trigger polled


def test_deadline_gives_one_timeout_event_with_the_last_report(tmp_path: Path) -> None:
    replay.replay([1], str(tmp_path))
    watch = {"source": "local", "path": str(tmp_path), "pattern": "*.parquet", "min_count": 2}
    found = asyncio.run(events(trigger(watch, deadline=in_seconds(0.3))))
    assert [e.payload["status"] for e in found] == ["timeout"]
    assert found[0].payload["report"]["count"] == 1 and found[0].payload["report"]["min_count"] == 2


def test_failures_become_one_error_event() -> None:
    found = asyncio.run(events(trigger({"source": "local", "path": "/landing", "min_count": "some"})))
    assert [e.payload for e in found] == [
        {
            "status": "error",
            "error_class": "SpecError",
            "message": "The 'min_count' parameter of WatchSpec must be an integer in [1, 1000000000000]. "
            "Got 'some' instead.",
        }
    ]


def test_sql_rows_past_a_watermark(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    replay.replay([1, 2], postgres_url)
    monkeypatch.setenv("AIRFLOW_CONN_FLIGHTS_DB", postgres_url)
    watch = {"source": "sql", "table": "flights", "watermark_column": "sched_dep_ts", "since": "2013-02-28T23:00:00"}
    found = asyncio.run(events(trigger(watch, deadline=in_seconds(60), sql_conn_id="flights_db")))
    assert found[0].payload["status"] == "available"
    assert found[0].payload["report"]["count"] == 3 and found[0].payload["report"]["watermark"] == "2013-02-28T23:59:00"
    missing = {"source": "sql", "table": "flihgts"}
    found = asyncio.run(events(trigger(missing, sql_conn_id="flights_db")))
    assert found[0].payload["status"] == "error" and found[0].payload["error_class"] == "SourceNotFoundError"
