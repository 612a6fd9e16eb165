"""SQL sources: templates bound as parameters, PostgreSQL and SQLite read in chunks; bad input is a clear error."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.errors import EmptySourceError, SourceAccessError
from airflow_mlops.core.ingestion.snapshot import ingest, previous_receipt
from airflow_mlops.core.ingestion.spec import IngestSpec
from airflow_mlops.core.ingestion.sql import _sql_tables, render_sql_template
from airflow_mlops.core.ingestion.types import _Conformer
from airflow_mlops.core.storage import StorageRoot
from tests.core.ingestion.support import LOCAL, MONTH_1, MONTH_2, MONTH_3, files_spec, nothing_written


# -- SQL templates -----------------------------------------------------------------------------
def test_every_template_expression_becomes_a_bound_parameter() -> None:
    import jinja2

    base = jinja2.Environment()
    base.filters["ds"] = lambda value: value.strftime("%Y-%m-%d")
    start = dt.datetime(2013, 3, 1, tzinfo=dt.UTC)
    sql, params = render_sql_template(
        "SELECT * FROM flights WHERE sched_dep_ts >= {{ data_interval_start }} "
        "{% if carrier %}AND carrier = {{ carrier }}{% endif %} AND day = {{ data_interval_start | ds }}",
        {"data_interval_start": start, "carrier": "UA'; DROP TABLE flights; --"},
        base,
    )
    assert sql == ("SELECT * FROM flights WHERE sched_dep_ts >= :mlops_t0 AND carrier = :mlops_t1 AND day = :mlops_t2")
    assert params == {"mlops_t0": start, "mlops_t1": "UA'; DROP TABLE flights; --", "mlops_t2": "2013-03-01"}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("SELECT * FROM t WHERE d = '{{ ds }}'", r"inside a quoted SQL literal \(:mlops_t0\)"),
        ("SELECT * FROM t WHERE d = {{ missing }}", r"undefined name: 'missing' is undefined"),
        ("SELECT * FROM t WHERE d = {{ ds ", r"not valid Jinja"),
        ("SELECT * FROM t WHERE d IN {{ many }}", r"must be a string, number, boolean, date, datetime or None"),
    ],
    ids=["quoted", "undefined", "syntax", "list"],
)
def test_bad_sql_templates(template: str, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        render_sql_template(template, {"ds": "2013-01-01", "many": [1, 2]})


# -- PostgreSQL --------------------------------------------------------------------------------
def sql_spec(**mapping: object) -> IngestSpec:
    return IngestSpec.from_mapping({"source": "sql", **mapping})


def test_postgres_table_matches_the_file_snapshot(pg: sa.Engine, landing: Path, root: StorageRoot) -> None:
    spec = sql_spec(table="flights", watermark_column="sched_dep_ts", chunk_rows=20_000)
    receipt = ingest(spec, root=root, pipeline="pg", partition="p", engine=pg)
    files = ingest(files_spec(landing), root=root, pipeline="files", partition="p", filesystem=LOCAL)
    assert receipt is not None and files is not None
    assert receipt.rows == MONTH_1 + MONTH_2
    assert receipt.schema_fingerprint == files.schema_fingerprint  # same types whatever the source
    assert receipt.source_watermark == "2013-02-28T23:59:00"
    assert receipt.source.startswith("SQL table 'flights' at postgresql+psycopg2://postgres@127.0.0.1")
    keys = [(c, "ascending") for c in ("sched_dep_ts", "carrier", "flight", "origin", "dest", "tailnum")]
    assert pq.read_table(receipt.uri).sort_by(keys).equals(pq.read_table(files.uri).sort_by(keys))
    again = ingest(spec, root=root, pipeline="pg", partition="p", engine=pg)
    assert again is not None and again.sha256 == receipt.sha256


def test_sql_reader_never_holds_more_than_one_chunk(pg: sa.Engine) -> None:
    spec = sql_spec(table="flights", chunk_rows=7_000)
    sizes = [t.num_rows for t in _sql_tables(spec, pg, None, None, _Conformer(spec, spec.describe()))]
    assert max(sizes) == 7_000 and sum(sizes) == MONTH_1 + MONTH_2


def test_templated_query_with_bound_values(pg: sa.Engine, root: StorageRoot) -> None:
    sql, params = render_sql_template(
        "SELECT * FROM flights WHERE sched_dep_ts >= {{ start }} AND sched_dep_ts < {{ end }} AND origin = :origin",
        {"start": dt.datetime(2013, 2, 1), "end": dt.datetime(2013, 3, 1)},
    )
    spec = sql_spec(query=sql, params={**params, "origin": "JFK"}, order_by=["sched_dep_ts", "flight"])
    receipt = ingest(spec, root=root, pipeline="q", partition="p", engine=pg)
    table = pq.read_table(receipt.uri) if receipt else None
    assert table is not None and table.num_rows == 8_421
    assert set(table["origin"].to_pylist()) == {"JFK"} and set(table["month"].to_pylist()) == {2}


def test_injection_through_a_template_value_is_just_a_value(pg: sa.Engine, root: StorageRoot) -> None:
    sql, params = render_sql_template(
        "SELECT * FROM flights WHERE carrier = {{ c }}", {"c": "x'; DROP TABLE flights; --"}
    )
    with pytest.raises(EmptySourceError):
        ingest(sql_spec(query=sql, params=params), root=root, pipeline="q", partition="p", engine=pg)
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM flights")).scalar() == MONTH_1 + MONTH_2


def test_incremental_ingestion_follows_the_watermark(pg_fresh: sa.Engine, flights: pa.Table, root: StorageRoot) -> None:
    pg = pg_fresh
    spec = sql_spec(table="flights", watermark_column="sched_dep_ts", incremental=True, order_by=["sched_dep_ts"])
    first = ingest(spec, root=root, pipeline="inc", partition="2013-02", engine=pg)
    assert first is not None and first.rows == MONTH_1 + MONTH_2 and first.since is None
    list(replay.land_postgres(flights, [3], pg))  # March lands
    second = ingest(spec, root=root, pipeline="inc", partition="2013-03", engine=pg)
    assert second is not None and second.rows == MONTH_3
    assert second.since == first.source_watermark == "2013-02-28T23:59:00"
    assert second.source_watermark == "2013-03-31T23:59:00"
    assert set(pq.read_table(second.uri)["month"].to_pylist()) == {3}
    assert previous_receipt(root, "inc", "2013-03") == first
    again = ingest(spec, root=root, pipeline="inc", partition="2013-03", engine=pg)
    assert again is not None and again.sha256 == second.sha256
    nothing_new = sql_spec(**{**_mapping(spec), "on_empty": "skip"})
    assert ingest(nothing_new, root=root, pipeline="inc", partition="2013-04", engine=pg) is None


def _mapping(spec: IngestSpec) -> dict[str, object]:
    return {"table": spec.table, "watermark_column": spec.watermark_column, "incremental": spec.incremental}


def test_since_and_until_bound_the_watermark(pg: sa.Engine, root: StorageRoot) -> None:
    spec = sql_spec(
        table="flights", watermark_column="sched_dep_ts", since="2013-01-31T23:59:59", until="2013-02-01T06:00:00"
    )
    receipt = ingest(spec, root=root, pipeline="b", partition="p", engine=pg)
    assert receipt is not None and receipt.rows == 25 and receipt.since == "2013-01-31T23:59:59"
    assert receipt.source_watermark == "2013-02-01T06:00:00"


def test_sqlite_goes_through_sqlalchemy_streaming(tmp_path: Path, flights: pa.Table, root: StorageRoot) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'flights.db'}")
    month = replay.month_rows(flights, 1).to_pandas()
    month.to_sql("flights", engine, index=False)
    spec = sql_spec(table="flights", schema={"sched_dep_ts": "timestamp", "carrier": "string"}, chunk_rows=10_000)
    receipt = ingest(spec, root=root, pipeline="lite", partition="p", engine=engine)
    assert receipt is not None and receipt.rows == MONTH_1 and receipt.row_groups == 3
    assert dict(receipt.schema)["sched_dep_ts"] == "timestamp[us]"  # declared: text in SQLite, parsed
    assert dict(receipt.schema)["dep_delay"] == "int64"  # undeclared: typed from the values SQLite returns


def test_missing_table(pg: sa.Engine, root: StorageRoot) -> None:
    with pytest.raises(SourceNotFoundError, match=r"SQL table 'flihgts' at postgresql.*: the table does not exist"):
        ingest(sql_spec(table="flihgts"), root=root, pipeline="f", partition="p", engine=pg)
    with pytest.raises(SourceNotFoundError, match=r"SQL query at .*relation \"flihgts\" does not exist"):
        ingest(sql_spec(query="SELECT * FROM flihgts"), root=root, pipeline="f", partition="p", engine=pg)
    assert nothing_written(root)


def test_wrong_credentials_and_missing_database(postgres_url: str, root: StorageRoot) -> None:
    url = sa.make_url(postgres_url)
    nobody = sa.create_engine(url.set(username="nobody_here", password="wrong"), poolclass=sa.pool.NullPool)
    with pytest.raises(
        SourceAccessError, match=r"nobody_here:\*\*\*@.*access refused, check the connection's credentials"
    ):
        ingest(sql_spec(table="flights"), root=root, pipeline="f", partition="p", engine=nobody)
    missing = sa.create_engine(url.set(database="no_such_database"), poolclass=sa.pool.NullPool)
    with pytest.raises(SourceNotFoundError, match=r"no_such_database: the database does not exist"):
        ingest(sql_spec(table="flights"), root=root, pipeline="f", partition="p", engine=missing)
    assert nothing_written(root)


@pytest.mark.parametrize("source", ["table", "query"])
def test_sql_declared_column_missing_and_uncoercible(pg: sa.Engine, root: StorageRoot, source: str) -> None:
    where = {"table": "flights"} if source == "table" else {"query": "SELECT * FROM flights"}
    with pytest.raises(
        DataError, match=r"declared column\(s\) \['seats'\] are missing from SQL (table 'flights'|query)"
    ):
        ingest(sql_spec(**where, schema={"seats": "int64"}), root=root, pipeline="f", partition="p", engine=pg)
    with pytest.raises(DataError, match=r"column 'carrier' of SQL .* cannot be converted to the declared type int64"):
        ingest(sql_spec(**where, schema={"carrier": "int64"}), root=root, pipeline="f", partition="p", engine=pg)
    assert nothing_written(root)


@pytest.mark.parametrize("on_empty", ["fail", "skip"])
def test_sql_empty_result(pg: sa.Engine, root: StorageRoot, on_empty: str) -> None:
    spec = sql_spec(query="SELECT * FROM flights WHERE month = :m", params={"m": 12}, on_empty=on_empty)
    if on_empty == "fail":
        with pytest.raises(EmptySourceError, match=r"SQL query at .* returned no rows for partition 'p'"):
            ingest(spec, root=root, pipeline="f", partition="p", engine=pg)
    else:
        assert ingest(spec, root=root, pipeline="f", partition="p", engine=pg) is None
    assert nothing_written(root)


@pytest.mark.parametrize(
    ("mapping", "error", "message"),
    [
        ({"query": "SELECT * FROM flights WHERE month = :m"}, SpecError, r"placeholder\(s\) \[':m'\] without a value"),
        ({"query": "SELECT * FROM flights", "params": {"m": 1}}, SpecError, r"'params' \['m'\] have no ':name'"),
        ({"query": "SELECT * FROM flights WHERE"}, SpecError, r"is not valid SQL for this database: .*syntax error"),
        ({"query": "WITH gone AS (DELETE FROM flights RETURNING *) SELECT * FROM gone"}, SpecError, r"data-modifying"),
        ({"query": "SELECT nextval('flights_seen') AS n"}, SpecError, r"tried to change data; .* must only read"),
        (
            {"table": "flights", "watermark_column": "updated_at", "since": 1},
            DataError,
            r"watermark column\(s\) \['updated_at'\] are not in",
        ),
        (
            {"table": "flights", "watermark_column": "sched_dep_ts", "since": "yesterday-ish"},
            DataError,
            r"rejected a value .*yesterday-ish",
        ),
    ],
    ids=["missing-param", "unused-param", "syntax", "delete", "read-only", "no-watermark-column", "bad-since"],
)
def test_bad_sql(pg: sa.Engine, root: StorageRoot, mapping: dict[str, object], error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        ingest(sql_spec(**mapping), root=root, pipeline="f", partition="p", engine=pg)
    with pg.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM flights")).scalar() == MONTH_1 + MONTH_2
    assert nothing_written(root)
