"""Core ingestion on real data: local files, S3 on moto, PostgreSQL. Every bad input is a clear error."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.snapshot import (
    Availability,
    EmptySourceError,
    IngestSpec,
    SourceAccessError,
    WatchSpec,
    _Conformer,
    _sql_tables,
    ingest,
    partition_key,
    previous_receipt,
    probe,
    render_sql_template,
)
from airflow_mlops.core.storage import StorageRoot, s3_filesystem

LOCAL = pafs.LocalFileSystem()
MONTH_1, MONTH_2, MONTH_3 = 27004, 24951, 28834


@pytest.fixture(scope="module")
def flights() -> pa.Table:
    return replay.load_flights()


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory, flights: pa.Table) -> Path:
    """Months 1 and 2 of 2013, each as Parquet and as CSV, the way the replay tool lands them."""
    folder = tmp_path_factory.mktemp("landing")
    for fmt in ("parquet", "csv"):
        list(replay.land_files(flights, [1, 2], StorageRoot(str(folder)), fmt))  # type: ignore[arg-type]
    return folder


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(str(tmp_path / "storage"))


def files_spec(path: Path | str, pattern: str | None = "*.parquet", **extra: object) -> IngestSpec:
    return IngestSpec.from_mapping({"source": "local", "path": str(path), "pattern": pattern, **extra})


def nothing_written(root: StorageRoot) -> bool:
    return root.list_files(root.uri) == [] and not any(Path(root.uri).rglob(".tmp-*"))


def write_month(flights: pa.Table, month: int, path: Path) -> pa.Table:
    rows = replay.month_rows(flights, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, path)
    return rows


# -- files: the good path ------------------------------------------------------------------------
def test_parquet_landing_becomes_one_normalised_snapshot(landing: Path, root: StorageRoot) -> None:
    spec = files_spec(landing, watermark_column="sched_dep_ts", chunk_rows=20_000)
    receipt = ingest(spec, root=root, pipeline="flights", partition="2013-02", filesystem=LOCAL)

    assert receipt is not None
    assert receipt.uri == f"{root.uri}/flights/snapshots/2013-02/data.parquet"
    assert receipt.rows == MONTH_1 + MONTH_2
    assert receipt.source_watermark == "2013-02-28T23:59:00"
    schema = dict(receipt.schema)
    assert schema["sched_dep_ts"] == "timestamp[us]"
    assert schema["time_hour"] == "timestamp[us, tz=UTC]"
    assert schema["cancelled"] == schema["dep_time"] == "int64"  # int8/int32 in the source
    assert schema["carrier"] == "string"
    table = pq.read_table(receipt.uri)
    assert table.num_rows == receipt.rows and table.column_names == list(receipt.columns)
    metadata = pq.ParquetFile(receipt.uri).metadata
    assert [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)] == [20_000, 20_000, 11_955]
    assert root.sha256(receipt.uri) == receipt.sha256
    assert json.loads(root.read_bytes(receipt.uri.replace("data.parquet", "receipt.json"))) == receipt.to_dict()


def test_rerun_of_a_partition_writes_identical_bytes(landing: Path, root: StorageRoot) -> None:
    spec = files_spec(landing, chunk_rows=30_000)
    first = ingest(spec, root=root, pipeline="flights", partition="p", filesystem=LOCAL)
    assert first is not None
    before = Path(first.uri).read_bytes()
    second = ingest(spec, root=root, pipeline="flights", partition="p", filesystem=LOCAL)
    assert second == first
    assert Path(first.uri).read_bytes() == before
    assert sorted(p.name for p in Path(first.uri).parent.iterdir()) == ["data.parquet", "receipt.json"]


def test_csv_and_parquet_landings_of_the_same_rows_give_the_same_snapshot(landing: Path, root: StorageRoot) -> None:
    from_parquet = ingest(files_spec(landing, "*.parquet"), root=root, pipeline="a", partition="p", filesystem=LOCAL)
    from_csv = ingest(files_spec(landing, "*.csv"), root=root, pipeline="b", partition="p", filesystem=LOCAL)
    assert from_parquet is not None and from_csv is not None
    assert from_csv.schema_fingerprint == from_parquet.schema_fingerprint
    assert from_csv.sha256 == from_parquet.sha256


def test_row_groups_do_not_depend_on_how_the_source_is_split(
    tmp_path: Path, flights: pa.Table, root: StorageRoot
) -> None:
    rows = pa.concat_tables([replay.month_rows(flights, 1), replay.month_rows(flights, 2)])
    (tmp_path / "one").mkdir()
    pq.write_table(rows, tmp_path / "one" / "all.parquet", row_group_size=7_000)
    (tmp_path / "two").mkdir()
    pq.write_table(rows.slice(0, 33_333), tmp_path / "two" / "a.parquet", row_group_size=5_000)
    pq.write_table(rows.slice(33_333), tmp_path / "two" / "b.parquet")
    one = ingest(
        files_spec(tmp_path / "one", chunk_rows=16_384), root=root, pipeline="x", partition="1", filesystem=LOCAL
    )
    two = ingest(
        files_spec(tmp_path / "two", chunk_rows=16_384), root=root, pipeline="x", partition="2", filesystem=LOCAL
    )
    assert one is not None and two is not None and one.sha256 == two.sha256


def test_declared_schema_comes_first_with_its_types_and_extras_can_be_dropped(landing: Path, root: StorageRoot) -> None:
    declared = {"arr_delay": "float64", "carrier": "string", "sched_dep_ts": "timestamptz"}
    kept = ingest(files_spec(landing, schema=declared), root=root, pipeline="k", partition="p", filesystem=LOCAL)
    dropped = ingest(
        files_spec(landing, schema=declared, keep_extra_columns="false"),
        root=root,
        pipeline="d",
        partition="p",
        filesystem=LOCAL,
    )
    assert kept is not None and dropped is not None
    assert list(kept.columns[:3]) == ["arr_delay", "carrier", "sched_dep_ts"] and len(kept.columns) == 22
    assert dict(dropped.schema) == {
        "arr_delay": "double",
        "carrier": "string",
        "sched_dep_ts": "timestamp[us, tz=UTC]",
    }
    assert pq.read_table(dropped.uri).column_names == ["arr_delay", "carrier", "sched_dep_ts"]


def test_declared_timestamps_convert_alike_from_csv_and_parquet(landing: Path, root: StorageRoot) -> None:
    declared = {"sched_dep_ts": "timestamptz", "time_hour": "timestamp", "month": "string"}
    snapshots = [
        ingest(
            files_spec(landing, f"*.{fmt}", schema=declared), root=root, pipeline=fmt, partition="p", filesystem=LOCAL
        )
        for fmt in ("parquet", "csv")
    ]
    assert snapshots[0] is not None and snapshots[1] is not None
    assert snapshots[0].sha256 == snapshots[1].sha256
    first = pq.read_table(snapshots[0].uri).slice(0, 1).to_pylist()[0]
    assert first["sched_dep_ts"] == dt.datetime(2013, 1, 1, 5, 15, tzinfo=dt.UTC)  # naive text read as UTC
    assert first["time_hour"] == dt.datetime(2013, 1, 1, 10, 0)  # an instant, kept as its UTC wall time
    assert first["month"] == "1"


@pytest.mark.parametrize("pattern", ["*.parquet", "*.csv"])
def test_numbers_are_not_silently_read_as_epoch_times(landing: Path, root: StorageRoot, pattern: str) -> None:
    spec = files_spec(landing, pattern, schema={"dep_time": "timestamp"})
    with pytest.raises(DataError, match=r"column 'dep_time' of .* holds numbers \(int\d+\); the declared type"):
        ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


def test_hidden_and_temporary_files_never_match(tmp_path: Path, flights: pa.Table, root: StorageRoot) -> None:
    write_month(flights, 1, tmp_path / "flights_2013-01.parquet")
    write_month(flights, 2, tmp_path / ".tmp-flights_2013-02.parquet")
    write_month(flights, 3, tmp_path / "_staging" / "flights_2013-03.parquet")
    receipt = ingest(files_spec(tmp_path, "**/*.parquet"), root=root, pipeline="h", partition="p", filesystem=LOCAL)
    assert receipt is not None and receipt.rows == MONTH_1


# -- files: bad input ----------------------------------------------------------------------------
def test_missing_folder(tmp_path: Path, root: StorageRoot) -> None:
    with pytest.raises(SourceNotFoundError, match=r"No such folder or file: '.*nowhere'"):
        ingest(files_spec(tmp_path / "nowhere"), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


def test_no_file_matches_the_pattern(landing: Path, root: StorageRoot) -> None:
    with pytest.raises(SourceNotFoundError, match=r"No parquet file matches 'flights_2014-\*.parquet' under"):
        ingest(files_spec(landing, "flights_2014-*.parquet"), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


def test_corrupt_parquet_after_a_good_file_writes_nothing_and_keeps_the_old_snapshot(
    tmp_path: Path, flights: pa.Table, root: StorageRoot
) -> None:
    write_month(flights, 1, tmp_path / "a.parquet")
    good = ingest(files_spec(tmp_path, chunk_rows=5_000), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert good is not None
    before = Path(good.uri).read_bytes()
    (tmp_path / "b.parquet").write_bytes(b"PAR1 this is not parquet at all")
    with pytest.raises(DataError, match=r"parquet file '.*b\.parquet' is not a readable Parquet file"):
        ingest(files_spec(tmp_path, chunk_rows=5_000), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert Path(good.uri).read_bytes() == before  # the earlier snapshot of the partition is untouched
    assert not list(Path(good.uri).parent.glob(".tmp-*"))


def test_csv_with_a_broken_row(tmp_path: Path, root: StorageRoot) -> None:
    (tmp_path / "bad.csv").write_text("carrier,flight\nUA,1545\nAA,1141,extra\n")
    with pytest.raises(DataError, match=r"csv file '.*bad\.csv' has a malformed row .*Row #3: Expected 2 columns"):
        ingest(files_spec(tmp_path, "*.csv"), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


@pytest.mark.parametrize("declared", [{}, {"carrier": "string"}], ids=["inferred", "declared-string"])
def test_csv_with_bytes_that_are_not_utf8(tmp_path: Path, root: StorageRoot, declared: dict[str, str]) -> None:
    (tmp_path / "latin1.csv").write_bytes("carrier,flight\nUA,1545\nCaf\xe9,1\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.csv.* not valid UTF-8; expected UTF-8 text"):
        ingest(files_spec(tmp_path, "*.csv", schema=declared), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


@pytest.mark.parametrize("pattern", ["*.parquet", "*.csv"])
def test_declared_column_missing(landing: Path, root: StorageRoot, pattern: str) -> None:
    spec = files_spec(landing, pattern, schema={"carrier": "string", "seats": "int64"})
    with pytest.raises(DataError, match=r"declared column\(s\) \['seats'\] are missing from .*flights_2013-01"):
        ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


@pytest.mark.parametrize("pattern", ["*.parquet", "*.csv"])
def test_type_that_cannot_be_coerced(landing: Path, root: StorageRoot, pattern: str) -> None:
    spec = files_spec(landing, pattern, schema={"tailnum": "int64"})
    expected = (
        r"(column 'tailnum'.*cannot be converted to the declared type int64"
        r"|does not fit its column's type: .*int64: invalid value 'N14228')"
    )
    with pytest.raises(DataError, match=expected):
        ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)


def test_a_later_file_with_new_columns_is_schema_drift(tmp_path: Path, flights: pa.Table, root: StorageRoot) -> None:
    write_month(flights, 1, tmp_path / "a.parquet")
    rows = replay.month_rows(flights, 2)
    pq.write_table(rows.append_column("seats", pa.array([1] * rows.num_rows)), tmp_path / "b.parquet")
    with pytest.raises(DataError, match=r"b\.parquet' has column\(s\) \['seats'\] that earlier data"):
        ingest(files_spec(tmp_path), root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert nothing_written(root)
    # Declaring the schema and dropping extras reads both files.
    spec = files_spec(tmp_path, schema={"carrier": "string", "flight": "int64"}, keep_extra_columns=False)
    receipt = ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL)
    assert receipt is not None and receipt.rows == MONTH_1 + MONTH_2


@pytest.mark.parametrize("on_empty", ["fail", "skip"])
def test_empty_source_fails_or_skips(tmp_path: Path, flights: pa.Table, root: StorageRoot, on_empty: str) -> None:
    pq.write_table(flights.slice(0, 0), tmp_path / "empty.parquet")
    spec = files_spec(tmp_path, on_empty=on_empty)
    if on_empty == "fail":
        with pytest.raises(EmptySourceError, match=r"files '.*\*\.parquet' returned no rows .*on_empty='skip'"):
            ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL)
    else:
        assert ingest(spec, root=root, pipeline="f", partition="p", filesystem=LOCAL) is None
    assert nothing_written(root)


# -- the spec -------------------------------------------------------------------------------------
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
        ({"source": "local", "path": "/x.csv", "keep_extra_columns": "maybe"}, r"'keep_extra_columns' .* boolean"),
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


def test_bounds_that_rendered_to_nothing_are_no_bounds() -> None:
    spec = IngestSpec.from_mapping(
        {"source": "sql", "table": "t", "watermark_column": "w", "since": "None", "until": ""}
    )
    assert (spec.since, spec.until) == (None, None)
    assert WatchSpec.from_mapping({"source": "local", "path": "/x", "since": "None"}).since is None


def test_partition_keys() -> None:
    assert partition_key(dt.datetime(2013, 4, 1, tzinfo=dt.UTC)) == "2013-04-01T00:00:00+00:00"
    assert partition_key(dt.datetime(2013, 4, 1, 2, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == (
        "2013-04-01T00:00:00+00:00"
    )
    assert partition_key(dt.date(2013, 4, 1)) == "2013-04-01"
    with pytest.raises(SpecError, match=r"partition key .* Got '../etc'"):
        partition_key("../etc")


# -- SQL templates -------------------------------------------------------------------------------
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


# -- S3 (moto) -----------------------------------------------------------------------------------
@pytest.fixture
def s3_landing(s3_server, s3_bucket: str, flights: pa.Table) -> tuple[pafs.FileSystem, str]:  # type: ignore[no-untyped-def]
    filesystem = s3_filesystem(
        access_key=s3_server.access_key, secret_key=s3_server.secret_key, endpoint_url=s3_server.endpoint_url
    )
    prefix = f"s3://{s3_bucket}/landing"
    landed = replay.replay([1], prefix, fmt="csv", filesystem=filesystem)
    assert [x.rows for x in landed] == [MONTH_1]
    return filesystem, prefix


def test_s3_csv_landing(s3_landing: tuple[pafs.FileSystem, str], landing: Path, root: StorageRoot) -> None:
    filesystem, prefix = s3_landing
    spec = IngestSpec.from_mapping({"source": "s3", "path": prefix, "pattern": "flights_*.csv"})
    receipt = ingest(spec, root=root, pipeline="s3", partition="p", filesystem=filesystem)
    assert receipt is not None and receipt.rows == MONTH_1
    local = ingest(files_spec(landing, "flights_2013-01.csv"), root=root, pipeline="l", partition="p", filesystem=LOCAL)
    assert local is not None and receipt.sha256 == local.sha256


def test_s3_missing_key_and_missing_bucket(s3_landing: tuple[pafs.FileSystem, str], root: StorageRoot) -> None:
    filesystem, prefix = s3_landing
    spec = IngestSpec.from_mapping({"source": "s3", "path": f"{prefix}/flights_2013-07.csv"})
    with pytest.raises(SourceNotFoundError, match=r"No csv file matches '\*' under 's3://.*/flights_2013-07.csv'"):
        ingest(spec, root=root, pipeline="s3", partition="p", filesystem=filesystem)
    spec = IngestSpec.from_mapping({"source": "s3", "path": "s3://no-such-bucket-here/landing", "pattern": "*.csv"})
    with pytest.raises(SourceNotFoundError, match=r"S3 bucket 'no-such-bucket-here' .* does not exist"):
        ingest(spec, root=root, pipeline="s3", partition="p", filesystem=filesystem)
    assert nothing_written(root)


def test_s3_wrong_credentials(s3_server, s3_landing: tuple[pafs.FileSystem, str], root: StorageRoot) -> None:  # type: ignore[no-untyped-def]
    import urllib.request

    _, prefix = s3_landing
    wrong = s3_filesystem(access_key="AKIAWRONG", secret_key="wrong", endpoint_url=s3_server.endpoint_url)
    spec = IngestSpec.from_mapping({"source": "s3", "path": prefix, "pattern": "*.csv"})

    def set_auth(count: str) -> None:  # moto checks credentials after `count` unauthenticated requests
        request = urllib.request.Request(
            f"{s3_server.endpoint_url}/moto-api/reset-auth", data=count.encode(), headers={"Content-Type": "text/plain"}
        )
        urllib.request.urlopen(request).read()

    set_auth("0")
    try:
        with pytest.raises(SourceAccessError, match=r"Access to 's3://.*/landing' was refused .*credentials"):
            ingest(spec, root=root, pipeline="s3", partition="p", filesystem=wrong)
    finally:
        set_auth("inf")
    assert nothing_written(root)


# -- PostgreSQL ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg(postgres_server, flights: pa.Table) -> Iterator[sa.Engine]:  # type: ignore[no-untyped-def]
    """One database for the module holding months 1 and 2 in table ``flights``; tests only read it."""
    with postgres_server.database() as url:
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        list(replay.land_postgres(flights, [1, 2], engine))
        with engine.begin() as conn:
            conn.execute(sa.text("CREATE SEQUENCE flights_seen"))
        yield engine


@pytest.fixture
def pg_fresh(postgres_url: str, flights: pa.Table) -> sa.Engine:
    """A database of its own holding months 1 and 2, for a test that lands more data."""
    engine = sa.create_engine(postgres_url, poolclass=sa.pool.NullPool)
    list(replay.land_postgres(flights, [1, 2], engine))
    return engine


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
        ({"query": "SELEKT * FROM flights"}, SpecError, r"is not valid SQL for this database: .*syntax error"),
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


# -- availability --------------------------------------------------------------------------------
def test_probe_files_newer_than_last_seen(tmp_path: Path, flights: pa.Table) -> None:
    for month in (1, 2, 3):
        write_month(flights, month, tmp_path / f"flights_2013-{month:02d}.parquet")
        stamp = dt.datetime(2024, 1, month, tzinfo=dt.UTC).timestamp()
        os.utime(tmp_path / f"flights_2013-{month:02d}.parquet", (stamp, stamp))
    everything = probe(
        WatchSpec.from_mapping({"source": "local", "path": str(tmp_path), "pattern": "*.parquet"}), filesystem=LOCAL
    )
    assert (everything.count, everything.last_item) == (3, "flights_2013-03.parquet")
    assert everything.newest_modified == "2024-01-03T00:00:00+00:00"
    newer = WatchSpec.from_mapping(
        {"source": "local", "path": str(tmp_path), "since": "2024-01-01T12:00:00Z", "min_count": 3}
    )
    report = probe(newer, filesystem=LOCAL)
    assert (report.count, report.ready) == (2, False)
    assert report.items == (str(tmp_path / "flights_2013-02.parquet"), str(tmp_path / "flights_2013-03.parquet"))
    after = WatchSpec.from_mapping({"source": "local", "path": str(tmp_path), "start_after": "flights_2013-02.parquet"})
    assert probe(after, filesystem=LOCAL).items == (str(tmp_path / "flights_2013-03.parquet"),)
    nothing = WatchSpec.from_mapping({"source": "local", "path": str(tmp_path / "not-yet")})
    assert probe(nothing, filesystem=LOCAL).count == 0  # a landing folder that does not exist yet is empty


def test_probe_sql_rows_past_a_watermark(pg: sa.Engine) -> None:
    spec = WatchSpec.from_mapping(
        {"source": "sql", "table": "flights", "watermark_column": "sched_dep_ts", "since": "2013-02-28T20:00:00"}
        | {"min_count": 100}
    )
    report = probe(spec, engine=pg)
    assert (report.count, report.ready, report.watermark) == (79, False, "2013-02-28T23:59:00")
    with pytest.raises(SourceNotFoundError, match=r"SQL table 'flihgts' .* the table does not exist"):
        probe(WatchSpec.from_mapping({"source": "sql", "table": "flihgts"}), engine=pg)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (
            {"source": "local", "path": "/x", "since": "last tuesday"},
            r"'since' .* ISO 8601 date-time .* 'last tuesday'",
        ),
        ({"source": "local", "path": "/x", "min_count": 0}, r"'min_count' .* integer in \[1, "),
        ({"source": "sql", "table": "t", "since": 5}, r"'since' compares with 'watermark_column'; set it"),
        ({"source": "sql", "table": "t", "path": "/x"}, r"'path', 'pattern' and 'start_after' apply to file sources"),
        ({"source": "s3", "path": "bucket/x"}, r"needs an 's3://bucket/prefix' path"),
    ],
    ids=["since-not-a-time", "min-count", "since-without-column", "path-for-sql", "s3-path"],
)
def test_bad_watch_specs(mapping: dict[str, object], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        WatchSpec.from_mapping(mapping)


def test_availability_reports_are_rebuilt_strictly() -> None:
    report = Availability(source="files", count=2, min_count=1, items=("a", "b"), last_item="b")
    assert Availability.from_dict(report.to_dict()) == report
    for broken in (
        {**report.to_dict(), "count": "2"},
        {**report.to_dict(), "ready": False},
        {k: v for k, v in report.to_dict().items() if k != "items"},
        {**report.to_dict(), "extra": 1},
        "available",
    ):
        with pytest.raises(SpecError, match="availability report"):
            Availability.from_dict(broken)
