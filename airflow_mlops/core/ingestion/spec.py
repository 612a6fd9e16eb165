"""The ingestion spec: what to read and how to store it, validated from a mapping.

Operator arguments arrive rendered by Jinja, so every value may be a string: booleans and counts go
through :mod:`airflow_mlops.core.params`, SQL identifiers are checked, values bound into SQL become types
a DBAPI driver binds natively. A spec that constructs is one that can be read.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.ingestion.patterns import glob_regex
from airflow_mlops.core.ingestion.readonly import check_read_only
from airflow_mlops.core.ingestion.types import declared_type
from airflow_mlops.core.params import parse_flag, parse_integer

SourceKind = Literal["sql", "s3", "local"]
FileFormat = Literal["csv", "parquet"]
OnEmpty = Literal["fail", "skip"]

DEFAULT_CHUNK_ROWS = 100_000
MAX_CHUNK_ROWS = 10_000_000
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


# -- coercion helpers (templated values arrive as strings) ---------------------------------------
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
        for name in ("keep_extra_columns", "incremental"):
            put(self, name, parse_flag(getattr(self, name), f"The {name!r} parameter of {owner}"))
        described = f"The 'chunk_rows' parameter of {owner}"
        put(self, "chunk_rows", parse_integer(self.chunk_rows, described, low=1, high=MAX_CHUNK_ROWS))
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
        if self.query is not None:
            check_read_only(self.query)
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
            glob_regex(self.pattern)
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
