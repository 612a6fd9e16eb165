"""Dimension tables for feature joins: located, read once per task, fingerprinted and deduplicated.

A join's ``source`` is a Parquet file or a folder of them: a path starting with ``include/`` is data shipped
with the project (read from the project folder, the current directory of Airflow's processes, as the replay
reads ``include/data``); another relative path lies under ``{storage_root}/{pipeline}/`` (a dimension that
is updated as data lands); an absolute path or an ``s3://`` URI is used as it is (S3 through the storage
root's filesystem). Only the columns the join needs are kept.
The sha256 of the files' bytes identifies the snapshot the model was trained with.

A ``sql`` source is a table or read-only query through a connection, read by ingestion's SQL reader
(:func:`~airflow_mlops.core.ingestion.sql.read_sql`). The core opens no connection: the caller (the
operator layer) hands over ``sql_engine``, which turns a connection id into a SQLAlchemy engine. SQL
rows have no file order, so the columns the join reads are put in order of all of them (keys, as-of
column, then the columns brought in); the sha256 is that of this table in Arrow's IPC stream format,
and ``duplicates: first`` / ``last`` pick the smallest / largest row of that order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.features.spec import FeatureTransforms, JoinSpec
from airflow_mlops.core.storage import StorageRoot, validate_relative_path

if TYPE_CHECKING:
    import pyarrow as pa

SqlEngine = Callable[[str], Any]  # a connection id -> a SQLAlchemy engine (resolved by the operator layer)
TIME_COLUMN = "__mlops_t"  # the as-of instant of a dimension row (microseconds since 1970 UTC)
PRESENT_COLUMN = "__mlops_present"  # true on every dimension row, null where a lookup found none


@dataclass(frozen=True)
class Dimension:
    """One join's dimension: where it came from, its fingerprint and the rows a join reads."""

    join: JoinSpec
    uri: str
    sha256: str
    rows: int
    table: pa.Table
    duplicates_dropped: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "sha256": self.sha256,
            "rows": self.rows,
            "duplicates": self.join.duplicates,
            "duplicates_dropped": self.duplicates_dropped,
        }


PROJECT_DATA = "include/"  # a source under include/ is data shipped with the project


def located_by_root(join: JoinSpec) -> bool:
    """Whether a join's dimension lies under the storage root (relative, not under ``include/``, not SQL)."""
    return join.sql is None and not join.source.startswith(("s3://", "/", "file://", PROJECT_DATA))


def dimension_uri(source: str, root: StorageRoot, pipeline: str) -> str:
    """Where a join's ``source`` lies: as given when absolute or on S3; under the project folder (the current
    directory, as Airflow runs from it) when it starts with ``include/``; else under ``{root}/{pipeline}/``."""
    import os

    if source.startswith(("s3://", "/", "file://")):
        return source.removeprefix("file://")
    relative = validate_relative_path(source, "dimension source")
    if relative.startswith(PROJECT_DATA):
        return os.path.join(os.getcwd(), relative)
    return root.join(pipeline, relative)


def load_dimensions(
    transforms: FeatureTransforms, root: StorageRoot, pipeline: str, sql_engine: SqlEngine | None = None
) -> dict[str, Dimension]:
    """Every join's dimension, read once (a task binds them for all its batches).

    :param sql_engine: turns a connection id into a SQLAlchemy engine, for joins whose source is ``sql``.
    :raises SourceNotFoundError: a dimension file or folder, or a SQL table, does not exist.
    :raises SpecError: a join reads SQL but no ``sql_engine`` was given.
    :raises DataError: it lacks a key or column, a time column is not a timestamp, or (``duplicates:
        error``) several rows share a key and time.
    """
    loaded = {}
    for join in transforms.joins:
        if join.sql is None:
            uri = dimension_uri(join.source, root, pipeline)
            loaded[join.name] = _load(join, uri, *_read(uri, root))
        else:
            loaded[join.name] = _load(join, *_read_sql(join, sql_engine))
    return loaded


def _files(uri: str, root: StorageRoot) -> tuple[Any, list[str]]:
    import pyarrow.fs as pafs

    is_s3 = uri.startswith("s3://")
    if is_s3 and not root.is_s3:
        raise SourceNotFoundError(f"The dimension {uri!r} is on S3 but the storage root {root.uri!r} is local.")
    filesystem = root.filesystem if is_s3 else pafs.LocalFileSystem()
    path = uri.removeprefix("s3://")
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        return filesystem, [path]
    if info.type == pafs.FileType.Directory:
        selector = pafs.FileSelector(path, recursive=True)
        listing = filesystem.get_file_info(selector)
        found = sorted(i.path for i in listing if i.type == pafs.FileType.File and not _hidden(i.path[len(path) :]))
        if found:
            return filesystem, found
    raise SourceNotFoundError(f"The dimension {uri!r} does not exist: expected a Parquet file or a folder of them.")


def _hidden(relative: str) -> bool:
    """Files that are not data: temporaries, checksums, markers (``.x``, ``_SUCCESS``)."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _read(uri: str, root: StorageRoot) -> tuple[pa.Table, str]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    filesystem, paths = _files(uri, root)
    digest, tables = hashlib.sha256(), []
    for path in paths:
        with filesystem.open_input_stream(path) as stream:
            data = bytes(stream.read())
        digest.update(data if len(paths) == 1 else hashlib.sha256(data).digest())
        try:
            tables.append(pq.read_table(pa.BufferReader(data)))
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"The dimension file {path!r} is not a readable Parquet file: {exc}") from exc
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DataError(f"The files of dimension {uri!r} disagree on column types: {exc}") from exc
    return table, digest.hexdigest()


def _read_sql(join: JoinSpec, sql_engine: SqlEngine | None) -> tuple[str, pa.Table, str]:
    """A SQL dimension's URI (the connection's URL without password, and the table or "query"), the
    columns the join reads in order of all of them, and their sha256 (see the module docstring)."""
    import pyarrow as pa

    from airflow_mlops.core.ingestion.spec import IngestSpec
    from airflow_mlops.core.ingestion.sql import read_sql

    sql = join.sql
    if sql is None or sql.connection is None:
        raise SpecError(f"Join {join.name!r} does not read a SQL source.")
    if sql_engine is None:
        raise SpecError(
            f"Join {join.name!r} reads its dimension through the SQL connection {sql.connection!r}, but no SQL "
            "connection was handed to the feature transforms (an operator hands them; a direct caller passes "
            "sql_engine)."
        )
    engine = sql_engine(sql.connection)
    spec = IngestSpec(source="sql", table=sql.table, query=sql.query)
    uri = f"{engine.url.render_as_string(hide_password=True)} {spec.describe()}"
    table = read_sql(spec, engine)
    _check_columns(join, table, uri)
    table = table.select(join.needed).combine_chunks().sort_by([(c, "ascending") for c in join.needed])
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return uri, table, hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()


def _check_columns(join: JoinSpec, table: pa.Table, uri: str) -> None:
    missing = [c for c in join.needed if c not in table.column_names]
    if missing:
        raise DataError(
            f"The dimension {uri!r} of join {join.name!r} has no column(s) {missing} (keys, as-of column or columns "
            f"to bring in). Columns present: {sorted(table.column_names)}."
        )


def _load(join: JoinSpec, uri: str, table: pa.Table, sha256: str) -> Dimension:
    import pyarrow as pa

    _check_columns(join, table, uri)
    rows = table.num_rows
    table = table.select(join.needed)
    table = table.append_column(TIME_COLUMN, _instants(table, join)) if join.as_of else table
    table = table.append_column(PRESENT_COLUMN, pa.array([True] * table.num_rows, pa.bool_()))
    deduplicated, dropped = _deduplicate(table, join, uri)
    return Dimension(join, uri, sha256, rows, deduplicated, dropped)


def _instants(table: pa.Table, join: JoinSpec) -> pa.Array:
    """The as-of column as UTC instants; a naive column needs ``as_of.dimension_timezone``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if join.as_of is None:
        raise DataError(f"Join {join.name!r} has no as-of condition.")
    column = join.as_of.dimension_column
    values = table.column(column)
    kind = values.type
    if not pa.types.is_timestamp(kind):
        raise DataError(f"The as-of column {column!r} of dimension {join.name!r} must be a timestamp; it is {kind}.")
    if kind.tz is not None:
        return pc.cast(pc.cast(values, pa.timestamp("us", tz="UTC")), pa.int64())
    zone = join.as_of.dimension_timezone
    if zone is None:
        raise DataError(
            f"Time zones do not match: the as-of column {column!r} of dimension {join.name!r} is a naive timestamp "
            "(no time zone); state its zone with as_of.dimension_timezone so it can be compared with the input's."
        )
    local = pc.assume_timezone(pc.cast(values, pa.timestamp("us")), zone, ambiguous="earliest", nonexistent="earliest")
    return pc.cast(pc.cast(local, pa.timestamp("us", tz="UTC")), pa.int64())


def _deduplicate(table: pa.Table, join: JoinSpec, uri: str) -> tuple[pa.Table, int]:
    """Rows with a missing key or time never match; several rows for one key (and time) follow the policy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    group = [*join.keys.values(), *([TIME_COLUMN] if join.as_of else [])]
    mask = pc.is_valid(table.column(group[0]))
    for column in group[1:]:
        mask = pc.and_(mask, pc.is_valid(table.column(column)))
    table = table.filter(mask)
    position = pa.array(np.arange(table.num_rows))
    keyed = table.select(group).append_column("__pos", position)
    first = keyed.group_by(group, use_threads=False).aggregate([("__pos", "min"), ("__pos", "max"), ("__pos", "count")])
    dropped = int(pc.sum(pc.subtract(first.column("__pos_count"), 1)).as_py() or 0)
    if not dropped:
        return table, 0
    if join.duplicates == "error":
        raise DataError(
            f"The dimension {uri!r} of join {join.name!r} has {dropped} row(s) repeating a key"
            f"{' and time' if join.as_of else ''} ({group}); set duplicates: first or last to choose one, or fix it."
        )
    keep = first.column("__pos_min" if join.duplicates == "first" else "__pos_max")
    return table.take(pa.array(np.sort(keep.to_numpy()))), dropped


def dimensions_summary(dimensions: Mapping[str, Dimension]) -> dict[str, dict[str, Any]]:
    """Per join: the dimension's URI, sha256 and rows (what a model version records)."""
    return {name: d.to_dict() for name, d in dimensions.items()}
