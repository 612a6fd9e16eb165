"""Run feature transforms on Arrow data with DuckDB: the one code path of training, serving, the skew
check, drift, explanation and the backtest.

A :class:`Transformer` holds one DuckDB connection with the task's dimension tables registered once;
each call takes a record batch (or table, or pandas frame), runs one generated query (as-of joins,
key lookups, derived expressions, all from :mod:`.grammar`) and returns the input with the produced
columns appended (a produced column replaces an input column of the same name). Memory is bounded by
the batch and the dimensions. The query is compiled once per input schema.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.features.dimensions import (
    PRESENT_COLUMN,
    TIME_COLUMN,
    Dimension,
    SqlEngine,
    dimensions_summary,
)
from airflow_mlops.core.features.grammar import Kind, Scope, Typed, compile_node, quote
from airflow_mlops.core.features.spec import FeatureTransforms, JoinSpec

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

ROW = "__mlops_row"
_UTC = {"UTC", "Etc/UTC", "+00:00", "Z", "utc", "GMT", "Etc/GMT"}


def arrow_kind(kind: pa.DataType) -> Kind:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_boolean(kind):
        return "boolean"
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return "number"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        return "string"
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        return "timestamp"
    return "any"


@dataclass(frozen=True)
class _Query:
    sql: str
    outputs: list[str]
    reads: list[str]
    instants: dict[str, tuple[str, str | None]]  # added column -> (as-of column, declared zone of a naive one)


class Transformer:
    """A task's transforms bound to its dimensions (see the module docstring).

    :param transforms: the model version's transforms.
    :param dimensions: each join's loaded dimension (:func:`~.dimensions.load_dimensions`).
    """

    def __init__(self, transforms: FeatureTransforms, dimensions: Mapping[str, Dimension] | None = None) -> None:
        import duckdb

        dimensions = dict(dimensions or {})
        absent = [j.name for j in transforms.joins if j.name not in dimensions]
        if absent:
            raise SpecError(f"The feature transforms join {absent} but no dimension table was loaded for them.")
        self.transforms, self.dimensions = transforms, dimensions
        self._connection = duckdb.connect(config={"threads": 1})
        self._connection.execute("SET TimeZone = 'UTC'")
        for index, join in enumerate(transforms.joins):
            self._connection.register(f"dim_{index}", dimensions[join.name].table)
        self._queries: dict[Any, _Query] = {}
        self._lock = threading.Lock()
        self.rows = 0
        self.matched = {j.name: 0 for j in transforms.joins}

    def close(self) -> None:
        self._connection.close()

    # -- compiling ----------------------------------------------------------------------------
    def _query(self, schema: pa.Schema) -> _Query:
        key = tuple((f.name, str(f.type)) for f in schema)
        if key not in self._queries:
            self._queries[key] = self._compile(schema)
        return self._queries[key]

    def _compile(self, schema: pa.Schema) -> _Query:
        transforms = self.transforms
        produced = set(transforms.outputs)
        missing = [c for c in transforms.inputs() if c not in schema.names]
        if missing:
            raise DataError(
                f"The input lacks column(s) {missing} that the feature transforms read (join keys, as-of columns or "
                f"derived expressions). Columns present: {sorted(schema.names)}."
            )
        raw = [f for f in schema if f.name not in produced and f.name != ROW]
        columns = {f.name: Typed(f"b.{quote(f.name)}", arrow_kind(f.type)) for f in raw}
        zones = {f.name: getattr(f.type, "tz", None) for f in raw if arrow_kind(f.type) == "timestamp"}
        for name, zone in transforms.timezones.items():
            own = zones.get(name)
            if own is not None and _canonical(own) != _canonical(zone):
                raise DataError(
                    f"Time zones do not match: features.timezones declares {name!r} in {zone!r}, but the column "
                    f"carries time zone {own!r}."
                )
        selects, joins, instants = [], [], {}
        for index, join in enumerate(transforms.joins):
            if join.as_of is not None:
                instants[f"__mlops_asof_{index}"] = _instant(join, columns, zones, transforms)
            clause, matched, kinds = self._join_sql(index, join, columns)
            joins.append(clause)
            for output, source in join.columns.items():
                columns[output] = Typed(f"(CASE WHEN {matched} THEN d{index}.{quote(source)} END)", kinds[output])
                selects.append(f"{columns[output].sql} AS {quote(output)}")
            selects.append(f"{matched} AS {quote(f'__matched_{index}')}")
        scope = Scope(columns, lambda typed, source, zone: _local_time(typed, source, zone, zones, transforms))
        for feature in transforms.derived:
            where = f"Derived feature {feature.name!r}"
            typed = compile_node(feature.tree, scope, where)
            selects.append(f"{_cast(typed, where)} AS {quote(feature.name)}")
            columns[feature.name] = Typed(f"({typed.sql})", typed.kind)
        sql = f"SELECT {', '.join(selects)} FROM batch b {' '.join(joins)} ORDER BY b.{ROW}"
        reads = [c for c in transforms.inputs() if c in schema.names]
        reads += [c for f in transforms.derived for c in f.reads if c in schema.names and c not in produced]
        return _Query(sql, transforms.outputs, list(dict.fromkeys(reads)), instants)

    def _join_sql(self, index: int, join: JoinSpec, columns: Mapping[str, Typed]) -> tuple[str, str, dict[str, Kind]]:
        """(the join clause, the SQL of "this row matched", the type of each joined column)."""
        table = self.dimensions[join.name].table
        kinds: dict[str, Kind] = {out: arrow_kind(table.schema.field(c).type) for out, c in join.columns.items()}
        alias = f"d{index}"
        conditions = []
        for left, right in join.keys.items():
            left_kind, right_kind = columns[left].kind, arrow_kind(table.schema.field(right).type)
            if left_kind != right_kind:
                raise DataError(
                    f"Join {join.name!r}: key {left!r} of the input is {left_kind} but {right!r} of the dimension is "
                    f"{right_kind}; a key must have one type on both sides."
                )
            conditions.append(f"b.{quote(left)} = {alias}.{quote(right)}")
        matched = f"({alias}.{PRESENT_COLUMN} IS NOT NULL"
        kind_of_join = "LEFT JOIN"
        if join.as_of is not None:
            instant, when = f"b.__mlops_asof_{index}", f"{alias}.{TIME_COLUMN}"
            conditions.append(f"{instant} >= {when}")  # never a dimension row after the input's time
            matched += f" AND {instant} - {when} <= {join.as_of.tolerance_seconds * 1_000_000}"  # microseconds
            kind_of_join = "ASOF LEFT JOIN"
        clause = f"{kind_of_join} dim_{index} {alias} ON {' AND '.join(conditions)}"
        return clause, f"coalesce({matched}), FALSE)", kinds

    # -- running ------------------------------------------------------------------------------
    def output_schema(self, schema: pa.Schema) -> pa.Schema:
        """The schema :meth:`apply` gives for input of ``schema``."""
        return self.apply(schema.empty_table(), count=False).schema

    def apply(self, data: Any, *, count: bool = True) -> Any:
        """``data`` (a record batch or table) with the produced columns; the same kind comes back."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        if not self.transforms:
            return data
        query = self._query(data.schema)
        rows = data.num_rows
        arrays = [_plain(data.column(c)) for c in query.reads] + [pa.array(np.arange(rows, dtype=np.int64))]
        arrays += [_utc(data.column(column), zone) for column, zone in query.instants.values()]
        batch = pa.table(arrays, names=[*query.reads, ROW, *query.instants])
        with self._lock:
            self._connection.register("batch", batch)
            try:
                result = self._connection.sql(query.sql).to_arrow_table()
            except Exception as exc:  # DuckDB's own errors (a cast, a bad time zone) name the problem
                raise DataError(
                    f"The feature transforms could not run on this input: {str(exc).splitlines()[0]}"
                ) from exc
            finally:
                self._connection.unregister("batch")
        if count:
            self.rows += rows
            for index, join in enumerate(self.transforms.joins):
                self.matched[join.name] += int(pc.sum(result.column(f"__matched_{index}")).as_py() or 0)
        kept = [c for c in data.schema.names if c not in set(query.outputs)]
        names = [*kept, *query.outputs]
        columns = [data.column(c) for c in kept] + [_like(result.column(c), data) for c in query.outputs]
        if isinstance(data, pa.RecordBatch):
            return pa.RecordBatch.from_arrays(columns, names=names)
        return pa.table(columns, names=names)

    def as_of_instants(self, data: Any) -> dict[str, Any]:
        """Per as-of join, the instants its rows are joined at (int64 microseconds since 1970 UTC, an Arrow
        array): the as-of column read as :meth:`apply` reads it (a naive one in its declared zone)."""
        if not self.transforms:
            return {}
        query = self._query(data.schema)
        by_index = {int(name.rsplit("_", 1)[1]): spec for name, spec in query.instants.items()}
        return {
            join.name: _utc(data.column(by_index[index][0]), by_index[index][1])
            for index, join in enumerate(self.transforms.joins)
            if index in by_index
        }

    def check_frame(self, frame: pd.DataFrame) -> None:
        """Compile the transforms for ``frame``'s columns without running them: every column present, every
        type as the expressions and joins need it, every time zone known.

        :raises DataError: a column is missing, has the wrong type for a join, or time zones do not match.
        :raises SpecError: an expression does not fit the column types.
        """
        import pyarrow as pa

        if self.transforms:
            needed = [c for c in self.transforms.inputs() if c in frame.columns]
            self.output_schema(pa.Table.from_pandas(frame[needed], preserve_index=False).schema)

    def apply_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """A pandas frame with the produced columns (same row order and index)."""
        import pyarrow as pa

        if not self.transforms:
            return frame
        outputs = self.transforms.outputs
        needed = [c for c in self.transforms.inputs() if c in frame.columns]
        table = pa.Table.from_pandas(frame[needed], preserve_index=False)
        if not needed:  # expressions of constants only: keep the row count
            table = pa.table({ROW: pa.array([0] * len(frame), pa.int64())})
        produced = self.apply(table).select(outputs).to_pandas()
        produced.index = frame.index
        result = frame.drop(columns=[c for c in outputs if c in frame.columns])
        for name in outputs:
            result[name] = produced[name]
        return result

    def receipt(self) -> dict[str, Any]:
        """Rows transformed, and per join its dimension, matched and unmatched rows."""
        joins = {
            name: {**summary, "matched": self.matched[name], "unmatched": self.rows - self.matched[name]}
            for name, summary in dimensions_summary(self.dimensions).items()
        }
        return {"rows": self.rows, "derived": [d.name for d in self.transforms.derived], "joins": joins}


def _plain(column: Any) -> Any:
    """Dictionary strings decoded for DuckDB (one value per row, as the grammar compares them)."""
    import pyarrow as pa

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        return column.dictionary_decode()
    return column


def _like(column: Any, data: Any) -> Any:
    """A result column shaped like the input: one array for a record batch, chunked for a table."""
    import pyarrow as pa

    if isinstance(data, pa.RecordBatch):
        return column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    return column


def _cast(typed: Typed, where: str) -> str:
    """Numbers and booleans become DOUBLE, text VARCHAR: the two types a feature can have."""
    if typed.kind == "string":
        return f"CAST({typed.sql} AS VARCHAR)"
    if typed.kind in ("number", "boolean", "any"):
        return f"CAST({typed.sql} AS DOUBLE)"
    raise SpecError(f"{where} is a {typed.kind}; a feature must be a number or a string (use hour(), month(), ...).")


def _canonical(zone: str) -> str:
    return "UTC" if zone in _UTC else zone


def _zone_of(source: str | None, zones: Mapping[str, str | None], transforms: FeatureTransforms) -> str | None:
    """The zone of a timestamp column: its own when aware, else the declared one; None when unknown."""
    if source is None or source not in zones:
        return None
    return zones[source] or transforms.timezones.get(source)


def _local_time(
    typed: Typed, source: str | None, zone: str, zones: Mapping[str, str | None], transforms: FeatureTransforms
) -> str:
    """SQL of the wall-clock time in ``zone`` of a timestamp column."""
    if source is None or source not in zones:
        raise SpecError(f"Date and time parts read a timestamp column of the input directly; got {typed.sql}.")
    if zones[source] is not None:
        return f"timezone('{zone}', {typed.sql})"
    declared = transforms.timezones.get(source)
    if declared is None:
        raise DataError(
            f"Time zones do not match: {source!r} is a naive timestamp (no time zone) and the expression asks for "
            f"{zone!r}; declare the column's zone in features.timezones (such as {{{source}: {zone}}})."
        )
    if declared == zone:
        return typed.sql
    return f"timezone('{zone}', timezone('{declared}', {typed.sql}))"


def _instant(
    join: JoinSpec, columns: Mapping[str, Typed], zones: Mapping[str, str | None], transforms: FeatureTransforms
) -> tuple[str, str | None]:
    """The input's as-of column and, when it is naive, its declared zone (checked here)."""
    if join.as_of is None:
        raise SpecError(f"Join {join.name!r} has no as-of condition.")
    column = join.as_of.column
    if columns[column].kind != "timestamp":
        raise DataError(
            f"Join {join.name!r}: the as-of column {column!r} must be a timestamp; it is {columns[column].kind}."
        )
    if zones.get(column) is not None:
        return column, None
    declared = _zone_of(column, zones, transforms)
    if declared is None:
        raise DataError(
            f"Time zones do not match: join {join.name!r} compares {column!r}, a naive timestamp (no time zone), "
            f"with the dimension's {join.as_of.dimension_column!r}, which has one. Declare the column's zone in "
            "features.timezones."
        )
    return column, declared


def _utc(column: Any, zone: str | None) -> Any:
    """An as-of column as UTC instants in microseconds (a naive one read in its declared zone; a repeated
    or skipped wall-clock time at a daylight-saving change is read as its earliest instant)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if zone is not None:
        column = pc.assume_timezone(
            pc.cast(column, pa.timestamp("us")), zone, ambiguous="earliest", nonexistent="earliest"
        )
    return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())  # microseconds since 1970 UTC


def bind(transforms: FeatureTransforms, root: Any, pipeline: str, sql_engine: SqlEngine | None = None) -> Transformer:
    """A :class:`Transformer` for ``transforms`` with its dimensions read (once) from ``root``, or through
    ``sql_engine`` (a connection id -> a SQLAlchemy engine) for a join whose source is ``sql``."""
    from airflow_mlops.core.features.dimensions import load_dimensions

    loaded = load_dimensions(transforms, root, pipeline, sql_engine) if transforms.joins else {}
    return Transformer(transforms, loaded)
