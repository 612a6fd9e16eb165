"""Has new data landed? The probe of the data-event sensor and its trigger.

:func:`probe` counts files or objects matching a pattern (newer than a time or after a name) or SQL rows
past a watermark, and returns an :class:`Availability` report, which a trigger event carries as a dict.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow.fs as pafs

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.files import list_source_files
from airflow_mlops.core.ingestion.patterns import glob_regex
from airflow_mlops.core.ingestion.readonly import check_read_only
from airflow_mlops.core.ingestion.spec import (
    SourceKind,
    _bindable,
    _identifier,
    _no_bound,
    _opt_str,
    _table_name,
)
from airflow_mlops.core.ingestion.sql import _check_params, _clean_query, _sql_error, _url
from airflow_mlops.core.ingestion.types import Scalar, _json_scalar
from airflow_mlops.core.params import parse_integer

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

MAX_LISTED_ITEMS = 100
_WATCH_OWNER = "WatchSpec"


@dataclass(frozen=True)
class WatchSpec:
    """What a data-event sensor waits for.

    :param source: ``sql``, ``s3`` or ``local``.
    :param path: folder or prefix to watch (files).
    :param pattern: glob relative to ``path`` (files); hidden names never match.
    :param since: files: an ISO 8601 instant, objects modified strictly later count; SQL: a watermark
        value, rows with ``watermark_column > since`` count.
    :param start_after: files: only names (relative to ``path``) sorting after this one count.
    :param table: SQL table (or ``schema.table``) to watch; or ``query``.
    :param query: SQL query whose rows are counted (``:name`` placeholders bound from ``params``).
    :param watermark_column: SQL column compared with ``since``.
    :param min_count: objects or rows needed before the data counts as available.
    """

    source: SourceKind
    path: str | None = None
    pattern: str | None = None
    since: Any = None
    start_after: str | None = None
    table: str | None = None
    query: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    watermark_column: str | None = None
    min_count: int = 1

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> WatchSpec:
        if not isinstance(mapping, Mapping):
            raise SpecError(f"A watch spec must be a mapping. Got {type(mapping).__name__} instead.")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - allowed)
        if unknown:
            raise SpecError(f"Unknown {_WATCH_OWNER} parameter(s) {unknown}. Expected some of {sorted(allowed)}.")
        if "source" not in mapping:
            raise SpecError(f"The 'source' parameter of {_WATCH_OWNER} is required: one of 'sql', 's3', 'local'.")
        return cls(**{k: v for k, v in mapping.items() if v is not None})

    def __post_init__(self) -> None:
        owner = _WATCH_OWNER
        put = object.__setattr__
        if self.source not in ("sql", "s3", "local"):
            raise SpecError(f"The 'source' parameter of {owner} must be 'sql', 's3' or 'local'. Got {self.source!r}.")
        for name in ("path", "pattern", "start_after", "table", "query", "watermark_column"):
            put(self, name, _opt_str(getattr(self, name), name, owner))
        put(self, "since", _no_bound(self.since))
        if isinstance(self.since, str):
            put(self, "since", self.since.strip())
        described = f"The 'min_count' parameter of {owner}"
        put(self, "min_count", parse_integer(self.min_count, described, low=1, high=10**12))
        if self.source == "sql":
            if (self.table is None) == (self.query is None):
                raise SpecError(f"{owner} with source 'sql' needs exactly one of 'table' or 'query'.")
            if self.path or self.pattern or self.start_after:
                raise SpecError(f"{owner}: 'path', 'pattern' and 'start_after' apply to file sources, not 'sql'.")
            if self.query is not None:
                check_read_only(self.query)
            if self.table is not None:
                _table_name(self.table, owner)
            if self.since is not None and self.watermark_column is None:
                raise SpecError(f"{owner}: 'since' compares with 'watermark_column'; set it.")
            if self.watermark_column is not None:
                _identifier(self.watermark_column, "'watermark_column' parameter", owner)
            if not isinstance(self.params, Mapping):
                raise SpecError(f"The 'params' parameter of {owner} must be a mapping. Got {self.params!r}.")
            put(self, "params", {str(k): _bindable(v, str(k)) for k, v in self.params.items()})
            if self.since is not None:
                put(self, "since", _bindable(self.since, "since"))
        else:
            if self.path is None:
                raise SpecError(f"{owner} with source {self.source!r} needs 'path' (a folder or prefix).")
            if self.table or self.query or self.watermark_column or self.params:
                raise SpecError(f"{owner}: 'table', 'query', 'params' and 'watermark_column' apply to source 'sql'.")
            if self.source == "s3" and not self.path.startswith("s3://"):
                raise SpecError(f"{owner} with source 's3' needs an 's3://bucket/prefix' path. Got {self.path!r}.")
            if self.pattern is not None:
                glob_regex(self.pattern)
            if self.since is not None:
                put(self, "since", _as_instant(self.since, "since", owner))

    def describe(self) -> str:
        if self.source == "sql":
            what = f"SQL table {self.table!r}" if self.table else "SQL query"
            return what + (f" rows with {self.watermark_column} > {self.since!r}" if self.since is not None else "")
        where = str(self.path).rstrip("/") + "/" + (self.pattern or "*")
        conditions = []
        if self.since is not None:
            conditions.append(f"modified after {self.since.isoformat()}")
        if self.start_after:
            conditions.append(f"named after {self.start_after!r}")
        return f"files {where!r}" + (f" {' and '.join(conditions)}" if conditions else "")


def _as_instant(value: Any, name: str, owner: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SpecError(
                f"The {name!r} parameter of {owner} must be an ISO 8601 date-time for file sources. Got {value!r}."
            ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Availability:
    """What a probe saw: enough new data or not, and the marks to wait past next time."""

    source: str
    count: int
    min_count: int
    items: tuple[str, ...] = ()
    last_item: str | None = None
    newest_modified: str | None = None
    watermark: Scalar = None

    @property
    def ready(self) -> bool:
        return self.count >= self.min_count

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "count": self.count,
            "min_count": self.min_count,
            "ready": self.ready,
            "items": list(self.items),
            "last_item": self.last_item,
            "newest_modified": self.newest_modified,
            "watermark": self.watermark,
        }

    @classmethod
    def from_dict(cls, data: Any) -> Availability:
        """Strictly rebuild a report (from a trigger event): every key, with the right types."""
        expected = {"source", "count", "min_count", "ready", "items", "last_item", "newest_modified", "watermark"}
        if not isinstance(data, Mapping) or set(data) != expected:
            raise SpecError(f"An availability report must have exactly the keys {sorted(expected)}. Got {data!r}.")
        count, min_count = data["count"], data["min_count"]
        items = data["items"]
        if (
            not isinstance(data["source"], str)
            or not isinstance(count, int)
            or isinstance(count, bool)
            or not isinstance(min_count, int)
            or count < 0
            or min_count < 1
            or not isinstance(items, list)
            or not all(isinstance(i, str) for i in items)
            or data["ready"] is not (count >= min_count)
            or not isinstance(data["last_item"], str | None)
            or not isinstance(data["newest_modified"], str | None)
            or not isinstance(data["watermark"], str | int | float | bool | None)
        ):
            raise SpecError(f"Malformed availability report: {data!r}.")
        return cls(
            source=data["source"],
            count=count,
            min_count=min_count,
            items=tuple(items),
            last_item=data["last_item"],
            newest_modified=data["newest_modified"],
            watermark=data["watermark"],
        )


def probe(spec: WatchSpec, *, engine: Engine | None = None, filesystem: pafs.FileSystem | None = None) -> Availability:
    """Count what has landed for ``spec``: matching files/objects, or SQL rows past the watermark."""
    if spec.source == "sql":
        if engine is None:
            raise SpecError("probe() needs an SQLAlchemy engine for a 'sql' source.")
        return _probe_sql(spec, engine)
    if filesystem is None:
        raise SpecError(f"probe() needs a pyarrow filesystem for a {spec.source!r} source.")
    files = list_source_files(filesystem, str(spec.path), spec.pattern, missing_ok=True)
    if spec.since is not None:
        files = [f for f in files if f.modified is not None and f.modified > spec.since]
    if spec.start_after:
        files = [f for f in files if f.relative > str(spec.start_after)]
    newest = max((f.modified for f in files if f.modified is not None), default=None)
    return Availability(
        source=spec.describe(),
        count=len(files),
        min_count=spec.min_count,
        items=tuple(f.uri for f in files[:MAX_LISTED_ITEMS]),
        last_item=max((f.relative for f in files), default=None),
        newest_modified=newest.astimezone(dt.UTC).isoformat() if newest is not None else None,
    )


def _probe_sql(spec: WatchSpec, engine: Engine) -> Availability:
    import sqlalchemy as sa
    from sqlalchemy import exc as sa_exc

    what = spec.describe()
    url = _url(engine)
    try:
        with engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            params: dict[str, Any] = {}
            if spec.table is not None:
                schema_name, name = _table_name(spec.table, _WATCH_OWNER)
                if not sa.inspect(conn).has_table(name, schema=schema_name):
                    raise SourceNotFoundError(f"{what} at {url}: the table does not exist.")
                source = ".".join(quote(p) for p in ([schema_name] if schema_name else []) + [name])
            else:
                query = _clean_query(str(spec.query))
                _check_params(query, spec.params, spec.params)
                params.update(spec.params)
                source = f"({query}) AS mlops_src"
            wm = quote(spec.watermark_column) if spec.watermark_column else None
            sql = f"SELECT count(*), {f'max({wm})' if wm else 'NULL'} FROM {source}"
            if spec.since is not None:
                sql += f" WHERE {wm} > :mlops_since"
                params["mlops_since"] = spec.since
            count, newest = conn.execute(sa.text(sql), params).one()
    except sa_exc.SQLAlchemyError as exc:
        raise _sql_error(exc, what, url) from exc
    return Availability(source=what, count=int(count), min_count=spec.min_count, watermark=_json_scalar(newest))
