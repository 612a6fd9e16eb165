"""Ingestion: read one source in bounded chunks into one immutable, reproducible Parquet snapshot.

Sources are a SQL query or table (through a SQLAlchemy engine), or CSV/Parquet files on S3 or a local
disk (through a pyarrow filesystem). Rows travel in chunks of ``chunk_rows``: a server-side cursor for
SQL, ``pyarrow.dataset`` batches for files, so memory is bounded by the chunk size and not by the size of
the source. Each chunk is conformed to one output schema (declared columns first, with their declared
types; then the source's other columns with deterministically normalised types), re-cut into row groups of
exactly ``chunk_rows`` rows and streamed into ``{root}/{pipeline}/snapshots/{partition}/data.parquet``
through :meth:`StorageRoot.atomic_output`. The sha256 is computed while writing. Reading the same rows
again writes the same bytes: a rerun of a partition replaces it with an identical file and checksum.

A small ``receipt.json`` beside the data records what was written; incremental SQL ingestion reads the
watermark of the latest earlier partition from it.

This module also answers "has new data landed?" for the data-event sensor: :func:`probe` counts files or
objects matching a pattern (newer than a time or after a name) or SQL rows past a watermark.

Nothing here imports Airflow: connections become engines and filesystems in the hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import decimal
import hashlib
import json
import math
import queue
import re
import threading
import types
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, MlopsError, SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot, validate_segment

if TYPE_CHECKING:
    import jinja2
    from sqlalchemy.engine import Connection, Engine

SourceKind = Literal["sql", "s3", "local"]
FileFormat = Literal["csv", "parquet"]
OnEmpty = Literal["fail", "skip"]
Scalar = str | int | float | bool | None

SNAPSHOT_FILE = "data.parquet"
RECEIPT_FILE = "receipt.json"
DEFAULT_CHUNK_ROWS = 100_000
MAX_CHUNK_ROWS = 10_000_000
MAX_LISTED_ITEMS = 100
TEMPLATE_BIND_PREFIX = "mlops_t"
_RESERVED_BINDS = ("mlops_since", "mlops_until")  # bounds on the watermark column
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_COMPRESSION = "zstd"


# -- errors ------------------------------------------------------------------------------------
class EmptySourceError(DataError):
    """The source returned no rows while the spec says an empty result is a failure."""


class SourceAccessError(MlopsError, PermissionError):
    """The source refused us: wrong credentials, unknown role, missing privilege."""


class SourceUnavailableError(MlopsError, ConnectionError):
    """The source could not be reached (server down, network): transient, worth a retry."""


# -- types -------------------------------------------------------------------------------------
_DECLARED_TYPES: dict[str, Callable[[], pa.DataType]] = {
    "int8": pa.int8,
    "int16": pa.int16,
    "int32": pa.int32,
    "int64": pa.int64,
    "float32": pa.float32,
    "float64": pa.float64,
    "bool": pa.bool_,
    "string": pa.string,
    "date": pa.date32,
    "timestamp": lambda: pa.timestamp("us"),
    "timestamptz": lambda: pa.timestamp("us", tz="UTC"),
}
_TYPE_ALIASES = {
    "int": "int64",
    "integer": "int64",
    "bigint": "int64",
    "float": "float64",
    "double": "float64",
    "boolean": "bool",
    "str": "string",
    "text": "string",
    "utf8": "string",
    "date32": "date",
    "datetime": "timestamp",
    "timestamp[us]": "timestamp",
    "timestamp[us, tz=utc]": "timestamptz",
}


def declared_type(name: str, column: str = "?") -> pa.DataType:
    """The Arrow type for a type name of a dtype schema (``int64``, ``string``, ``timestamptz`` ...)."""
    key = str(name).strip().lower()
    key = _TYPE_ALIASES.get(key, key)
    if key not in _DECLARED_TYPES:
        raise SpecError(
            f"The type {name!r} declared for column {column!r} is not supported. "
            f"Expected one of {sorted(_DECLARED_TYPES)} (or an alias: {sorted(_TYPE_ALIASES)})."
        )
    return _DECLARED_TYPES[key]()


def normal_type(source: pa.DataType) -> pa.DataType:
    """The type an undeclared column is stored as, whatever its source type.

    Integers of any width become int64, floats and decimals float64, every text flavour (large, view,
    dictionary-encoded) string, timestamps microsecond precision (tz-aware ones in UTC), dates date32,
    times time64[us], binaries binary, an all-null column string. The same data therefore gives the same
    snapshot schema whether it came from PostgreSQL, CSV or Parquet, and whatever chunk it arrived in.
    Nested types are kept as they are.
    """
    t = pa.types
    if t.is_dictionary(source):
        return normal_type(source.value_type)
    if t.is_boolean(source):
        return pa.bool_()
    if t.is_integer(source):
        return pa.int64()
    if t.is_floating(source) or t.is_decimal(source):
        return pa.float64()
    if t.is_string(source) or t.is_large_string(source) or t.is_null(source) or _is_view(source, "string"):
        return pa.string()
    if t.is_binary(source) or t.is_large_binary(source) or t.is_fixed_size_binary(source):
        return pa.binary()
    if t.is_timestamp(source):
        return pa.timestamp("us", tz="UTC") if source.tz else pa.timestamp("us")
    if t.is_date(source):
        return pa.date32()
    if t.is_time(source):
        return pa.time64("us")
    if t.is_duration(source):
        return pa.duration("us")
    return source


def _is_view(source: pa.DataType, kind: str) -> bool:
    return str(source) == f"{kind}_view"


def schema_fingerprint(schema: Sequence[tuple[str, str]]) -> str:
    """sha256 of the ordered (column, type) pairs: equal fingerprints mean interchangeable snapshots."""
    canonical = json.dumps([[name, type_] for name, type_ in schema], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- coercion helpers (templated values arrive as strings) ---------------------------------------
def _as_bool(value: Any, name: str, owner: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.strip().lower() in {"true", "1", "yes"}
    raise SpecError(f"The {name!r} parameter of {owner} must be a boolean (true/false). Got {value!r} instead.")


def _as_int(value: Any, name: str, owner: str, low: int, high: int) -> int:
    try:
        number = int(str(value).strip()) if not isinstance(value, bool) else None
    except ValueError:
        number = None
    if number is None or not low <= number <= high:
        raise SpecError(
            f"The {name!r} parameter of {owner} must be an integer in [{low}, {high}]. Got {value!r} instead."
        )
    return number


def _opt_str(value: Any, name: str, owner: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise SpecError(f"The {name!r} parameter of {owner} must be a string. Got {value!r} instead.")
    return value.strip() or None


def _identifier(value: str, what: str, owner: str) -> str:
    if not _IDENTIFIER.fullmatch(value):
        raise SpecError(
            f"The {what} of {owner} must be a plain SQL identifier (letters, digits, '_' and '$', not starting "
            f"with a digit). Got {value!r} instead."
        )
    return value


def _table_name(value: str, owner: str) -> tuple[str | None, str]:
    parts = value.split(".")
    if len(parts) > 2:
        raise SpecError(f"The 'table' parameter of {owner} must be 'table' or 'schema.table'. Got {value!r} instead.")
    for part in parts:
        _identifier(part, "'table' parameter", owner)
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def _bindable(value: Any, name: str) -> Any:
    """A value a DBAPI driver binds natively; datetime subclasses (pendulum) become plain datetimes."""
    if value is None or isinstance(value, str | int | float | decimal.Decimal):
        return value
    if isinstance(value, dt.datetime):
        offset = value.utcoffset()
        return dt.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
            tzinfo=dt.timezone(offset) if offset is not None else None,
        )  # fmt: skip
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, value.day)
    if isinstance(value, dt.time):
        return value
    raise SpecError(
        f"The SQL parameter {name!r} must be a string, number, boolean, date, datetime or None. "
        f"Got {type(value).__name__} {value!r} instead."
    )


# -- the ingestion spec --------------------------------------------------------------------------
_SPEC_OWNER = "IngestSpec"


@dataclass(frozen=True)
class IngestSpec:
    """What to read and how to store it. Build it with :meth:`from_mapping`; every field is validated.

    :param source: ``sql``, ``s3`` or ``local``.
    :param query: SQL query (``sql``), with ``:name`` placeholders for ``params``; or use ``table``.
    :param table: ``table`` or ``schema.table`` (``sql``); reads every column (or the declared ones).
    :param params: values bound to the query's ``:name`` placeholders (never formatted into SQL).
    :param order_by: columns to order SQL rows by, so that reruns see rows in the same order.
    :param path: folder/prefix, or a single file/key (``s3://bucket/prefix`` or a local path).
    :param pattern: glob relative to ``path`` (``*.parquet``, ``2013/*.csv``, ``**/*.csv``); hidden
        names (starting with ``.`` or ``_``) never match.
    :param format: ``csv`` or ``parquet``; inferred from the pattern or path suffix when omitted.
    :param csv_delimiter: field delimiter of CSV files.
    :param schema: ``{column: type}``; declared columns must exist and are converted to their type.
    :param keep_extra_columns: keep undeclared columns (with normalised types) or drop them.
    :param watermark_column: column whose maximum is recorded as the source watermark.
    :param since: SQL only: keep rows with ``watermark_column > since`` (a bound parameter).
    :param until: SQL only: keep rows with ``watermark_column <= until``.
    :param incremental: SQL only: ``since`` is the watermark of the latest earlier partition's snapshot.
    :param chunk_rows: rows per chunk read and per Parquet row group: the memory bound.
    :param on_empty: ``fail`` (raise :class:`EmptySourceError`) or ``skip`` (write nothing, return None).
    """

    source: SourceKind
    query: str | None = None
    table: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    order_by: tuple[str, ...] = ()
    path: str | None = None
    pattern: str | None = None
    format: FileFormat | None = None
    csv_delimiter: str = ","
    schema: tuple[tuple[str, str], ...] = ()
    keep_extra_columns: bool = True
    watermark_column: str | None = None
    since: Any = None
    until: Any = None
    incremental: bool = False
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    on_empty: OnEmpty = "fail"

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any]) -> IngestSpec:
        """Validate a mapping (rendered operator arguments, YAML) into a spec; unknown keys are errors."""
        if not isinstance(mapping, Mapping):
            raise SpecError(f"An ingestion spec must be a mapping. Got {type(mapping).__name__} instead.")
        allowed = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(mapping) - allowed)
        if unknown:
            raise SpecError(f"Unknown {_SPEC_OWNER} parameter(s) {unknown}. Expected some of {sorted(allowed)}.")
        if "source" not in mapping:
            raise SpecError(f"The 'source' parameter of {_SPEC_OWNER} is required: one of 'sql', 's3', 'local'.")
        return cls(**{k: v for k, v in mapping.items() if v is not None})

    def __post_init__(self) -> None:
        owner = _SPEC_OWNER
        put = object.__setattr__
        if self.source not in ("sql", "s3", "local"):
            raise SpecError(f"The 'source' parameter of {owner} must be 'sql', 's3' or 'local'. Got {self.source!r}.")
        for name in ("query", "table", "path", "pattern", "watermark_column"):
            put(self, name, _opt_str(getattr(self, name), name, owner))
        put(self, "keep_extra_columns", _as_bool(self.keep_extra_columns, "keep_extra_columns", owner))
        put(self, "incremental", _as_bool(self.incremental, "incremental", owner))
        put(self, "chunk_rows", _as_int(self.chunk_rows, "chunk_rows", owner, 1, MAX_CHUNK_ROWS))
        if self.on_empty not in ("fail", "skip"):
            raise SpecError(f"The 'on_empty' parameter of {owner} must be 'fail' or 'skip'. Got {self.on_empty!r}.")
        put(self, "schema", _schema_pairs(self.schema))
        for name, type_name in self.schema:
            declared_type(type_name, name)
        if not self.keep_extra_columns and not self.schema:
            raise SpecError(
                f"{owner}: keep_extra_columns=False needs a declared 'schema'; otherwise no column would be kept."
            )
        if self.watermark_column and not self.keep_extra_columns and self.watermark_column not in dict(self.schema):
            raise SpecError(
                f"{owner}: the watermark column {self.watermark_column!r} is dropped because it is not declared in "
                "'schema' and keep_extra_columns=False. Declare it in the schema."
            )
        if isinstance(self.order_by, str):
            put(self, "order_by", tuple(c.strip() for c in self.order_by.split(",") if c.strip()))
        put(self, "order_by", tuple(_identifier(str(c), "'order_by' column", owner) for c in self.order_by))
        if self.source == "sql":
            self._check_sql(owner)
        else:
            self._check_files(owner)

    def _check_sql(self, owner: str) -> None:
        for name in ("since", "until"):
            object.__setattr__(self, name, _no_bound(getattr(self, name)))
        if (self.query is None) == (self.table is None):
            raise SpecError(f"{owner} with source 'sql' needs exactly one of 'query' or 'table'.")
        for name in ("path", "pattern", "format"):
            if getattr(self, name) is not None:
                raise SpecError(f"The {name!r} parameter of {owner} applies to file sources, not to source 'sql'.")
        if self.table is not None:
            _table_name(self.table, owner)
            if self.params:
                raise SpecError(f"{owner}: 'params' bind values into a 'query'; a 'table' source has none to bind.")
        if self.watermark_column is not None:
            _identifier(self.watermark_column, "'watermark_column' parameter", owner)
        if not isinstance(self.params, Mapping):
            raise SpecError(f"The 'params' parameter of {owner} must be a mapping. Got {self.params!r} instead.")
        bad = sorted(k for k in self.params if not _IDENTIFIER.fullmatch(str(k)))
        if bad:
            raise SpecError(f"SQL parameter names must be identifiers. Got {bad} in 'params'.")
        bound = {str(k): _bindable(v, str(k)) for k, v in self.params.items()}
        object.__setattr__(self, "params", types.MappingProxyType(bound))  # frozen all the way down
        bounded = self.since is not None or self.until is not None or self.incremental
        if bounded and self.watermark_column is None:
            raise SpecError(f"{owner}: 'since', 'until' and 'incremental' filter on 'watermark_column'; set it.")
        if self.incremental and self.since is not None:
            raise SpecError(
                f"{owner}: 'incremental' takes 'since' from the previous snapshot; do not also give 'since'."
            )
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _bindable(value, name))

    def _check_files(self, owner: str) -> None:
        for name in ("since", "until"):
            object.__setattr__(self, name, _no_bound(getattr(self, name)))
        if self.path is None:
            raise SpecError(f"{owner} with source {self.source!r} needs 'path' (a folder, prefix or file).")
        for name in ("query", "table"):
            if getattr(self, name) is not None:
                raise SpecError(f"The {name!r} parameter of {owner} applies to source 'sql', not {self.source!r}.")
        object.__setattr__(self, "params", types.MappingProxyType(dict(self.params)))
        if self.params or self.order_by:
            raise SpecError(f"{owner}: 'params' and 'order_by' apply to source 'sql', not {self.source!r}.")
        if self.since is not None or self.until is not None or self.incremental:
            raise SpecError(
                f"{owner}: 'since', 'until' and 'incremental' apply to source 'sql'. For files, choose what to "
                "read with 'path' and 'pattern'."
            )
        if self.source == "s3" and not self.path.startswith("s3://"):
            raise SpecError(f"{owner} with source 's3' needs an 's3://bucket/prefix' path. Got {self.path!r}.")
        if self.source == "local" and "://" in self.path and not self.path.startswith("file://"):
            raise SpecError(f"{owner} with source 'local' needs a local path. Got {self.path!r}.")
        if self.pattern is not None:
            _glob_regex(self.pattern)
        fmt = self.format or _infer_format(self.pattern) or _infer_format(self.path)
        if fmt not in ("csv", "parquet"):
            raise SpecError(
                f"The 'format' parameter of {owner} must be 'csv' or 'parquet'"
                + (f"; got {self.format!r}." if self.format else f"; it cannot be inferred from {self.path!r}.")
            )
        object.__setattr__(self, "format", fmt)
        if not isinstance(self.csv_delimiter, str) or len(self.csv_delimiter) != 1:
            raise SpecError(
                f"The 'csv_delimiter' parameter of {owner} must be one character. Got {self.csv_delimiter!r}."
            )

    def describe(self) -> str:
        """A short human name of the source for messages and receipts (never any credential)."""
        if self.source == "sql":
            return f"SQL table {self.table!r}" if self.table else "SQL query"
        where = str(self.path).rstrip("/") + "/" + self.pattern if self.pattern else str(self.path)
        return f"{self.format} files {where!r}"


def _no_bound(value: Any) -> Any:
    """A templated bound that rendered to nothing (``""``, ``"None"``) means no bound."""
    if isinstance(value, str) and value.strip() in ("", "None"):
        return None
    return value


def _schema_pairs(schema: Any) -> tuple[tuple[str, str], ...]:
    if isinstance(schema, Mapping):
        items = list(schema.items())
    elif isinstance(schema, list | tuple):
        items = [tuple(pair) for pair in schema]
    else:
        raise SpecError(f"The 'schema' parameter of {_SPEC_OWNER} must be a mapping {{column: type}}. Got {schema!r}.")
    pairs = []
    for item in items:
        if len(item) != 2 or not isinstance(item[0], str) or not item[0] or not isinstance(item[1], str):
            raise SpecError(f"The 'schema' of {_SPEC_OWNER} must map column names to type names. Got {item!r}.")
        pairs.append((item[0], item[1]))
    return tuple(pairs)


def _infer_format(path: str | None) -> str | None:
    if not path:
        return None
    lower = path.lower()
    if lower.endswith((".parquet", ".pq")):
        return "parquet"
    if lower.endswith(".csv"):
        return "csv"
    return None


# -- receipt -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestReceipt:
    """What one ingestion wrote: small and JSON-able, pushed to XCom and carried by the asset event."""

    uri: str
    pipeline: str
    partition: str
    rows: int
    columns: tuple[str, ...]
    schema: tuple[tuple[str, str], ...]
    schema_fingerprint: str
    sha256: str
    bytes: int
    row_groups: int
    source: str
    watermark_column: str | None
    source_watermark: Scalar
    since: Scalar

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "pipeline": self.pipeline,
            "partition": self.partition,
            "rows": self.rows,
            "columns": list(self.columns),
            "schema": dict(self.schema),
            "schema_fingerprint": self.schema_fingerprint,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "row_groups": self.row_groups,
            "source": self.source,
            "watermark_column": self.watermark_column,
            "source_watermark": self.source_watermark,
            "since": self.since,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestReceipt:
        try:
            return cls(
                uri=str(data["uri"]),
                pipeline=str(data["pipeline"]),
                partition=str(data["partition"]),
                rows=int(data["rows"]),
                columns=tuple(data["columns"]),
                schema=tuple((str(k), str(v)) for k, v in dict(data["schema"]).items()),
                schema_fingerprint=str(data["schema_fingerprint"]),
                sha256=str(data["sha256"]),
                bytes=int(data["bytes"]),
                row_groups=int(data["row_groups"]),
                source=str(data["source"]),
                watermark_column=data.get("watermark_column"),
                source_watermark=data.get("source_watermark"),
                since=data.get("since"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Not an ingestion receipt: {exc!r} in {dict(data)!r}.") from exc


def _json_scalar(value: Any) -> Scalar:
    """A watermark as JSON: datetimes and dates in ISO 8601, numbers as numbers, the rest as text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return str(value)


def partition_key(value: dt.datetime | dt.date | str) -> str:
    """Partition segment for a run: ISO 8601 in UTC (``2013-04-01T00:00:00+00:00``) or a validated string."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        text = aware.astimezone(dt.UTC).isoformat()
    elif isinstance(value, dt.date):
        text = value.isoformat()
    else:
        text = str(value)
    return validate_segment(text, "partition key")


# -- SQL templates: every {{ expression }} becomes a bound parameter -------------------------------
def render_sql_template(
    template: str, context: Mapping[str, Any], base_env: jinja2.Environment | None = None
) -> tuple[str, dict[str, Any]]:
    """Render a Jinja SQL template so that each ``{{ ... }}`` becomes a ``:mlops_tN`` bind placeholder.

    ``WHERE ts >= {{ data_interval_start }}`` renders to ``WHERE ts >= :mlops_t0`` with
    ``{"mlops_t0": datetime(...)}``: the value reaches the database as a bound parameter and is never
    formatted into the SQL text. Control blocks (``{% if %}``) still shape the text. Filters and globals
    of ``base_env`` (the DAG's environment: ``ds``, macros ...) are available; undefined names are errors.

    :return: the SQL text and the values to bind.
    """
    import jinja2
    import jinja2.sandbox

    values: dict[str, Any] = {}

    def finalize(value: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises, naming the variable
        name = f"{TEMPLATE_BIND_PREFIX}{len(values)}"
        values[name] = _bindable(value, f"{{{{ ... }}}} expression #{len(values) + 1}")
        return f":{name}"

    env = jinja2.sandbox.SandboxedEnvironment(
        loader=base_env.loader if base_env else None,
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        autoescape=False,
        cache_size=0,
    )
    if base_env is not None:
        env.filters.update(base_env.filters)
        env.tests.update(base_env.tests)
        env.globals.update(base_env.globals)
    try:
        sql = env.from_string(template).render(**dict(context))
    except jinja2.UndefinedError as exc:
        raise SpecError(f"The SQL template uses an undefined name: {exc}.") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError(f"The SQL template is not valid Jinja (line {exc.lineno}): {exc.message}.") from exc
    quoted = _placeholders_in_literals(sql)
    if quoted:
        raise SpecError(
            f"The SQL template puts {{{{ ... }}}} inside a quoted SQL literal ({', '.join(quoted)}). Each "
            "{{ ... }} is sent as a bound parameter, so write it where a value goes, without quotes: "
            "WHERE day = {{ ds }}, not WHERE day = '{{ ds }}'."
        )
    return sql, values


def _placeholders_in_literals(sql: str) -> list[str]:
    """Template placeholders that ended up inside '...' or "..." (they would not be bound)."""
    found: list[str] = []
    for literal in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", sql):
        found += re.findall(rf":{TEMPLATE_BIND_PREFIX}\d+", literal.group(0))
    return found


# -- file listing ------------------------------------------------------------------------------
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """Translate a glob (``*``, ``?``, ``[...]``, ``**`` across folders) into an anchored regex."""
    if pattern.startswith("/") or ".." in pattern.split("/"):
        raise SpecError(f"The 'pattern' must be relative to 'path' without '..'. Got {pattern!r} instead.")
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[" and (end := pattern.find("]", i + 2)) != -1:
            body = pattern[i + 1 : end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:
        raise SpecError(f"The 'pattern' {pattern!r} is not a valid glob: {exc}.") from exc


@dataclass(frozen=True)
class SourceFile:
    """One file or object of a file source."""

    uri: str
    fs_path: str
    relative: str
    size: int
    modified: dt.datetime | None


def _split_source_path(path: str) -> tuple[bool, str]:
    if path.startswith("s3://"):
        return True, path[len("s3://") :].rstrip("/")
    if path.startswith("file://"):
        path = path[len("file://") :]
    return False, path.rstrip("/") or "/"


def _is_hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def list_source_files(
    filesystem: pafs.FileSystem, path: str, pattern: str | None, *, missing_ok: bool = False
) -> list[SourceFile]:
    """Files under ``path`` matching ``pattern`` (all direct children when None), sorted by path.

    ``path`` may also name a single file (then ``pattern`` must be empty). Hidden names, starting with
    ``.`` or ``_`` (temporary uploads, ``_SUCCESS`` markers), are skipped. A missing S3 bucket raises
    :class:`SourceNotFoundError`, and so does a missing local folder unless ``missing_ok``; an S3 prefix
    without objects is simply empty (S3 has no folders).
    """
    is_s3, base = _split_source_path(path)
    scheme = "s3://" if is_s3 else ""
    try:
        info = filesystem.get_file_info(base)
        if info.type == pafs.FileType.File:
            if pattern:
                raise SpecError(f"The path {path!r} names a file; a 'pattern' only applies to a folder or prefix.")
            return [SourceFile(scheme + info.path, info.path, info.base_name, int(info.size or 0), info.mtime)]
        if info.type == pafs.FileType.NotFound:
            if not is_s3:
                if missing_ok:
                    return []
                raise SourceNotFoundError(f"No such folder or file: {path!r}.")
            bucket = base.split("/", 1)[0]
            if filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise SourceNotFoundError(f"The S3 bucket {bucket!r} of {path!r} does not exist.")
            return []
        regex = _glob_regex(pattern or "*")
        recursive = pattern is not None and "/" in pattern
        selector = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
        infos = filesystem.get_file_info(selector)
    except OSError as exc:
        raise _storage_error(exc, path) from exc
    found = []
    prefix = base.rstrip("/") + "/"
    for item in infos:
        if item.type != pafs.FileType.File or not item.path.startswith(prefix):
            continue
        relative = item.path[len(prefix) :]
        if _is_hidden(relative) or not regex.match(relative):
            continue
        found.append(SourceFile(scheme + item.path, item.path, relative, int(item.size or 0), item.mtime))
    return sorted(found, key=lambda f: f.fs_path)


_ACCESS_MARKERS = (
    "ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "EXPIRED_TOKEN", "AccessDenied",
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "Permission denied", "HTTP status 403",
)  # fmt: skip


def _storage_error(exc: OSError, where: str) -> MlopsError:
    text = str(exc)
    if isinstance(exc, PermissionError) or any(m in text for m in _ACCESS_MARKERS):
        return SourceAccessError(f"Access to {where!r} was refused (check the credentials of its connection): {text}")
    if isinstance(exc, FileNotFoundError) or "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return SourceNotFoundError(f"{where!r} does not exist: {text}")
    return SourceUnavailableError(f"Could not read {where!r}: {text}")


# -- conforming chunks to one output schema ------------------------------------------------------
class _Conformer:
    """Decides the output schema from the first chunk and converts every chunk to it."""

    def __init__(self, spec: IngestSpec, describe: str) -> None:
        self.spec = spec
        self.describe = describe
        self.declared = {name: declared_type(type_, name) for name, type_ in spec.schema}
        self.schema: pa.Schema | None = None

    def plan(self, source: pa.Schema, where: str) -> pa.Schema:
        names = list(source.names)
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise DataError(f"{where} has duplicate column names {duplicates}; every column needs its own name.")
        self.check_declared(names, where)
        fields = [pa.field(name, type_) for name, type_ in self.declared.items()]
        if self.spec.keep_extra_columns:
            fields += [pa.field(n, normal_type(source.field(n).type)) for n in names if n not in self.declared]
        schema = pa.schema(fields)
        wm = self.spec.watermark_column
        if wm is not None and wm not in schema.names:
            raise DataError(f"The watermark column {wm!r} is not a column of {where}. It has {names}.")
        self.schema = schema
        return schema

    def check_declared(self, names: Sequence[str], where: str) -> None:
        missing = [c for c in self.declared if c not in names]
        if missing:
            raise DataError(
                f"The declared column(s) {missing} are missing from {where}. It has {list(names)}; expected every "
                f"column of the schema {list(self.declared)}."
            )

    def conform(self, table: pa.Table | pa.RecordBatch, where: str) -> pa.Table:
        schema = self.schema if self.schema is not None else self.plan(table.schema, where)
        names = table.schema.names
        arrays = []
        for fld in schema:
            if fld.name not in names:
                raise DataError(
                    f"{where} lacks the column {fld.name!r} that earlier data of {self.describe} had; "
                    f"every file must have the columns {schema.names}."
                )
            arrays.append(self._cast(table.column(fld.name), fld, where))
        if self.spec.keep_extra_columns:
            extra = [n for n in names if n not in schema.names]
            if extra:
                raise DataError(
                    f"{where} has column(s) {extra} that earlier data of {self.describe} did not have; declare a "
                    "schema with keep_extra_columns=False to read only the declared columns."
                )
        return pa.Table.from_arrays(arrays, schema=schema)

    def _cast(self, column: Any, target: pa.Field, where: str) -> Any:
        if column.type == target.type:
            return column
        source_type = column.type
        if pa.types.is_dictionary(source_type):
            column = pc.cast(column, source_type.value_type)
        declared = "declared " if target.name in self.declared else ""
        numeric = (
            pa.types.is_integer(column.type) or pa.types.is_floating(column.type) or pa.types.is_decimal(column.type)
        )
        if numeric and pa.types.is_temporal(target.type):
            # Arrow would read numbers as offsets from 1970: a silent surprise, never what a schema means.
            raise DataError(
                f"The column {target.name!r} of {where} holds numbers ({source_type}); the {declared}type "
                f"{target.type} expects dates or times (typed, or as ISO 8601 text)."
            )
        # Decimal -> float64 is the one lossy conversion accepted; anything else that would lose data fails.
        safe = not (pa.types.is_decimal(column.type) and pa.types.is_floating(target.type))
        try:
            return pc.cast(column, target.type, safe=safe)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise DataError(
                f"The column {target.name!r} of {where} ({source_type}) cannot be converted to the {declared}type "
                f"{target.type}: {exc}"
            ) from exc


def _rechunk(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into contiguous tables of exactly ``rows`` rows (the last may be shorter).

    Row groups and page boundaries then depend only on the data and ``rows``, never on how the source
    happened to batch it: the same rows always give the same bytes.
    """
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, rows).combine_chunks()
            rest = merged.slice(rows)
            pending = [rest] if rest.num_rows else []
            count -= rows
    if count:
        yield pa.concat_tables(pending).combine_chunks()


class _HashingSink:
    """File-like object that forwards writes to a stream and hashes them on the way."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._stream.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True  # the atomic output owns the real stream and commits it

    @property
    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _max_value(values: Any) -> Any:
    if pa.types.is_null(values.type) or values.null_count == len(values):
        return None
    try:
        return pc.max(values).as_py()
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise DataError(f"Cannot take the maximum of a {values.type} column as a watermark: {exc}") from exc


@dataclass
class _Written:
    rows: int = 0
    row_groups: int = 0
    watermark: Any = None
    schema: pa.Schema | None = None
    sha256: str = ""
    size: int = 0


def _write_snapshot(
    chunks: Iterable[pa.Table], root: StorageRoot, uri: str, chunk_rows: int, watermark_column: str | None
) -> _Written:
    """Stream tables into one Parquet file at ``uri``; nothing appears there unless every chunk was written."""
    import pyarrow.parquet as pq

    written = _Written()
    with contextlib.ExitStack() as stack:
        close = getattr(chunks, "close", None)
        if close is not None:  # on error too: stops the fetch thread and closes the source connection now
            stack.callback(close)
        writer = None
        sink = None
        for table in _rechunk(chunks, chunk_rows):
            if writer is None:
                stream = stack.enter_context(root.atomic_output(uri))
                sink = _HashingSink(stream)
                written.schema = table.schema
                writer = stack.enter_context(
                    pq.ParquetWriter(
                        pa.PythonFile(sink, mode="w"), table.schema, compression=_COMPRESSION, version="2.6"
                    )
                )
            writer.write_table(table, row_group_size=chunk_rows)
            written.rows += table.num_rows
            written.row_groups += 1
            if watermark_column is not None:
                top = _max_value(table.column(watermark_column))
                if top is not None and (written.watermark is None or top > written.watermark):
                    written.watermark = top
        if writer is not None and sink is not None:
            writer.close()
            written.sha256, written.size = sink.hexdigest, sink.size
    return written


# -- SQL source ----------------------------------------------------------------------------------
# PostgreSQL type OIDs (psycopg2 cursor.description type_code) -> how to build the Arrow column.
_PG_KINDS = {
    16: "bool", 20: "int", 21: "int", 23: "int", 26: "int", 700: "float", 701: "float", 1700: "decimal",
    25: "str", 1043: "str", 1042: "str", 18: "str", 19: "str", 1082: "date", 1114: "ts", 1184: "tstz",
    1083: "time", 17: "bytes", 114: "json", 3802: "json", 2950: "uuid", 1186: "interval",
}  # fmt: skip


def _python_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, decimal.Decimal):
        return "decimal"
    if isinstance(value, dt.datetime):
        return "tstz" if value.tzinfo is not None else "ts"
    if isinstance(value, dt.date):
        return "date"
    if isinstance(value, dt.time):
        return "time"
    if isinstance(value, dt.timedelta):
        return "interval"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, dict | list):
        return "json"
    if isinstance(value, uuid.UUID):
        return "uuid"
    return "text"


def _json_text(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _build_column(kind: str, values: Sequence[Any]) -> pa.Array:
    """One Arrow column from the Python values a DBAPI driver returned."""
    if kind == "int":
        return pa.array(values, pa.int64())
    if kind == "float":
        return pa.array(values, pa.float64())
    if kind == "decimal":
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kind == "str":
        return pa.array(values, pa.string())
    if kind == "bool":
        return pa.array(values, pa.bool_())
    if kind == "date":
        return pa.array(values, pa.date32())
    if kind == "ts":
        return pa.array(values, pa.timestamp("us"))
    if kind == "tstz":
        return pa.array(values, pa.timestamp("us", tz="UTC"))
    if kind == "time":
        return pa.array(values, pa.time64("us"))
    if kind == "interval":
        return pa.array(values, pa.duration("us"))
    if kind == "bytes":
        return pa.array([None if v is None else bytes(v) for v in values], pa.binary())
    if kind == "json":
        return pa.array([None if v is None else _json_text(v) for v in values], pa.string())
    # "uuid", "text": anything else the driver returns, as its text form.
    return pa.array([v if v is None or isinstance(v, str) else str(v) for v in values], pa.string())


def _sql_error(exc: Exception, what: str, url: str) -> MlopsError:
    """Classify a SQLAlchemy/DBAPI error: not found, access refused, bad query, or transient."""
    from sqlalchemy import exc as sa_exc

    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error; the fast path does not
    code = str(getattr(orig, "pgcode", "") or "")
    text = str(orig).strip()
    lowered = text.lower()
    if isinstance(exc, sa_exc.NoSuchTableError) or code == "42P01":
        return SourceNotFoundError(f"{what} at {url}: the table does not exist ({text}).")
    refused = ("authentication failed", "no pg_hba.conf entry", "permission denied", "access denied")
    unknown_role = "role" in lowered and "does not exist" in lowered
    if code in ("42501", "28000", "28P01") or unknown_role or any(m in lowered for m in refused):
        return SourceAccessError(f"{what} at {url}: access refused, check the connection's credentials ({text}).")
    if code == "25006":
        return SpecError(f"{what} at {url} tried to change data; an ingestion query must only read: {text}")
    if "database" in lowered and "does not exist" in lowered:
        return SourceNotFoundError(f"{what} at {url}: the database does not exist ({text}).")
    if code.startswith("42") or code == "0A000":
        return SpecError(f"{what} at {url} is not valid SQL for this database: {text}")
    if code.startswith("22"):
        return DataError(f"{what} at {url}: the database rejected a value ({text}).")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or code.startswith("08"):
        return SourceUnavailableError(f"{what} at {url} could not be reached: {text}")
    return DataError(f"{what} at {url} failed: {text}")


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _query_placeholders(query: str) -> set[str]:
    import sqlalchemy as sa

    return set(sa.text(query).compile().params)


def _check_params(query: str, params: Mapping[str, Any], provided: Iterable[str]) -> None:
    wanted = _query_placeholders(query)
    missing = sorted(wanted - set(provided))
    if missing:
        raise SpecError(f"The SQL query has placeholder(s) {[':' + m for m in missing]} without a value in 'params'.")
    unused = sorted(set(params) - wanted)
    if unused:
        raise SpecError(f"The 'params' {unused} have no ':name' placeholder in the SQL query; it has {sorted(wanted)}.")
    reserved = sorted(set(params) & set(_RESERVED_BINDS))
    if reserved:
        raise SpecError(f"The SQL parameter names {list(_RESERVED_BINDS)} are reserved. Got {reserved} in 'params'.")


def _clean_query(query: str) -> str:
    return query.strip().rstrip(";").strip()


def _sql_statement(spec: IngestSpec, conn: Connection, since: Any, until: Any) -> tuple[Any, dict[str, Any]]:
    """The statement to stream and its bound parameters; table columns are checked by reflection."""
    import sqlalchemy as sa

    quote = conn.dialect.identifier_preparer.quote
    bounds: list[str] = []
    params: dict[str, Any] = {}
    wm = spec.watermark_column
    if since is not None:
        bounds.append(f"{quote(str(wm))} > :mlops_since")
        params["mlops_since"] = since
    if until is not None:
        bounds.append(f"{quote(str(wm))} <= :mlops_until")
        params["mlops_until"] = until
    order = ", ".join(quote(c) for c in spec.order_by)
    if spec.table is not None:
        schema_name, name = _table_name(spec.table, _SPEC_OWNER)
        columns = [c["name"] for c in sa.inspect(conn).get_columns(name, schema=schema_name)]
        declared = [c for c, _ in spec.schema]
        missing = [c for c in declared if c not in columns]
        if missing:
            raise DataError(
                f"The declared column(s) {missing} are missing from SQL table {spec.table!r}. It has {columns}; "
                f"expected every column of the schema {declared}."
            )
        for what, needed in (("watermark column", [wm] if wm else []), ("'order_by' column", list(spec.order_by))):
            absent = [c for c in needed if c not in columns]
            if absent:
                raise DataError(f"The {what}(s) {absent} are not in SQL table {spec.table!r}. It has {columns}.")
        selected = columns if spec.keep_extra_columns else declared
        source = ".".join(quote(p) for p in ([schema_name] if schema_name else []) + [name])
        sql = f"SELECT {', '.join(quote(c) for c in selected)} FROM {source}"
    else:
        query = _clean_query(str(spec.query))
        _check_params(query, spec.params, spec.params)
        params.update(spec.params)
        sql = query if not bounds and not order else f"SELECT * FROM ({query}) AS mlops_src"
    if bounds:
        sql += " WHERE " + " AND ".join(bounds)
    if order:
        sql += f" ORDER BY {order}"
    return sa.text(sql), params


def _sql_rows(spec: IngestSpec, engine: Engine, since: Any, until: Any) -> Iterator[Any]:
    """Run the statement on a server-side cursor; yield its column header, then row chunks.

    The first item is ``(names, kinds)``; every later one is a non-empty sequence of at most
    ``chunk_rows`` rows. With psycopg2 the statement (compiled by SQLAlchemy, values bound by the driver)
    runs on a named cursor of the SQLAlchemy-managed connection, which hands over plain tuples; other
    drivers go through SQLAlchemy's ``stream_results``/``yield_per``. The connection lives and dies
    inside this generator, which :func:`_prefetched` runs on one thread.
    """
    with engine.connect() as conn:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            conn = conn.execution_options(postgresql_readonly=True)  # a query can never change the source
        statement, params = _sql_statement(spec, conn, since, until)
        if postgres and engine.dialect.driver == "psycopg2":
            compiled = statement.compile(dialect=conn.dialect)
            driver = cast(Any, conn.connection.driver_connection)
            cursor = driver.cursor(name=f"mlops_ingest_{uuid.uuid4().hex[:12]}")
            try:
                cursor.itersize = spec.chunk_rows
                cursor.execute(str(compiled), compiled.construct_params(params))
                rows = cursor.fetchmany(spec.chunk_rows)  # a named cursor describes itself after a fetch
                yield [d[0] for d in cursor.description], [_PG_KINDS.get(d[1]) for d in cursor.description]
                while rows:
                    yield rows
                    rows = cursor.fetchmany(spec.chunk_rows)
            finally:
                cursor.close()
            return
        # yield_per on the statement: the connection-level option does not size partitions().
        result = conn.execution_options(stream_results=True).execute(
            statement.execution_options(yield_per=spec.chunk_rows), params
        )
        names = list(result.keys())
        description = getattr(result.cursor, "description", None) or []
        codes = [d[1] for d in description] if postgres and len(description) == len(names) else [None] * len(names)
        yield names, [_PG_KINDS.get(c) if isinstance(c, int) else None for c in codes]
        yield from result.partitions(spec.chunk_rows)


_DONE = object()


def _prefetched(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead of the consumer.

    Fetching the next chunk (waiting on the server, parsing in the driver) then overlaps with converting
    and writing the current one. Memory stays bounded: one chunk being fetched, ``depth`` waiting, one
    being converted. Errors raised by ``items`` are re-raised in the consumer; when the consumer stops
    early, the producer stops and closes ``items`` (and with it the connection) on its own thread.
    """
    channel: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("done", _DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put("error", exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="mlops-ingest-fetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


_STRUCT_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
    "ts": pa.timestamp("us"), "tstz": pa.timestamp("us", tz="UTC"), "time": pa.time64("us"),
    "interval": pa.duration("us"),
}  # fmt: skip


def _rows_to_table(rows: Sequence[Any], names: list[str], kinds: list[str | None], what: str) -> pa.Table:
    """One Arrow table from DBAPI rows; column kinds not known yet are decided from these rows, once."""
    if isinstance(rows[0], tuple) and all(k in _STRUCT_TYPES for k in kinds):
        # Every column has a native Arrow conversion: let Arrow walk the row tuples itself (no transpose).
        struct = pa.struct([pa.field(f"c{i}", _STRUCT_TYPES[cast(str, k)]) for i, k in enumerate(kinds)])
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # column by column names it
            batch = pa.RecordBatch.from_struct_array(pa.array(rows, type=struct))
            return pa.Table.from_batches([batch]).rename_columns(names)
    arrays = []
    for index, values in enumerate(zip(*rows, strict=True)):
        if kinds[index] is None:  # decided once, from the first chunk: one type for every chunk
            first = next((v for v in values if v is not None), None)
            kinds[index] = _python_kind(first) if first is not None else "text"
        try:
            arrays.append(_build_column(cast(str, kinds[index]), values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise DataError(
                f"The column {names[index]!r} of {what} holds values that do not fit one type "
                f"({kinds[index]}): {exc}. Declare its type in the schema."
            ) from exc
    return pa.Table.from_arrays(arrays, names=names)


def _sql_tables(spec: IngestSpec, engine: Engine, since: Any, until: Any, conformer: _Conformer) -> Iterator[pa.Table]:
    """Stream the SQL source through a server-side cursor, one Arrow table per ``chunk_rows`` rows."""
    from sqlalchemy import exc as sa_exc

    what = spec.describe()
    url = _url(engine)
    driver_error = getattr(engine.dialect.loaded_dbapi, "Error", sa_exc.SQLAlchemyError)
    try:
        chunks = _prefetched(_sql_rows(spec, engine, since, until))
        names, kinds = next(chunks)
        conformer.check_declared(names, what)
        for rows in chunks:
            yield _rows_to_table(rows, names, kinds, what)
    except (sa_exc.SQLAlchemyError, driver_error) as exc:
        raise _sql_error(exc, what, url) from exc


# -- file sources ------------------------------------------------------------------------------
def _file_format(spec: IngestSpec, declared: Mapping[str, pa.DataType]) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    if spec.format == "parquet":
        return ds.ParquetFileFormat()
    # Timestamps are parsed as found (with or without an offset) and converted afterwards, exactly as for
    # Parquet: the CSV parser itself refuses a naive text for a tz-aware type and the other way round.
    declared = {name: type_ for name, type_ in declared.items() if not pa.types.is_timestamp(type_)}
    return ds.CsvFileFormat(
        parse_options=pacsv.ParseOptions(delimiter=spec.csv_delimiter),
        convert_options=pacsv.ConvertOptions(column_types=dict(declared), strings_can_be_null=True, check_utf8=True),
        read_options=pacsv.ReadOptions(block_size=1 << 22),
    )


def _file_tables(
    spec: IngestSpec, filesystem: pafs.FileSystem, files: Sequence[SourceFile], conformer: _Conformer
) -> Iterator[pa.Table]:
    """Batches of every file, in path order, each conformed to the output schema."""
    import pyarrow.dataset as ds

    fmt = _file_format(spec, conformer.declared)
    columns = list(conformer.declared) if not spec.keep_extra_columns else None
    for item in files:
        where = f"{spec.format} file {item.uri!r}"
        try:
            dataset = ds.dataset(item.fs_path, filesystem=filesystem, format=fmt)
            names = dataset.schema.names
            conformer.check_declared(names, where)
            if spec.format == "csv":
                binary = [f.name for f in dataset.schema if pa.types.is_binary(f.type)]
                if binary:
                    raise DataError(
                        f"The column(s) {binary} of {where} hold bytes that are not valid UTF-8; expected UTF-8 text."
                    )
            batches = dataset.to_batches(
                columns=columns, batch_size=spec.chunk_rows, batch_readahead=1, fragment_readahead=1
            )
            for batch in batches:
                yield conformer.conform(batch, where)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise _file_error(exc, where, spec.format) from exc
        except OSError as exc:
            raise _storage_error(exc, item.uri) from exc


def _file_error(exc: Exception, where: str, fmt: str | None) -> DataError:
    text = str(exc)
    if "UTF8" in text or "UTF-8" in text:
        return DataError(f"{where} holds bytes that are not valid UTF-8; expected UTF-8 text: {text}")
    if fmt == "parquet" and ("magic bytes" in text or "Parquet" in text or "corrupt" in text.lower()):
        return DataError(f"{where} is not a readable Parquet file (corrupt or not Parquet): {text}")
    if "CSV parse error" in text:
        return DataError(f"{where} has a malformed row (expected the same number of fields on every row): {text}")
    if "conversion error" in text:
        return DataError(f"{where} has a value that does not fit its column's type: {text}")
    return DataError(f"{where} could not be read: {text}")


# -- ingest --------------------------------------------------------------------------------------
def snapshot_uri(root: StorageRoot, pipeline: str, partition: str) -> str:
    return root.layout(pipeline, contracts.KIND_SNAPSHOT, partition, SNAPSHOT_FILE)


def receipt_uri(root: StorageRoot, pipeline: str, partition: str) -> str:
    return root.layout(pipeline, contracts.KIND_SNAPSHOT, partition, RECEIPT_FILE)


def previous_receipt(root: StorageRoot, pipeline: str, partition: str) -> IngestReceipt | None:
    """The receipt of the latest partition that sorts before ``partition``, or None."""
    base = root.join(validate_segment(pipeline, "pipeline name"), contracts.KIND_SNAPSHOT)
    earlier = []
    for uri in root.list_files(base):
        head, _, name = uri.rpartition("/")
        found = head.rpartition("/")[2]
        if name == RECEIPT_FILE and head.rpartition("/")[0] == base and found < partition:
            earlier.append((found, uri))
    if not earlier:
        return None
    _, uri = max(earlier)
    return IngestReceipt.from_dict(json.loads(root.read_bytes(uri)))


def ingest(
    spec: IngestSpec,
    *,
    root: StorageRoot,
    pipeline: str,
    partition: str,
    engine: Engine | None = None,
    filesystem: pafs.FileSystem | None = None,
) -> IngestReceipt | None:
    """Read the source of ``spec`` into the snapshot of ``partition``; return its receipt.

    Returns None when the source is empty and ``spec.on_empty`` is ``skip`` (nothing is written);
    raises :class:`EmptySourceError` when it is ``fail``. On any error nothing is written and an earlier
    snapshot of the same partition stays as it was.

    :param engine: SQLAlchemy engine, for ``sql`` sources.
    :param filesystem: pyarrow filesystem reaching ``spec.path``, for ``s3`` and ``local`` sources.
    """
    validate_segment(pipeline, "pipeline name")
    partition = validate_segment(partition, "partition key")
    uri = snapshot_uri(root, pipeline, partition)
    conformer = _Conformer(spec, spec.describe())
    since = spec.since
    if spec.source == "sql":
        if engine is None:
            raise SpecError("ingest() needs an SQLAlchemy engine for a 'sql' source.")
        if spec.incremental:
            previous = previous_receipt(root, pipeline, partition)
            if previous is not None and previous.watermark_column != spec.watermark_column:
                raise SpecError(
                    f"Incremental ingestion of {pipeline!r}: the previous snapshot (partition {previous.partition!r}) "
                    f"tracked watermark column {previous.watermark_column!r}, this spec tracks "
                    f"{spec.watermark_column!r}. Use the same column or ingest without 'incremental'."
                )
            since = previous.source_watermark if previous is not None else None
        tables: Iterable[pa.Table] = (
            conformer.conform(t, spec.describe()) for t in _sql_tables(spec, engine, since, spec.until, conformer)
        )
        source = f"{spec.describe()} at {_url(engine)}"
    else:
        if filesystem is None:
            raise SpecError(f"ingest() needs a pyarrow filesystem for a {spec.source!r} source.")
        files = list_source_files(filesystem, str(spec.path), spec.pattern)
        if not files:
            raise SourceNotFoundError(
                f"No {spec.format} file matches {spec.pattern or '*'!r} under {spec.path!r}; expected at least one."
            )
        tables = _file_tables(spec, filesystem, files, conformer)
        source = spec.describe()
    written = _write_snapshot(tables, root, uri, spec.chunk_rows, spec.watermark_column)
    if written.rows == 0 or written.schema is None:
        if spec.on_empty == "skip":
            return None
        raise EmptySourceError(
            f"{source} returned no rows for partition {partition!r}"
            + (f" past the watermark {since!r}" if since is not None else "")
            + "; expected at least one (set on_empty='skip' to skip instead of failing). Nothing was written."
        )
    schema = tuple((f.name, str(f.type)) for f in written.schema)
    receipt = IngestReceipt(
        uri=uri,
        pipeline=pipeline,
        partition=partition,
        rows=written.rows,
        columns=tuple(written.schema.names),
        schema=schema,
        schema_fingerprint=schema_fingerprint(schema),
        sha256=written.sha256,
        bytes=written.size,
        row_groups=written.row_groups,
        source=source,
        watermark_column=spec.watermark_column,
        source_watermark=_json_scalar(written.watermark),
        since=_json_scalar(since),
    )
    body = json.dumps(receipt.to_dict(), indent=2).encode() + b"\n"  # key order is fixed by to_dict()
    root.write_bytes(receipt_uri(root, pipeline, partition), body)
    root.remove_stale_temporaries(uri)  # what a killed earlier attempt of this partition left
    return receipt


# -- availability (the data-event sensor) --------------------------------------------------------
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
        put(self, "min_count", _as_int(self.min_count, "min_count", owner, 1, 10**12))
        if self.source == "sql":
            if (self.table is None) == (self.query is None):
                raise SpecError(f"{owner} with source 'sql' needs exactly one of 'table' or 'query'.")
            if self.path or self.pattern or self.start_after:
                raise SpecError(f"{owner}: 'path', 'pattern' and 'start_after' apply to file sources, not 'sql'.")
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
                _glob_regex(self.pattern)
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
