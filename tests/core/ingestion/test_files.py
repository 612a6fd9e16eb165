"""File sources: local folders and S3 on moto. Every bad input is a clear error and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import DataError, SourceNotFoundError
from airflow_mlops.core.ingestion.errors import EmptySourceError, SourceAccessError
from airflow_mlops.core.ingestion.snapshot import ingest
from airflow_mlops.core.ingestion.spec import IngestSpec
from airflow_mlops.core.storage import StorageRoot, s3_filesystem
from tests.core.ingestion.support import LOCAL, MONTH_1, MONTH_2, files_spec, nothing_written, write_month


# -- listing -----------------------------------------------------------------------------------
def test_hidden_and_temporary_files_never_match(tmp_path: Path, flights: pa.Table, root: StorageRoot) -> None:
    write_month(flights, 1, tmp_path / "flights_2013-01.parquet")
    write_month(flights, 2, tmp_path / ".tmp-flights_2013-02.parquet")
    write_month(flights, 3, tmp_path / "_staging" / "flights_2013-03.parquet")
    receipt = ingest(files_spec(tmp_path, "**/*.parquet"), root=root, pipeline="h", partition="p", filesystem=LOCAL)
    assert receipt is not None and receipt.rows == MONTH_1


# -- bad input ---------------------------------------------------------------------------------
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


# -- S3 (moto) ---------------------------------------------------------------------------------
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
