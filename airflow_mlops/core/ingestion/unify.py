"""One source schema for the files of one ingestion, decided before the first row is written.

The snapshot's schema must not depend on which file happened to come first. A column that holds only
nulls in one file says nothing about its type, so it does not fix it: the first file with values does,
and every later file is converted to that type. Files that really disagree (text in one file, numbers in
another; tz-aware timestamps in one, naive ones in another, which would silently be taken as UTC) are
refused, naming the column and both files.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

import pyarrow as pa

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.ingestion.types import normal_type


@dataclass
class UnifiedSchema:
    """The schema to plan the snapshot from, where each column's type came from, and what to warn about."""

    schema: pa.Schema
    type_origin: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def unify_file_schemas(sources: Sequence[tuple[pa.Schema, str]], declared: Collection[str]) -> UnifiedSchema:
    """Unify the schemas of ``sources`` (``(schema, where)`` pairs in reading order).

    Undeclared columns take the normalised type of the first file where they are not all-null; a later
    file may differ only by integers against floats (converted, and refused if a value would be lost).
    Declared columns are converted to their declared type anyway, so only their timezones are compared.
    """
    first_schema = sources[0][0]
    unified = UnifiedSchema(first_schema)
    types: dict[str, pa.DataType] = {}
    timezones: dict[str, tuple[str | None, str]] = {}  # column -> (tz of its first timestamps, their file)
    for schema, where in sources:
        _check_names(list(schema.names), where, unified.warnings)
        for fld in schema:
            _check_timezone(fld, where, timezones)
            if fld.name in declared or pa.types.is_null(fld.type):
                continue  # an all-null column says nothing about the type
            source = normal_type(fld.type)
            if fld.name not in types:
                types[fld.name] = source
                unified.type_origin[fld.name] = where
            else:
                _check_agree(fld.name, types[fld.name], source, unified.type_origin[fld.name], where)
    fields = [pa.field(n, types.get(n, first_schema.field(n).type)) for n in first_schema.names]
    unified.schema = pa.schema(fields)
    return unified


def _check_names(names: list[str], where: str, warnings: list[str]) -> None:
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DataError(f"{where} has duplicate column names {duplicates}; every column needs its own name.")
    lowered = [n.lower() for n in names]
    alike = sorted(n for n in names if lowered.count(n.lower()) > 1)
    if alike:
        warnings.append(
            f"The columns {alike} of {where} differ only in case; they are kept apart, but tools that ignore "
            "case in column names (most SQL engines, Spark, Excel) will confuse them."
        )


def _check_timezone(fld: pa.Field, where: str, timezones: dict[str, tuple[str | None, str]]) -> None:
    if not pa.types.is_timestamp(fld.type):
        return
    tz = fld.type.tz
    if fld.name not in timezones:
        timezones[fld.name] = (tz, where)
        return
    first_tz, first_where = timezones[fld.name]
    if (first_tz is None) != (tz is None):
        aware, naive = (first_where, where) if tz is None else (where, first_where)
        raise DataError(
            f"The column {fld.name!r} holds tz-aware timestamps in {aware} but naive ones (no offset) in {naive}; "
            "the naive ones would silently be taken as UTC. Expected every file to hold tz-aware timestamps, or "
            "every file naive ones: write the offset into the naive file."
        )


def _check_agree(name: str, decided: pa.DataType, source: pa.DataType, origin: str, where: str) -> None:
    numbers = (pa.int64(), pa.float64())
    if source == decided or (source in numbers and decided in numbers):
        return
    raise DataError(
        f"The column {name!r} is {decided} in {origin} but {source} in {where}; the files of one source must "
        f"agree on each column's type. Fix the file, or declare the column's type in 'schema' to convert "
        "every file to it."
    )
