"""Where a pipeline's training data comes from, and when new data alone starts a training.

The pipeline file's ``data`` section names the source of the training snapshot::

    data:
      source: files                     # files (default): every file of the landing folder matching
      training_pattern: "trips_*.parquet"   #   training_pattern, local or s3://
    ---
    data:
      source: sql                       # sql: a table or a read-only query through an Airflow connection
      connection: warehouse             # an mlops_sql connection (hooks/ingestion.py); default mlops_sql_default
      table: analytics.trips            # or query: "SELECT ... FROM ..." (refused unless it only reads)
      watermark_column: updated_at      # the newest value is the snapshot's source_watermark
      retrain_on_new_data:              # train when enough new data arrived (dags/landing_watch.py)
        min_rows: 5000                  # sql: rows past the last snapshot's watermark (files: min_files)
        min_interval: 1d                # look at most this often, so at most one retraining per interval

Serving batches are files in either case (``data.batch_pattern`` under the landing folder).

Parsing is cheap: DAG files read every pipeline file at every parse.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_duration, parse_integer

SourceKind = Literal["files", "sql"]
SOURCE_KEYS = ("source", "connection", "table", "query", "retrain_on_new_data")
DEFAULT_SQL_CONNECTION = "mlops_sql_default"  # SqlSourceHook.default_conn_name, without importing the hook
_RETRAIN_KEYS = ("min_rows", "min_files", "min_interval")


@dataclass(frozen=True)
class DataSource:
    """The training data's source: the landing files, or a SQL table or query."""

    kind: SourceKind = "files"
    connection: str | None = None
    table: str | None = None
    query: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "connection": self.connection, "table": self.table, "query": self.query}


@dataclass(frozen=True)
class RetrainOnNewData:
    """Start a training once ``min_count`` new rows (SQL) or files have arrived since the last snapshot.

    :ivar min_interval: the least time between two looks, hence between two trainings it starts.
    """

    min_count: int
    min_interval: timedelta

    def to_dict(self) -> dict[str, Any]:
        return {"min_count": self.min_count, "min_interval_seconds": self.min_interval.total_seconds()}


def parse_source(data: Mapping[str, Any], where: str, section: str = "data") -> DataSource:
    """The source keys of ``data`` as a :class:`DataSource`; ``where`` names the file in messages and
    ``section`` the keys' place in it (``data``, or a join of ``features.joins`` reading a SQL dimension)."""
    kind = data.get("source", "files")
    if kind not in ("files", "sql"):
        raise SpecError(f"{where}: {section}.source must be 'files' or 'sql'. Got {kind!r} instead.")
    table, query, connection = (
        _optional_text(data.get(k), f"{where}: {section}.{k}") for k in ("table", "query", "connection")
    )
    if kind == "files":
        given = [k for k, v in (("connection", connection), ("table", table), ("query", query)) if v is not None]
        if given:
            raise SpecError(
                f"{where}: {section}.{given[0]} applies to {section}.source 'sql'; this file's source is 'files'."
            )
        return DataSource()
    if (table is None) == (query is None):
        raise SpecError(f"{where}: {section}.source 'sql' needs exactly one of {section}.table or {section}.query.")
    if query is not None:
        from airflow_mlops.core.ingestion.readonly import check_read_only  # a SQL parser: only for a query

        try:
            check_read_only(query)
        except SpecError as exc:
            raise SpecError(f"{where}: {section}.query: {exc}") from exc
    return DataSource("sql", connection or DEFAULT_SQL_CONNECTION, table, query)


def parse_retrain_on_new_data(
    raw: Any, source: DataSource, watermark: str | None, where: str
) -> RetrainOnNewData | None:
    """``data.retrain_on_new_data``: None when absent. SQL counts rows past the watermark (so a SQL source
    needs ``data.watermark_column``); files count files newer than the last snapshot."""
    if raw is None:
        return None
    name = f"{where}: data.retrain_on_new_data"
    if not isinstance(raw, Mapping):
        raise SpecError(f"{name} must be a mapping such as {{min_rows: 1000, min_interval: 1d}}. Got {raw!r}.")
    unknown = sorted(str(k) for k in raw if k not in _RETRAIN_KEYS)
    if unknown:
        raise SpecError(f"{name} has unknown key(s) {unknown}; allowed: {list(_RETRAIN_KEYS)}.")
    counted, other = ("min_rows", "min_files") if source.kind == "sql" else ("min_files", "min_rows")
    if other in raw:
        raise SpecError(f"{name}.{other} does not apply to a {source.kind!r} source: it counts {counted[4:]}.")
    if source.kind == "sql" and watermark is None:
        raise SpecError(f"{name}: a SQL source counts new rows past data.watermark_column; set it.")
    if "min_interval" not in raw:
        raise SpecError(f"{name}.min_interval is required: how often to look, e.g. '1h' or '1d'.")
    interval = parse_duration(raw["min_interval"], "min_interval")
    if interval is None or interval < timedelta(minutes=1):
        raise SpecError(f"{name}.min_interval must be at least one minute. Got {raw['min_interval']!r}.")
    count = parse_integer(raw.get(counted, 1), f"{name}.{counted}", low=1, high=10**12)
    return RetrainOnNewData(min_count=count, min_interval=interval)


def _optional_text(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where} must be a non-empty string. Got {value!r} instead.")
    return value.strip()
