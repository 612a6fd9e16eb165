"""Wait for new data to land: files or S3 objects matching a pattern, or SQL rows past a watermark."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.configuration import conf
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException

from airflow_mlops.hooks.ingestion import SqlSourceHook
from airflow_mlops.operators.base import MlopsHookMixin
from airflow_mlops.triggers.ingestion import DatasetAvailableTrigger

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops.core.ingestion import Availability, WatchSpec

_ERRORS = (
    "SpecError", "DataError", "SourceNotFoundError", "SourceAccessError", "SourceUnavailableError", "ArtifactError",
)  # fmt: skip


class DatasetAvailableSensor(BaseSensorOperator):
    """Wait until enough new data has landed in a folder, an S3 prefix or an SQL table.

    Files and objects count when they match ``pattern`` under ``path`` and, if given, were modified
    after ``since`` and/or are named (relative to ``path``) after ``start_after``. SQL rows count when
    ``watermark_column > since`` (all rows without ``since``). The data is available once at least
    ``min_count`` objects or rows count. The report (count, matching items, newest modification time,
    last name, SQL watermark) is returned to XCom: feed ``last_item``, ``newest_modified`` or
    ``watermark`` into the next run's ``start_after``/``since`` to wait for data newer than last seen.

    Runs in ``poke`` or ``reschedule`` mode, or with ``deferrable=True`` hands the waiting to the
    triggerer (:class:`~airflow_mlops.triggers.ingestion.DatasetAvailableTrigger`). When ``timeout``
    passes first, the task fails with a message saying what it waited for and what it saw, or is skipped
    when ``on_timeout="skip"``.

    :param source: ``sql``, ``s3`` or ``local``.
    :param path: ``s3://bucket/prefix`` or local folder to watch. (templated)
    :param pattern: glob below ``path``; hidden names (``.``/``_`` prefix) never match. (templated)
    :param since: files: ISO 8601 instant, objects modified strictly later count; SQL: watermark value,
        rows with ``watermark_column > since`` count; empty means no bound. (templated)
    :param start_after: files: only names sorting after this one count. (templated)
    :param table: SQL table (``schema.table``) to watch. (templated)
    :param query: SQL query whose rows are counted; ``{{ ... }}`` expressions are bound parameters.
    :param query_params: values for the query's ``:name`` placeholders. (templated)
    :param watermark_column: SQL column compared with ``since``.
    :param min_count: objects or rows needed. (templated)
    :param on_timeout: ``fail`` or ``skip`` when ``timeout`` passes without enough data.
    :param sql_conn_id: SQL connection, for ``sql`` sources.
    :param aws_conn_id: AWS connection, for ``s3`` sources.
    :param deferrable: wait in the triggerer instead of a worker slot.
    """

    template_fields: Sequence[str] = (
        "path", "pattern", "since", "start_after", "table", "query_params", "min_count",
    )  # fmt: skip
    template_fields_renderers = {"query_params": "json"}
    ui_color = "#e8eef7"

    def __init__(
        self,
        *,
        source: str,
        path: str | None = None,
        pattern: str | None = None,
        since: Any = None,
        start_after: str | None = None,
        table: str | None = None,
        query: str | None = None,
        query_params: dict[str, Any] | None = None,
        watermark_column: str | None = None,
        min_count: int | str = 1,
        on_timeout: str = "fail",
        sql_conn_id: str = SqlSourceHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.path = path
        self.pattern = pattern
        self.since = since
        self.start_after = start_after
        self.table = table
        self.query = query
        self.query_params = query_params
        self.watermark_column = watermark_column
        self.min_count = min_count
        self.on_timeout = on_timeout
        self.sql_conn_id = sql_conn_id
        self.aws_conn_id = aws_conn_id
        self.deferrable = deferrable

    # -- the spec and the source ----------------------------------------------------------------
    def watch_mapping(self, context: Context) -> dict[str, Any]:
        """The rendered arguments as a JSON-able :class:`WatchSpec` mapping (also the trigger's argument)."""
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.ingestion import WatchSpec
        from airflow_mlops.operators.ingestion import render_query

        if self.on_timeout not in ("fail", "skip"):
            raise SpecError(
                f"The 'on_timeout' parameter of {self.task_id!r} must be 'fail' or 'skip'. Got {self.on_timeout!r}."
            )
        query, bound = (None, {}) if not self.query else render_query(self, self.query, context)
        params = {key: _json_value(value) for key, value in {**(self.query_params or {}), **bound}.items()}
        mapping = {
            "source": self.source, "path": self.path, "pattern": self.pattern, "since": _json_value(self.since),
            "start_after": self.start_after, "table": self.table, "query": query, "params": params,
            "watermark_column": self.watermark_column, "min_count": self.min_count,
        }  # fmt: skip
        WatchSpec.from_mapping(mapping)  # fail here, in the worker, rather than in the triggerer
        return {key: value for key, value in mapping.items() if value not in (None, {}, "")}

    @cached_property
    def _handles(self) -> tuple[Any, Any]:
        from airflow_mlops.hooks.ingestion import source_handles

        return source_handles(self.source, self.path, sql_conn_id=self.sql_conn_id, aws_conn_id=self.aws_conn_id)

    def _look(self, context: Context) -> Availability:
        from airflow_mlops.core.ingestion import WatchSpec, probe

        spec: WatchSpec = WatchSpec.from_mapping(self.watch_mapping(context))
        engine, filesystem = self._handles
        report = probe(spec, engine=engine, filesystem=filesystem)
        self._last_report = report
        self.log.info("%s: %s of %s needed.", report.source, report.count, report.min_count)
        return report

    # -- poke / reschedule -------------------------------------------------------------------------
    def poke(self, context: Context) -> PokeReturnValue:
        report = self._look(context)
        return PokeReturnValue(is_done=report.ready, xcom_value=report.to_dict())

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            try:
                return super().execute(context)
            except AirflowSensorTimeout as exc:
                raise self._timed_out(getattr(self, "_last_report", None)) from exc
        report = self._look(context)
        if report.ready:
            return report.to_dict()
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.timeout)
        self.defer(
            trigger=DatasetAvailableTrigger(
                watch=self.watch_mapping(context),
                sql_conn_id=self.sql_conn_id,
                aws_conn_id=self.aws_conn_id,
                poke_interval=self.poke_interval,
                deadline=deadline.isoformat(),
            ),
            method_name="execute_complete",
            # Backstop only: the trigger itself reports the deadline with a clear message.
            timeout=dt.timedelta(seconds=self.timeout + max(60.0, 2 * self.poke_interval)),
        )

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume from the trigger: validate its one event strictly; return the report or raise."""
        from airflow_mlops.core import errors, ingestion
        from airflow_mlops.core.ingestion import Availability

        status = event.get("status") if isinstance(event, dict) else None
        if status == "error" and set(event) == {"status", "error_class", "message"}:
            name, message = event["error_class"], event["message"]
            error: type[Exception] = errors.MlopsError
            if name in _ERRORS:
                error = getattr(ingestion, name, None) or getattr(errors, name)
            raise error(f"{self.task_id}: waiting for data failed: {message}")
        if status in ("available", "timeout") and set(event) == {"status", "report"}:
            try:
                report = Availability.from_dict(event["report"])
            except errors.SpecError as exc:
                raise errors.MlopsError(f"{self.task_id}: the trigger sent a malformed report: {exc}") from exc
            if status == "available" and report.ready:
                return report.to_dict()
            if status == "timeout" and not report.ready:
                raise self._timed_out(report)
        raise errors.MlopsError(
            f"{self.task_id}: unexpected trigger event {event!r}; expected status 'available' or 'timeout' with a "
            "report, or 'error' with error_class and message."
        )

    def _timed_out(self, report: Availability | None) -> Exception:
        if report is None:
            message = f"Timed out after {self.timeout:g} s waiting for {self.source} data."
        else:
            message = (
                f"Timed out after {self.timeout:g} s waiting for {report.source}: found {report.count}, "
                f"expected at least {report.min_count}."
            )
        if self.on_timeout == "skip":
            return AirflowSkipException(message + " Skipping (on_timeout='skip').")
        return AirflowSensorTimeout(message)


def _json_value(value: Any) -> Any:
    """Dates and times as ISO 8601 text: trigger arguments must be JSON."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return value


class PipelineNewDataSensor(DatasetAvailableSensor, MlopsHookMixin):
    """Wait until data newer than a pipeline's latest training snapshot has landed in its source.

    A :class:`DatasetAvailableSensor` whose ``since`` is found at run time: for a SQL source, the latest
    snapshot's ``source_watermark`` (rows past it are new); for files, the instant that snapshot was taken
    (files modified later are new). Before the first snapshot every row or file counts. Give it the
    pipeline's dataset asset as an outlet and its success is the event that starts a training.

    :param pipeline: the pipeline whose snapshots (``{storage_root}/{pipeline}/snapshots/``) mark what is old.
    :param storage_root: storage root of the snapshots; the ``[mlops]`` default when omitted.
    :param storage_conn_id: connection of an S3 storage root (``aws_conn_id`` is the source's).
    """

    storage_conn_attr = "storage_conn_id"

    def __init__(
        self, *, pipeline: str, storage_root: str | None = None, storage_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.storage_root = storage_root
        self.storage_conn_id = storage_conn_id

    def watch_mapping(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.ingestion import since_last_snapshot

        if self.since in (None, ""):
            self.since = since_last_snapshot(self.storage, self.pipeline, rows=self.source == "sql")
            self.log.info("New data for %s: past %s (its latest snapshot).", self.pipeline, self.since or "nothing")
        return super().watch_mapping(context)
