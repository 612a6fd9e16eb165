"""The read-only check of source queries: writes in every spelling refused, reads left alone."""

from __future__ import annotations

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.ingestion.availability import WatchSpec
from airflow_mlops.core.ingestion.readonly import check_read_only
from airflow_mlops.core.ingestion.spec import IngestSpec

READS = [
    "SELECT * FROM t",
    "  select a from t;",
    "(SELECT 1) UNION ALL (SELECT 2)",
    "WITH x AS (SELECT 1) SELECT * FROM x",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT n FROM r",
    "SELECT 'DELETE FROM t' AS s",
    "SELECT 'it''s; DELETE' AS s",
    'SELECT "delete", "a""; DROP TABLE t; --" FROM t',
    "SELECT `update` FROM t",
    "-- DELETE FROM t\nSELECT 1",
    "/* DROP TABLE t; */ SELECT 1",
    "SELECT replace(a, 'x', 'y'), updated_at, created, deleted FROM t",
    "VALUES (1), (2)",
    "TABLE flights",
    "SELECT x::text, ts AT TIME ZONE 'UTC' FROM t WHERE ts >= :mlops_t0 AND y = $1",
    "SELECT 1;;",
]
WRITES = {
    "DELETE FROM t RETURNING *": "starts with DELETE",
    "  /* hi */ DeLeTe FROM t": "starts with DELETE",
    "(DELETE FROM t RETURNING *)": "starts with DELETE",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d": "keyword(s) DELETE",
    "with x as (update t set a = 1 returning a) select * from x": "keyword(s) UPDATE",
    "WITH a AS (SELECT 1), b AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM b": "keyword(s) INSERT",
    "WITH m AS (MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE) SELECT 1": "DELETE, MERGE",
    "SELECT * INTO t2 FROM t": "keyword(s) INTO",
    "SELECT * FROM t FOR UPDATE": "keyword(s) UPDATE",
    "SELECT 1; DELETE FROM t": "one statement",
    "SELECT 1;\n--x\nVACUUM": "one statement",
    "EXPLAIN ANALYZE DELETE FROM t": "starts with EXPLAIN",
    "PRAGMA user_version = 3": "starts with PRAGMA",
    "SET ROLE admin": "starts with SET",
    "DO $$ BEGIN DELETE FROM t; END $$": "starts with DO",
    "CALL p()": "starts with CALL",
    "COPY t TO '/tmp/x'": "starts with COPY",
    "REPLACE INTO t VALUES (1)": "starts with REPLACE",
    # Lexing conventions that differ between databases: every one of them is tried.
    "SELECT 1 /* /* */ DELETE FROM t; -- */": "DELETE",  # comments that do not nest
    "SELECT 1 /* /* */ ' */ DELETE FROM t": "DELETE",  # comments that nest
    "SELECT '\\' ; DELETE FROM t; -- '": "one statement",  # backslash escapes
    "SELECT 1 # '\nDELETE FROM t": "DELETE",  # '#' comments
    "SELECT $a$ ; DELETE FROM t ; $a$": "one statement",  # $tag$ is not a literal everywhere
    "SELECT [x] ; DELETE FROM t": "one statement",  # [x] is not a name everywhere
    "": "starts with nothing",
}


@pytest.mark.parametrize("query", READS)
def test_reading_queries_pass(query: str) -> None:
    check_read_only(query)


@pytest.mark.parametrize(("query", "message"), list(WRITES.items()), ids=list(range(len(WRITES))))
def test_writing_queries_are_refused_naming_what_was_found(query: str, message: str) -> None:
    with pytest.raises(SpecError, match="A source query must") as raised:
        check_read_only(query)
    assert message in str(raised.value)
    assert "SELECT, WITH, VALUES or TABLE" in str(raised.value)


def test_ingestion_and_availability_specs_refuse_a_writing_query_when_built() -> None:
    with pytest.raises(SpecError, match="must only read; this one starts with DELETE"):
        IngestSpec.from_mapping({"source": "sql", "query": "DELETE FROM t RETURNING *"})
    with pytest.raises(SpecError, match="must only read; this one contains the data-modifying keyword"):
        WatchSpec.from_mapping({"source": "sql", "query": "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d"})
