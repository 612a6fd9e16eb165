"""Bad inputs of ingestion, validation and pipeline files, called the way a user's own DAG calls them.

Each refused case asserts the error class, that the message names what was wrong (and what was
expected), and that nothing changed: the storage root lists the same files, temporaries included, and a
SQL source holds the same rows. Each accepted case asserts the snapshot and the warning it carries, in
the receipt and in the task log. ``docs/reliability.md`` lists every case with its outcome.
"""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.ingestion import EmptySourceError
from airflow_mlops.core.storage import StorageRoot
from tests.reliability.test_bad_inputs import context

REPO = Path(__file__).resolve().parents[2]
SQLITE_ROWS = 3


@dataclass
class Place:
    home: Path
    root: StorageRoot
    landing: Path
    sqlite: Path

    def files(self) -> list[str]:
        """Every file under the storage root, temporaries and hidden files included."""
        base = Path(self.root.uri)
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())

    def sqlite_rows(self) -> int:
        with sqlite3.connect(self.sqlite) as conn:
            return int(conn.execute("SELECT count(*) FROM flights").fetchone()[0])


@pytest.fixture
def place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Place:
    landing = tmp_path / "landing"
    landing.mkdir()
    db = tmp_path / "src.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE flights (id INTEGER, carrier TEXT, dep_delay REAL)")
        conn.executemany("INSERT INTO flights VALUES (?, ?, ?)", [(1, "UA", 2.0), (2, "AA", -1.5), (3, "B6", 0.0)])
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("AIRFLOW_CONN_BAD_INPUT_SQL", f"sqlite:///{db}")
    return Place(tmp_path, StorageRoot(str(tmp_path / "storage")), landing, db)


def ingest(p: Place, **changes: Any) -> dict[str, Any]:
    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    arguments: dict[str, Any] = {
        "pipeline": "flights", "source": "local", "path": str(p.landing), "storage_root": p.root.uri,
        "sql_conn_id": "bad_input_sql",
    }  # fmt: skip
    result: dict[str, Any] = IngestDatasetOperator(task_id="ingest", **{**arguments, **changes}).execute(context())
    return result


def ingest_sql(p: Place, query: str, **changes: Any) -> dict[str, Any]:
    return ingest(p, source="sql", path=None, query=query, **changes)


# -- landing files -------------------------------------------------------------------------------------
def land(p: Place, name: str, content: bytes | str | pa.Table) -> Path:
    path = p.landing / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pa.Table):
        pq.write_table(content, path)
    else:
        path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def timestamps(tz: str | None) -> pa.Table:
    return pa.table({"ts": pa.array([dt.datetime(2013, 1, 1, 5)], pa.timestamp("us", tz=tz)), "n": [1]})


def truncated_parquet(p: Place) -> None:
    whole = land(p, "flights_2013-01.parquet", pa.table({"n": list(range(1000))}))
    whole.write_bytes(whole.read_bytes()[:-6])  # the footer length and the closing magic bytes are gone


def spark_folder(p: Place) -> None:
    land(p, "flights_2013-01.parquet", pa.table({"n": [1]}))
    land(p, "flights_2013-02.parquet/part-00000.parquet", pa.table({"n": [2]}))


def duplicate_parquet_columns(p: Place) -> None:
    land(p, "flights.parquet", pa.Table.from_arrays([pa.array([1]), pa.array([2])], names=["x", "x"]))


# -- validation and pipeline files -----------------------------------------------------------------------
def validate_with_suite(p: Place, suite: str) -> None:
    from airflow_mlops.core import contracts
    from airflow_mlops.operators.validation import ValidateDatasetOperator

    snapshot = p.root.layout("flights", contracts.KIND_SNAPSHOT, "2013-02", "data.parquet")
    path = Path(snapshot)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"dep_delay": [1.0, 2.0]}), path)
    (p.home / "suite.json").write_text(suite)
    ValidateDatasetOperator(
        task_id="validate", snapshot_uri=snapshot, pipeline="flights", partition="2013-02",
        suite_uri=str(p.home / "suite.json"), storage_root=p.root.uri,
    ).execute(context())  # fmt: skip


def load_pipeline_file(p: Place, edit: Callable[[str], str]) -> None:
    from airflow_mlops.core.pipeline.file import PipelineFile

    path = p.home / "flights_delay.yaml"
    path.write_text(edit((REPO / "include" / "pipelines" / "flights_delay.yaml").read_text()))
    PipelineFile.from_yaml(path, REPO)


def tab_indented(text: str) -> str:
    lines = text.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("  "))
    lines[index] = "\t" + lines[index].lstrip()
    return "\n".join(lines) + "\n"


def without_training(text: str) -> str:
    kept: list[str] = []
    skipping = False
    for line in text.splitlines():
        if line and not line[0].isspace():
            skipping = line.startswith("training:")
        if not skipping:
            kept.append(line)
    return "\n".join(kept) + "\n"


@dataclass(frozen=True)
class Case:
    run: Callable[[Place], Any]
    error: type[BaseException]
    names: tuple[str, ...]  # what the message must name: the offending item and what was expected


CASES: dict[str, Case] = {
    # the probe's cases
    "csv-semicolons-read-with-the-default-delimiter": Case(
        lambda p: (land(p, "f.csv", "sched_dep_ts;year\n2013-01-01;2013\n"), ingest(p, pattern="*.csv")),
        DataError,
        ("'sched_dep_ts;year'", "'csv_delimiter'", "csv_delimiter=';'"),
    ),
    "text-in-one-file-numbers-in-the-next": Case(
        lambda p: (
            land(p, "a.parquet", pa.table({"x": ["late"]})),
            land(p, "b.parquet", pa.table({"x": [1.5]})),
            ingest(p, pattern="*.parquet"),
        ),
        DataError,
        ("'x'", "a.parquet", "b.parquet", "'schema'"),
    ),
    "naive-timestamps-after-tz-aware-ones": Case(
        lambda p: (
            land(p, "a.parquet", timestamps("UTC")),
            land(p, "b.parquet", timestamps(None)),
            ingest(p, pattern="*.parquet"),
        ),
        DataError,
        ("'ts'", "a.parquet", "naive ones (no offset) in parquet file", "b.parquet"),
    ),
    "tz-aware-timestamps-after-naive-ones-of-a-declared-column": Case(
        lambda p: (
            land(p, "a.parquet", timestamps(None)),
            land(p, "b.parquet", timestamps("Europe/Paris")),
            ingest(p, pattern="*.parquet", schema={"ts": "timestamptz"}),
        ),
        DataError,
        ("'ts'", "tz-aware timestamps in parquet file", "b.parquet"),
    ),
    "sqlite-delete-returning": Case(
        lambda p: ingest_sql(p, "DELETE FROM flights RETURNING *"), SpecError, ("must only read", "DELETE")
    ),
    "parquet-with-two-columns-named-x": Case(
        lambda p: (duplicate_parquet_columns(p), ingest(p, pattern="*.parquet")),
        DataError,
        ("['x']", "flights.parquet"),
    ),
    # new cases
    "csv-with-only-a-header": Case(
        lambda p: (land(p, "f.csv", "id,carrier\n"), ingest(p, pattern="*.csv")),
        EmptySourceError,
        ("returned no rows", "on_empty='skip'"),
    ),
    "csv-file-of-zero-bytes": Case(
        lambda p: (land(p, "f.csv", ""), ingest(p, pattern="*.csv")), DataError, ("f.csv", "is empty", "header line")
    ),
    "tab-separated-csv-read-with-the-default-delimiter": Case(
        lambda p: (land(p, "f.csv", "id\tcarrier\n1\tUA\n"), ingest(p, pattern="*.csv")),
        DataError,
        ("'csv_delimiter'", "csv_delimiter='\\t'"),
    ),
    "csv-with-a-duplicate-header": Case(
        lambda p: (land(p, "f.csv", "id,id\n1,2\n"), ingest(p, pattern="*.csv")),
        DataError,
        ("f.csv", "multiple columns named id"),
    ),
    "glob-matches-a-folder": Case(
        lambda p: (spark_folder(p), ingest(p, pattern="flights_*.parquet")),
        SpecError,
        ("['flights_2013-02.parquet']", "'flights_2013-02.parquet/*'"),
    ),
    "watermark-column-missing-from-a-later-file": Case(
        lambda p: (
            land(p, "a.parquet", pa.table({"n": [1], "updated": [1]})),
            land(p, "b.parquet", pa.table({"n": [2]})),
            ingest(p, pattern="*.parquet", watermark_column="updated"),
        ),
        DataError,
        ("b.parquet", "'updated'"),
    ),
    "fraction-in-a-later-file-of-an-integer-column": Case(
        lambda p: (
            land(p, "a.parquet", pa.table({"n": [1]})),
            land(p, "b.parquet", pa.table({"n": [1.5]})),
            ingest(p, pattern="*.parquet"),
        ),
        DataError,
        ("'n'", "b.parquet", "int64", "its type in parquet file", "a.parquet"),
    ),
    "parquet-truncated-mid-footer": Case(
        lambda p: (truncated_parquet(p), ingest(p, pattern="*.parquet")),
        DataError,
        ("flights_2013-01.parquet", "not a readable Parquet file"),
    ),
    "chunk-rows-zero-through-a-template-string": Case(
        lambda p: (land(p, "a.parquet", pa.table({"n": [1]})), ingest(p, pattern="*.parquet", chunk_rows="0")),
        SpecError,
        ("'chunk_rows'", "'0'", "[1, "),
    ),
    "schema-rendered-to-json-text": Case(
        lambda p: (land(p, "a.parquet", pa.table({"n": [1]})), ingest(p, pattern="*.parquet", schema='{"n": "int"}')),
        SpecError,
        ("'schema'", "mapping"),
    ),
    "sql-two-statements": Case(
        lambda p: ingest_sql(p, "SELECT * FROM flights; DELETE FROM flights"), SpecError, ("one statement",)
    ),
    "sql-select-into": Case(
        lambda p: ingest_sql(p, "SELECT * INTO flights_copy FROM flights"), SpecError, ("must only read", "INTO")
    ),
    "sql-delete-hidden-after-a-comment": Case(
        lambda p: ingest_sql(p, "/* report */ -- monthly\n  dElEtE FROM flights RETURNING id"),
        SpecError,
        ("must only read", "DELETE"),
    ),
    "validation-suite-json-that-is-a-list": Case(
        lambda p: validate_with_suite(p, "[1, 2]"), SpecError, ("suite.json", "must be a JSON object")
    ),
    "validation-suite-json-without-expectations": Case(
        lambda p: validate_with_suite(p, '{"name": "flights"}'), SpecError, ("suite.json", "at least one expectation")
    ),
    "pipeline-file-with-a-tab-indented-line": Case(
        lambda p: load_pipeline_file(p, tab_indented), SpecError, ("flights_delay.yaml", "not valid YAML", "line")
    ),
    "pipeline-file-without-training": Case(
        lambda p: load_pipeline_file(p, without_training), SpecError, ("flights_delay.yaml", "'training'")
    ),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_by_name_and_changes_nothing(place: Place, case: Case) -> None:
    before = place.files()
    with pytest.raises(case.error) as raised:
        case.run(place)
    for name in case.names:
        assert name in str(raised.value), str(raised.value)
    after = [f for f in place.files() if not f.startswith("flights/snapshots/2013-02/data.parquet")]
    assert after == [f for f in before if not f.startswith("flights/snapshots/2013-02/data.parquet")]
    assert not [f for f in place.files() if "validation" in f or ".tmp" in f]
    assert place.sqlite_rows() == SQLITE_ROWS


# -- writing queries, in many spellings, refused before they reach any database --------------------------
WRITING_QUERIES = [
    "DELETE FROM flights RETURNING *",
    "delete from flights returning id",
    "  \n\tDELETE\nFROM flights RETURNING *;",
    "(DELETE FROM flights RETURNING *)",
    "WITH gone AS (DELETE FROM flights RETURNING *) SELECT * FROM gone",
    "with x as (select 1), y as (update flights set dep_delay = 0 returning *) select * from y",
    "INSERT INTO flights VALUES (9, 'XX', 0) RETURNING *",
    "INSERT OR REPLACE INTO flights VALUES (9, 'XX', 0) RETURNING *",
    "REPLACE INTO flights VALUES (9, 'XX', 0) RETURNING *",
    "UPDATE flights SET dep_delay = 0 RETURNING *",
    "SELECT * FROM flights; DROP TABLE flights",
    "SELECT * FROM flights FOR UPDATE",
    "-- just a comment\nDELETE FROM flights RETURNING *",
    "SELECT 1 /* /* */ DELETE FROM flights RETURNING * -- */",
    "SELECT '\\'; DELETE FROM flights RETURNING *; -- '",
    "SELECT [x]; DELETE FROM flights RETURNING *",
    "SELECT $q$; DELETE FROM flights RETURNING *; $q$",
    "SELECT 1 # '\nDELETE FROM flights RETURNING *",
    "EXPLAIN QUERY PLAN DELETE FROM flights",
    "PRAGMA writable_schema = 1",
    "ATTACH DATABASE '/tmp/x.db' AS x",
    "VACUUM",
]


@pytest.mark.parametrize("query", WRITING_QUERIES)
def test_a_writing_query_is_refused_before_it_runs(place: Place, query: str) -> None:
    with pytest.raises(SpecError, match=r"A source query must (only read|be one statement)"):
        ingest_sql(place, query)
    assert place.sqlite_rows() == SQLITE_ROWS
    assert place.files() == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT id, carrier FROM flights ORDER BY id",
        "select * from flights where carrier <> 'DELETE FROM flights'",
        'SELECT "id" AS "update" FROM flights -- DELETE FROM flights',
        "/* INSERT */ WITH f AS (SELECT * FROM flights) SELECT id, replace(carrier, 'A', 'B') AS c FROM f",
        "SELECT id, carrier FROM flights WHERE {{ ds }} IS NOT NULL",
        "VALUES (1, 'UA', 2.0)",
    ],
)
def test_reading_queries_still_read(place: Place, query: str) -> None:
    receipt = ingest_sql(place, query)
    assert receipt["rows"] >= 1 and receipt["warnings"] == []


def test_postgres_refuses_a_writing_query_by_saying_it_must_only_read(
    place: Place, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE flights (id int, carrier text)"))
        conn.execute(sa.text("INSERT INTO flights VALUES (1, 'UA'), (2, 'AA')"))
    monkeypatch.setenv("AIRFLOW_CONN_BAD_INPUT_PG", postgres_url.replace("postgresql+psycopg2://", "postgresql://"))
    for query, order_by in (("DELETE FROM flights RETURNING *", None), ("DELETE FROM flights RETURNING id", ["id"])):
        with pytest.raises(SpecError, match="A source query must only read; this one starts with DELETE"):
            ingest_sql(place, query, sql_conn_id="bad_input_pg", order_by=order_by)
    assert ingest_sql(place, "SELECT * FROM flights", sql_conn_id="bad_input_pg", order_by=["id"])["rows"] == 2
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM flights")).scalar() == 2


# -- accepted inputs: the snapshot is right, and anything doubtful is a warning in the receipt and the log --
def snapshot(p: Place, receipt: dict[str, Any]) -> pa.Table:
    return pq.read_table(receipt["uri"])


def test_a_column_all_null_in_the_first_file_takes_its_type_from_a_later_file(place: Place) -> None:
    land(place, "a.parquet", pa.table({"n": [1, 2], "x": pa.array([None, None], pa.null())}))
    land(place, "b.parquet", pa.table({"n": [3], "x": [1.5]}))
    land(place, "c.csv", "n,x\n1,\n")  # and the same through CSV, where an empty column is all-null
    land(place, "d.csv", "n,x\n2,2.25\n")
    parquet = ingest(place, pattern="*.parquet", partition="parquet")
    csv = ingest(place, pattern="*.csv", partition="csv")
    assert parquet["schema"]["x"] == csv["schema"]["x"] == "double"
    assert snapshot(place, parquet).column("x").to_pylist() == [None, None, 1.5]
    assert snapshot(place, csv).column("x").to_pylist() == [None, 2.25]


def sparse_sqlite_column(p: Place) -> None:
    with sqlite3.connect(p.sqlite) as conn:
        conn.execute("CREATE TABLE sparse (id INTEGER, late REAL)")
        conn.executemany("INSERT INTO sparse VALUES (?, ?)", [(1, None), (2, None), (3, 1.5)])


def test_a_sql_column_all_null_in_the_first_chunk_is_never_turned_into_text(place: Place) -> None:
    sparse_sqlite_column(place)
    query = "SELECT id, late FROM sparse ORDER BY id"
    with pytest.raises(DataError, match=r"'late' of SQL query held only NULLs in the first chunk.* float values"):
        ingest_sql(place, query, chunk_rows="2")
    assert place.files() == []
    declared = ingest_sql(place, query, chunk_rows="2", schema={"late": "float64"})
    assert snapshot(place, declared).column("late").to_pylist() == [None, None, 1.5]


def test_an_integer_column_takes_the_floats_of_a_later_file_when_nothing_is_lost(place: Place) -> None:
    land(place, "a.parquet", pa.table({"n": [1.5]}))
    land(place, "b.parquet", pa.table({"n": [2]}))
    receipt = ingest(place, pattern="*.parquet")
    assert receipt["schema"]["n"] == "double" and snapshot(place, receipt).column("n").to_pylist() == [1.5, 2.0]


def test_a_bom_in_a_csv_header_does_not_reach_the_column_name(place: Place) -> None:
    land(place, "f.csv", "\ufeffid,carrier\n1,UA\n".encode())
    receipt = ingest(place, pattern="*.csv")
    assert receipt["columns"] == ["id", "carrier"] and receipt["warnings"] == []


def test_columns_differing_only_in_case_are_kept_with_a_warning_in_the_receipt_and_the_log(
    place: Place, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    land(place, "f.parquet", pa.table({"Carrier": ["UA"], "carrier": ["ua"]}))
    with caplog.at_level(logging.WARNING):
        receipt = ingest(place, pattern="*.parquet")
    assert receipt["columns"] == ["Carrier", "carrier"]
    (warning,) = receipt["warnings"]
    assert "['Carrier', 'carrier']" in warning and "differ only in case" in warning and "f.parquet" in warning
    task_log = capsys.readouterr().out + caplog.text  # Airflow's task logger writes through structlog
    assert any(warning in line and "warning" in line.lower() for line in task_log.splitlines())
    saved = place.root.read_bytes(receipt["uri"].replace("data.parquet", "receipt.json"))
    assert b"differ only in case" in saved


def test_the_catalogue_holds_the_probe_cases_and_at_least_ten_new_ones() -> None:
    assert len(CASES) >= 16
