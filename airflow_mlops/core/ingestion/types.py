"""Type normalisation: one output schema for a snapshot, whatever the source and however it is chunked.

Declared columns come first, with their declared types (:func:`declared_type`); the source's other
columns follow with deterministically normalised types (:func:`normal_type`). :class:`_Conformer`
decides the schema from the first chunk and converts every chunk to it; :func:`_rows_to_table` turns the
Python values a DBAPI driver returns into Arrow columns, one type per column for every chunk.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import hashlib
import json
import math
import uuid
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol, cast

import pyarrow as pa
import pyarrow.compute as pc

from airflow_mlops.core.errors import DataError, SpecError

Scalar = str | int | float | bool | None

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


# -- conforming chunks to one output schema ------------------------------------------------------
class ConformSettings(Protocol):
    """What conforming needs of an ingestion spec (a protocol, so this module does not import the spec)."""

    @property
    def schema(self) -> Any: ...

    @property
    def keep_extra_columns(self) -> bool: ...

    @property
    def watermark_column(self) -> str | None: ...


class _Conformer:
    """Decides the output schema from the first chunk and converts every chunk to it."""

    def __init__(self, spec: ConformSettings, describe: str) -> None:
        self.spec = spec
        self.describe = describe
        self.declared = {name: declared_type(type_, name) for name, type_ in spec.schema}
        self.schema: pa.Schema | None = None
        self.type_origin: dict[str, str] = {}  # undeclared column -> the data that decided its type
        self.warnings: list[str] = []  # accepted but worth a look: recorded in the receipt and logged

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
            origin = self.type_origin.get(target.name)
            decided = f" (its type in {origin})" if origin and origin != where else ""
            raise DataError(
                f"The column {target.name!r} of {where} ({source_type}) cannot be converted to the {declared}type "
                f"{target.type}{decided}: {exc}"
            ) from exc


# -- DBAPI rows to Arrow ------------------------------------------------------------------------
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


_STRUCT_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(), "date": pa.date32(),
    "ts": pa.timestamp("us"), "tstz": pa.timestamp("us", tz="UTC"), "time": pa.time64("us"),
    "interval": pa.duration("us"),
}  # fmt: skip


_ALL_NULL = "all-null"  # a column whose first chunk held only NULLs: stored as text, its type unknown


def _rows_to_table(
    rows: Sequence[Any], names: list[str], kinds: list[str | None], what: str, declared: Collection[str] = ()
) -> pa.Table:
    """One Arrow table from DBAPI rows; column kinds not known yet are decided from these rows, once.

    A column with only NULLs in the first chunk says nothing about its type. A declared one takes the kind
    of the first chunk with values (the conformer converts it to the declared type anyway); an undeclared
    one was stored as text from the first chunk on, so a later chunk with non-text values is refused
    rather than turned into text.
    """
    if isinstance(rows[0], tuple) and all(k in _STRUCT_TYPES for k in kinds):
        # Every column has a native Arrow conversion: let Arrow walk the row tuples itself (no transpose).
        struct = pa.struct([pa.field(f"c{i}", _STRUCT_TYPES[cast(str, k)]) for i, k in enumerate(kinds)])
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # column by column names it
            batch = pa.RecordBatch.from_struct_array(pa.array(rows, type=struct))
            return pa.Table.from_batches([batch]).rename_columns(names)
    arrays = []
    for index, values in enumerate(zip(*rows, strict=True)):
        if kinds[index] in (None, _ALL_NULL):
            _decide_kind(index, values, names, kinds, what, declared)
        try:
            arrays.append(_build_column(cast(str, kinds[index]), values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
            raise DataError(
                f"The column {names[index]!r} of {what} holds values that do not fit one type "
                f"({kinds[index]}): {exc}. Declare its type in the schema."
            ) from exc
    return pa.Table.from_arrays(arrays, names=names)


def _decide_kind(
    index: int, values: Sequence[Any], names: list[str], kinds: list[str | None], what: str, declared: Collection[str]
) -> None:
    first = next((v for v in values if v is not None), None)
    if kinds[index] is None:  # the first chunk: one type for every chunk
        kinds[index] = _python_kind(first) if first is not None else _ALL_NULL
    elif first is not None and names[index] in declared:
        kinds[index] = _python_kind(first)
    elif first is not None and not isinstance(first, str):
        raise DataError(
            f"The column {names[index]!r} of {what} held only NULLs in the first chunk, so it is stored as text, "
            f"but a later chunk holds {type(first).__name__} values ({first!r}). Declare its type in 'schema' "
            "(or raise 'chunk_rows') so that it is read as what it holds."
        )
