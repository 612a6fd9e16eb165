"""The feature transforms of a training spec: derived columns and dimension joins, validated when parsed.

The pipeline file declares them beside the feature lists::

    features:
      numeric: [distance, sched_dow, temp, visib]
      categorical: [carrier, origin]
      timezones: {sched_dep_ts: America/New_York}    # the zone of naive timestamp columns
      joins:
        - name: weather
          source: dims/weather.parquet               # relative: under {storage_root}/{pipeline}/
          keys: {origin: origin}                     # input column: dimension column
          as_of: {column: sched_dep_ts, dimension_column: time_hour, tolerance: 2h}
          columns: [temp, visib]                     # or {output name: dimension column}
          duplicates: error                          # error | first | last
      derived:
        sched_dow: day_of_week(sched_dep_ts, 'America/New_York')

Joins run first, then the derived columns in order; a derived column may read the input's columns,
the joined columns and the derived columns above it. The spec travels with the model version (the
training spec artifact), so a version is always served with its own transforms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.features.grammar import Kind, Scope, Typed, compile_node, parse
from airflow_mlops.core.features.syntax import Node, columns_of
from airflow_mlops.core.params import parse_section
from airflow_mlops.core.pipeline.source import DataSource, parse_source

Duplicates = Literal["error", "first", "last"]
DUPLICATE_POLICIES: tuple[Duplicates, ...] = ("error", "first", "last")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOLERANCE = re.compile(r"^\s*(\d+)\s*([smhd])\s*$", re.IGNORECASE)
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_JOIN_FIELDS = ("name", "source", "connection", "table", "query", "keys", "as_of", "columns", "duplicates")
_SQL_FIELDS = ("connection", "table", "query")  # of a join whose source is 'sql', as in the data section
SQL_SOURCE = "sql"
_AS_OF_FIELDS = ("column", "dimension_column", "tolerance", "dimension_timezone")


def _where(path: str) -> str:
    return f"The '{path}' field of the feature transforms"


def _name(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value.strip()):
        raise SpecError(f"{_where(path)} must be a column name (letters, digits, '_'). Got {value!r} instead.")
    return value.strip()


def _zone(value: Any, path: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SpecError(f"{_where(path)} must be an IANA time zone such as 'America/New_York'. Got {value!r}.") from exc
    return str(value)


@dataclass(frozen=True)
class DerivedFeature:
    """One named column computed by an expression of the grammar (:mod:`.grammar`)."""

    name: str
    expression: str
    tree: Node = field(compare=False, repr=False)

    @property
    def reads(self) -> list[str]:
        return columns_of(self.tree)


@dataclass(frozen=True)
class AsOf:
    """An as-of condition: the dimension row with the latest ``dimension_column`` at or before the
    input's ``column`` (never after it), and no older than ``tolerance_seconds``."""

    column: str
    dimension_column: str
    tolerance_seconds: int
    dimension_timezone: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "dimension_column": self.dimension_column,
            "tolerance": f"{self.tolerance_seconds}s",
            "dimension_timezone": self.dimension_timezone,
        }


@dataclass(frozen=True)
class JoinSpec:
    """A lookup in a dimension table: equal ``keys`` (input column -> dimension column), optionally as of
    a time; ``columns`` maps output names to dimension columns. Unmatched rows get nulls.

    ``source`` is a Parquet file or folder, or ``sql``: then ``sql`` names the connection and the table or
    read-only query, as the pipeline file's ``data`` section does for a SQL training source.
    """

    name: str
    source: str
    keys: dict[str, str]
    columns: dict[str, str]
    as_of: AsOf | None = None
    duplicates: Duplicates = "error"
    sql: DataSource | None = None

    @property
    def needed(self) -> list[str]:
        """The dimension columns the join reads: keys, the as-of column, the columns brought in."""
        time = [self.as_of.dimension_column] if self.as_of else []
        return list(dict.fromkeys([*self.keys.values(), *time, *self.columns.values()]))

    @property
    def reads(self) -> list[str]:
        return [*self.keys, *([self.as_of.column] if self.as_of else [])]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "keys": dict(self.keys),
            "columns": dict(self.columns),
            "as_of": self.as_of.to_dict() if self.as_of else None,
            "duplicates": self.duplicates,
            **({k: getattr(self.sql, k) for k in _SQL_FIELDS if getattr(self.sql, k)} if self.sql else {}),
        }


@dataclass(frozen=True)
class FeatureTransforms:
    """Joins, then derived columns, then the time zones of naive timestamp columns."""

    derived: tuple[DerivedFeature, ...] = ()
    joins: tuple[JoinSpec, ...] = ()
    timezones: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.derived or self.joins)

    @property
    def outputs(self) -> list[str]:
        """The columns the transforms produce: joined columns, then derived ones."""
        return [*(c for j in self.joins for c in j.columns), *(d.name for d in self.derived)]

    def inputs(self) -> list[str]:
        """The input columns the transforms read (join keys, as-of columns, expression columns)."""
        produced = set(self.outputs)
        read = [c for j in self.joins for c in j.reads]
        read += [c for d in self.derived for c in d.reads if c not in produced]
        return list(dict.fromkeys(read))

    def raw_columns(self, features: Sequence[str]) -> list[str]:
        """The input columns a model with ``features`` needs before its transforms run."""
        produced = set(self.outputs)
        return list(dict.fromkeys([*(f for f in features if f not in produced), *self.inputs()]))

    def readers(self) -> dict[str, str]:
        """Each input column a transform reads -> which transform reads it (for feature requirements).

        A join key is not a feature, but a joined column is a function of its key: it knows what the key
        knows. So a column that may not be a feature may not be a join key or an expression input either.
        """
        produced = set(self.outputs)
        found: dict[str, str] = {}
        for join in self.joins:
            for key in join.keys:
                found.setdefault(key, f"join key of join {join.name!r}")
            if join.as_of:
                found.setdefault(join.as_of.column, f"as-of column of join {join.name!r}")
        for feature in self.derived:
            for column in feature.reads:
                if column not in produced:
                    found.setdefault(column, f"read by derived feature {feature.name!r}")
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            # A list, not a mapping: the order is meaningful and a JSON writer may sort a mapping's keys.
            "derived": [{d.name: d.expression} for d in self.derived],
            "joins": [j.to_dict() for j in self.joins],
            "timezones": dict(self.timezones),
        }

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, *, where: str = "features") -> FeatureTransforms:
        """Parse ``derived``, ``joins`` and ``timezones`` (keys of the ``features`` section)."""
        if not raw:
            return cls()
        timezones = {
            _name(k, f"{where}.timezones"): _zone(v, f"{where}.timezones.{k}")
            for k, v in _section(raw.get("timezones"), f"{where}.timezones").items()
        }
        joins = tuple(_join(item, f"{where}.joins[{i}]") for i, item in enumerate(_list(raw.get("joins"), where)))
        derived = tuple(
            DerivedFeature(_name(name, f"{where}.derived"), str(text), parse(text, f"Derived feature {name!r}"))
            for name, text in _derived_items(raw.get("derived"), f"{where}.derived")
        )
        transforms = cls(derived=derived, joins=joins, timezones=timezones)
        transforms._check_names(where)
        static_kinds(transforms)  # types that can never fit are refused now, before any data is read
        return transforms

    def _check_names(self, where: str) -> None:
        outputs = self.outputs
        repeated = sorted({n for n in outputs if outputs.count(n) > 1})
        if repeated:
            raise SpecError(f"{where}: column(s) {repeated} are produced by more than one join or derived feature.")
        names = [j.name for j in self.joins]
        if len(set(names)) != len(names):
            raise SpecError(f"{where}.joins: every join needs its own name. Got {names}.")
        available = {c for j in self.joins for c in j.columns}
        derived_names = {d.name for d in self.derived}
        for feature in self.derived:
            later = [c for c in feature.reads if c in derived_names and c not in available]
            if later:
                raise SpecError(
                    f"Derived feature {feature.name!r} reads derived column(s) {later} that are not defined above "
                    "it (or is defined by itself); derived features are computed in order."
                )
            available.add(feature.name)
        produced = set(outputs)
        for join in self.joins:
            produced_keys = [c for c in join.reads if c in produced]
            if produced_keys:
                raise SpecError(
                    f"Join {join.name!r} reads {produced_keys}, produced by a transform: join keys and as-of "
                    "columns must be input columns."
                )


def _section(raw: Any, path: str) -> Mapping[str, Any]:
    return parse_section(raw, _where(path))


def _derived_items(raw: Any, path: str) -> list[tuple[Any, Any]]:
    """``derived`` as (name, expression) pairs in order: a mapping (as written in a pipeline file) or a
    list of one-entry mappings (as a spec artifact keeps it)."""
    if isinstance(raw, Sequence) and not isinstance(raw, str):
        items = [_section(item, path) for item in raw]
        if any(len(item) != 1 for item in items):
            raise SpecError(f"{_where(path)} as a list must hold one {{name: expression}} per entry. Got {raw!r}.")
        return [next(iter(item.items())) for item in items]
    return list(_section(raw, path).items())


def _list(raw: Any, where: str) -> list[Any]:
    if raw is None:
        return []
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise SpecError(f"{_where(where + '.joins')} must be a list of joins. Got {raw!r} instead.")
    return list(raw)


def _join(raw: Any, path: str) -> JoinSpec:
    section = _section(raw, path)
    unknown = sorted(str(k) for k in section if k not in _JOIN_FIELDS)
    if unknown:
        raise SpecError(f"Unknown field(s) {unknown} in {path}. Allowed fields: {list(_JOIN_FIELDS)}.")
    name = _name(section.get("name"), f"{path}.name")
    source = section.get("source")
    if not isinstance(source, str) or not source.strip():
        raise SpecError(f"{_where(path + '.source')} must name a Parquet file or folder, or be 'sql'. Got {source!r}.")
    sql = _sql_source(section, source.strip(), name, path)
    keys = {
        _name(k, f"{path}.keys"): _name(v, f"{path}.keys.{k}")
        for k, v in _section(section.get("keys"), f"{path}.keys").items()
    }
    if not keys:
        raise SpecError(f"{_where(path + '.keys')} must map at least one input column to a dimension column.")
    raw_columns = section.get("columns")
    if isinstance(raw_columns, Sequence) and not isinstance(raw_columns, str):
        columns = {_name(c, f"{path}.columns"): _name(c, f"{path}.columns") for c in raw_columns}
    else:
        mapping = _section(raw_columns, f"{path}.columns")
        columns = {_name(k, f"{path}.columns"): _name(v, f"{path}.columns.{k}") for k, v in mapping.items()}
    if not columns:
        raise SpecError(f"{_where(path + '.columns')} must name at least one dimension column to bring in.")
    duplicates = section.get("duplicates", "error")
    if duplicates not in DUPLICATE_POLICIES:
        raise SpecError(
            f"{_where(path + '.duplicates')} must be one of {list(DUPLICATE_POLICIES)} (what to do when the dimension "
            f"has several rows for one key and time). Got {duplicates!r} instead."
        )
    as_of = None if section.get("as_of") is None else _as_of(section["as_of"], f"{path}.as_of")
    return JoinSpec(name, source.strip(), keys, columns, as_of, cast(Duplicates, duplicates), sql)


def _sql_source(section: Mapping[str, Any], source: str, name: str, path: str) -> DataSource | None:
    """A SQL dimension's connection and table or query (None for files); SQL keys on a file source are refused."""
    given = [k for k in _SQL_FIELDS if section.get(k) is not None]
    if source != SQL_SOURCE:
        if given:
            raise SpecError(f"Join {name!r}: {path}.{given[0]} applies to source 'sql'; this join reads {source!r}.")
        return None
    from airflow_mlops.core.ingestion.spec import IngestSpec

    sql = parse_source({"source": SQL_SOURCE, **{k: section.get(k) for k in _SQL_FIELDS}}, f"Join {name!r}", path)
    try:  # the table name and query as ingestion reads them, refused now rather than at the first read
        IngestSpec(source="sql", table=sql.table, query=sql.query)
    except SpecError as exc:
        raise SpecError(f"Join {name!r}: {path}: {exc}") from exc
    return sql


def _as_of(raw: Any, path: str) -> AsOf:
    section = _section(raw, path)
    unknown = sorted(str(k) for k in section if k not in _AS_OF_FIELDS)
    if unknown:
        raise SpecError(f"Unknown field(s) {unknown} in {path}. Allowed fields: {list(_AS_OF_FIELDS)}.")
    tolerance = str(section.get("tolerance", ""))
    match = _TOLERANCE.match(tolerance)
    if match is None or int(match.group(1)) <= 0:
        raise SpecError(
            f"{_where(path + '.tolerance')} must be a positive duration such as '90m', '2h' or '1d' (how old a "
            f"dimension row may be and still be joined). Got {section.get('tolerance')!r} instead."
        )
    zone = section.get("dimension_timezone")
    return AsOf(
        column=_name(section.get("column"), f"{path}.column"),
        dimension_column=_name(section.get("dimension_column"), f"{path}.dimension_column"),
        tolerance_seconds=int(match.group(1)) * _SECONDS[match.group(2).lower()],
        dimension_timezone=None if zone is None else _zone(zone, f"{path}.dimension_timezone"),
    )


def static_kinds(transforms: FeatureTransforms) -> dict[str, Kind]:
    """The type of each derived feature as far as it is known without data (``any`` otherwise).

    :raises SpecError: an expression mixes types that can never fit, naming the feature.
    """
    columns: dict[str, Typed] = {}
    for join in transforms.joins:
        columns.update({name: Typed(name, "any") for name in join.columns})
    kinds: dict[str, Kind] = {}

    class _Unknown(dict[str, Typed]):
        def __missing__(self, key: str) -> Typed:  # an input column: its type comes with the data
            return Typed(key, "any")

        def __contains__(self, key: object) -> bool:
            return True

    scope = Scope(_Unknown(columns), lambda typed, source, zone: typed.sql)
    for feature in transforms.derived:
        typed = compile_node(feature.tree, scope, f"Derived feature {feature.name!r}")
        kinds[feature.name] = typed.kind
        scope.columns[feature.name] = Typed(feature.name, typed.kind)  # type: ignore[index]
    return kinds
