"""Trigger that waits in the triggerer until new data has landed: files, S3 objects or SQL rows."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

TRIGGER_PATH = "airflow_mlops.triggers.ingestion.DatasetAvailableTrigger"


class DatasetAvailableTrigger(BaseTrigger):
    """Poll a source until enough new data has landed, or until the deadline passes.

    Each poll (listing objects, or one ``count(*)`` query) runs in a worker thread through
    :func:`asyncio.to_thread`, so the triggerer's event loop never blocks; between polls it sleeps with
    :func:`asyncio.sleep`. It yields exactly one event:

    - ``{"status": "available", "report": {...}}`` when at least ``min_count`` objects/rows are there;
    - ``{"status": "timeout", "report": {...}}`` when ``deadline`` passes first (the last report);
    - ``{"status": "error", "error_class": "...", "message": "..."}`` when a poll fails.

    :param watch: the :class:`~airflow_mlops.core.ingestion.availability.WatchSpec` as a JSON-able mapping.
    :param sql_conn_id: SQL connection, for ``sql`` sources.
    :param aws_conn_id: AWS connection, for ``s3`` sources.
    :param poke_interval: seconds between polls.
    :param deadline: ISO 8601 instant after which the trigger gives up; None waits forever.
    """

    def __init__(
        self,
        *,
        watch: dict[str, Any],
        sql_conn_id: str,
        aws_conn_id: str | None,
        poke_interval: float,
        deadline: str | None,
    ) -> None:
        super().__init__()
        self.watch = watch
        self.sql_conn_id = sql_conn_id
        self.aws_conn_id = aws_conn_id
        self.poke_interval = poke_interval
        self.deadline = deadline

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            TRIGGER_PATH,
            {
                "watch": self.watch,
                "sql_conn_id": self.sql_conn_id,
                "aws_conn_id": self.aws_conn_id,
                "poke_interval": self.poke_interval,
                "deadline": self.deadline,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_mlops.core.ingestion import WatchSpec, probe
        from airflow_mlops.hooks.ingestion import source_handles

        try:
            spec = WatchSpec.from_mapping(self.watch)
            deadline = dt.datetime.fromisoformat(self.deadline) if self.deadline else None
            if deadline is not None and deadline.tzinfo is None:
                deadline = deadline.replace(tzinfo=dt.UTC)
            engine, filesystem = await asyncio.to_thread(
                source_handles, spec.source, spec.path, sql_conn_id=self.sql_conn_id, aws_conn_id=self.aws_conn_id
            )
            while True:
                report = await asyncio.to_thread(probe, spec, engine=engine, filesystem=filesystem)
                if report.ready:
                    yield TriggerEvent({"status": "available", "report": report.to_dict()})
                    return
                now = dt.datetime.now(dt.UTC)
                if deadline is not None and now >= deadline:
                    yield TriggerEvent({"status": "timeout", "report": report.to_dict()})
                    return
                self.log.info("%s: %s of %s needed; next look in %ss.", report.source, report.count,
                              report.min_count, self.poke_interval)  # fmt: skip
                pause = float(self.poke_interval)
                if deadline is not None:
                    pause = min(pause, max((deadline - now).total_seconds(), 0.0))
                await asyncio.sleep(pause)
        except Exception as exc:  # one terminal event, raised again by the sensor in the worker
            yield TriggerEvent({"status": "error", "error_class": type(exc).__name__, "message": str(exc)})
