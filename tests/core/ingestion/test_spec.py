"""The ingestion spec: templated strings are coerced, every bad spec is rejected with a clear message."""

from __future__ import annotations

import re

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.ingestion.availability import WatchSpec
from airflow_mlops.core.ingestion.spec import IngestSpec


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"source": "ftp", "path": "/x"}, r"'source' parameter of IngestSpec must be 'sql', 's3' or 'local'"),
        ({"path": "/x"}, r"'source' parameter of IngestSpec is required"),
        ({"source": "local", "path": "/x.parquet", "colour": 1}, r"Unknown IngestSpec parameter\(s\) \['colour'\]"),
        ({"source": "local", "pattern": "*.csv"}, r"needs 'path'"),
        ({"source": "local", "path": "/x"}, r"'format' parameter .* cannot be inferred from '/x'"),
        ({"source": "local", "path": "/x", "format": "json"}, r"must be 'csv' or 'parquet'; got 'json'"),
        ({"source": "s3", "path": "/x.csv"}, r"needs an 's3://bucket/prefix' path. Got '/x.csv'"),
        ({"source": "local", "path": "/x", "pattern": "../*.csv"}, r"'pattern' must be relative .* Got '../\*.csv'"),
        ({"source": "local", "path": "/x.csv", "chunk_rows": "0"}, r"'chunk_rows' .* integer in \[1, 10000000\]"),
        ({"source": "local", "path": "/x.csv", "chunk_rows": "many"}, r"'chunk_rows' .* Got 'many'"),
        ({"source": "local", "path": "/x.csv", "on_empty": "ignore"}, r"'on_empty' .* 'fail' or 'skip'"),
        (
            {"source": "local", "path": "/x.csv", "keep_extra_columns": "maybe"},
            r"'keep_extra_columns' parameter of IngestSpec must be true or false. Got 'maybe'",
        ),
        ({"source": "local", "path": "/x.csv", "schema": {"a": "complex"}}, r"type 'complex' declared for column 'a'"),
        ({"source": "local", "path": "/x.csv", "keep_extra_columns": False}, r"keep_extra_columns=False needs"),
        (
            {
                "source": "local",
                "path": "/x.csv",
                "schema": {"a": "int"},
                "keep_extra_columns": False,
                "watermark_column": "ts",
            },
            r"watermark column 'ts' is dropped",
        ),
        ({"source": "local", "path": "/x.csv", "since": "2013-01-01"}, r"'since', 'until' and 'incremental' apply"),
        ({"source": "sql", "table": "t", "query": "SELECT 1"}, r"exactly one of 'query' or 'table'"),
        ({"source": "sql", "table": "flights; DROP TABLE x"}, r"plain SQL identifier .* 'flights; DROP TABLE x'"),
        ({"source": "sql", "table": "a.b.c"}, r"'table' or 'schema.table'. Got 'a.b.c'"),
        ({"source": "sql", "table": "t", "since": 3}, r"filter on 'watermark_column'; set it"),
        ({"source": "sql", "table": "t", "order_by": ["x y"]}, r"'order_by' column .* Got 'x y'"),
        ({"source": "sql", "query": "SELECT 1", "params": {"a": [1, 2]}}, r"parameter 'a' must be a string, number"),
        (
            {"source": "sql", "table": "t", "watermark_column": "ts", "incremental": True, "since": "x"},
            r"'incremental' takes 'since' from the previous snapshot",
        ),
    ],
    ids=lambda v: re.sub(r"[^A-Za-z0-9]+", "-", v).strip("-")[:48] if isinstance(v, str) else "spec",
)
def test_bad_specs_are_rejected_with_a_clear_message(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        IngestSpec.from_mapping(mapping)


def test_templated_strings_are_coerced() -> None:
    mapping = {"source": "local", "path": "/land", "pattern": "*.csv", "chunk_rows": "5000"}
    spec = IngestSpec.from_mapping({**mapping, "keep_extra_columns": "False", "schema": {"a": "int"}, "order_by": None})
    assert (spec.chunk_rows, spec.keep_extra_columns, spec.format, spec.schema) == (5000, False, "csv", (("a", "int"),))


@pytest.mark.parametrize(
    ("raw", "expected"), [("on", True), ("off", False), ("ON ", True), ("yes", True), ("0", False)]
)
def test_boolean_keys_accept_the_package_wide_spellings(raw: str, expected: bool) -> None:
    mapping = {"source": "sql", "table": "t", "watermark_column": "w", "schema": {"w": "int"}}
    spec = IngestSpec.from_mapping({**mapping, "keep_extra_columns": raw, "incremental": raw})
    assert (spec.keep_extra_columns, spec.incremental) == (expected, expected)


def test_bounds_that_rendered_to_nothing_are_no_bounds() -> None:
    spec = IngestSpec.from_mapping(
        {"source": "sql", "table": "t", "watermark_column": "w", "since": "None", "until": ""}
    )
    assert (spec.since, spec.until) == (None, None)
    assert WatchSpec.from_mapping({"source": "local", "path": "/x", "since": "None"}).since is None
