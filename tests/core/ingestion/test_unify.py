"""One schema for the files of one ingestion: all-null columns do not decide, real conflicts are refused."""

from __future__ import annotations

import pyarrow as pa
import pytest

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.ingestion.unify import unify_file_schemas


def test_the_first_file_with_values_decides_and_is_remembered() -> None:
    unified = unify_file_schemas(
        [
            (pa.schema([("k", pa.int32()), ("x", pa.null())]), "file a"),
            (pa.schema([("k", pa.int64()), ("x", pa.float32())]), "file b"),
            (pa.schema([("k", pa.float64()), ("x", pa.int64())]), "file c"),
        ],
        declared=(),
    )
    assert unified.schema == pa.schema([("k", pa.int64()), ("x", pa.float64())])
    assert unified.type_origin == {"k": "file a", "x": "file b"} and unified.warnings == []


def test_a_column_null_everywhere_keeps_its_null_type_for_the_conformer() -> None:
    unified = unify_file_schemas([(pa.schema([("x", pa.null())]), "a"), (pa.schema([("x", pa.null())]), "b")], ())
    assert unified.schema.field("x").type == pa.null()


@pytest.mark.parametrize(
    ("first", "later", "message"),
    [
        (pa.string(), pa.float64(), r"'x' is string in a but double in b; .* declare the column's type in 'schema'"),
        (pa.timestamp("s", tz="UTC"), pa.timestamp("ms"), r"'x' holds tz-aware timestamps in a but naive ones .* in b"),
        (pa.timestamp("us"), pa.timestamp("us", tz="Europe/Paris"), r"tz-aware timestamps in b but naive .* in a"),
        (pa.date32(), pa.string(), r"'x' is date32\[day\] in a but string in b"),
    ],
)
def test_files_that_disagree_are_refused_naming_column_and_files(
    first: pa.DataType, later: pa.DataType, message: str
) -> None:
    with pytest.raises(DataError, match=message):
        unify_file_schemas([(pa.schema([("x", first)]), "a"), (pa.schema([("x", later)]), "b")], declared=())


def test_declared_columns_are_only_compared_for_their_timezone() -> None:
    schemas = [(pa.schema([("x", pa.string())]), "a"), (pa.schema([("x", pa.int64())]), "b")]
    assert unify_file_schemas(schemas, declared=("x",)).schema.field("x").type == pa.string()
    with pytest.raises(DataError, match="naive ones"):
        unify_file_schemas(
            [(pa.schema([("x", pa.timestamp("us", "UTC"))]), "a"), (pa.schema([("x", pa.timestamp("us"))]), "b")],
            declared=("x",),
        )


def test_duplicate_names_are_refused_and_names_alike_but_for_case_are_a_warning() -> None:
    with pytest.raises(DataError, match=r"b has duplicate column names \['x'\]"):
        unify_file_schemas([(pa.schema([("x", pa.int64())]), "a"), (pa.schema([("x", pa.int64())] * 2), "b")], ())
    unified = unify_file_schemas([(pa.schema([("X", pa.int64()), ("x", pa.int64())]), "a")], ())
    assert unified.warnings == [
        "The columns ['X', 'x'] of a differ only in case; they are kept apart, but tools that ignore case in column "
        "names (most SQL engines, Spark, Excel) will confuse them."
    ]
