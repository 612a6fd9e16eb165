"""The replay tool lands real flights month by month: folders (CLI), S3 (CLI, moto) and PostgreSQL."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from airflow_mlops.cli import replay
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from tests.support.imports import REPO

MONTHS = {1: 27004, 2: 24951, 3: 28834}


@pytest.mark.parametrize(
    ("text", "months"),
    [("1-3", [1, 2, 3]), ("4", [4]), ("1,4,7-8", [1, 4, 7, 8]), (" 2 - 3 , 2 ", [2, 3]), ("12", [12])],
)
def test_parse_months(text: str, months: list[int]) -> None:
    assert replay.parse_months(text) == months


@pytest.mark.parametrize("text", ["0", "13", "3-1", "jan", "1-", "1-2-3", ""])
def test_parse_months_rejects_nonsense(text: str) -> None:
    with pytest.raises(SpecError, match=r"Months must"):
        replay.parse_months(text)


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_mlops", "replay", *args],
        capture_output=True, text=True, cwd=REPO, env={**os.environ, **(env or {})}, timeout=300,
    )  # fmt: skip


def test_cli_lands_one_csv_file_per_month(tmp_path: Path) -> None:
    proc = run_cli("--months", "1-2", "--to", str(tmp_path / "landing"), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "landing").iterdir()) == ["flights_2013-01.csv", "flights_2013-02.csv"]
    assert "landed 2013-02: 24951 rows" in proc.stdout
    month = pacsv.read_csv(tmp_path / "landing" / "flights_2013-02.csv")
    assert month.num_rows == MONTHS[2] and set(month["month"].to_pylist()) == {2}


def test_cli_lands_parquet_on_s3(s3_server, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    # The child reads the standard AWS variables; this process's environment is left as it is.
    creds = {"AWS_ACCESS_KEY_ID": s3_server.access_key, "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}
    target = f"s3://{s3_bucket}/landing"
    proc = run_cli("--months", "3", "--to", target, "--endpoint-url", s3_server.endpoint_url, env=creds)
    assert proc.returncode == 0, proc.stderr
    listed = s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]
    # Atomic writes leave an empty hidden ".tmp/" marker, which sensors and ingestion skip.
    assert [o["Key"] for o in listed if "/.tmp/" not in o["Key"]] == ["landing/flights_2013-03.parquet"]
    body = s3_server.client().get_object(Bucket=s3_bucket, Key="landing/flights_2013-03.parquet")["Body"].read()
    assert pq.read_table(pa_buffer(body)).num_rows == MONTHS[3]


def pa_buffer(data: bytes):  # type: ignore[no-untyped-def]
    import pyarrow as pa

    return pa.BufferReader(data)


def test_postgres_replay_appends_months_and_replays_idempotently(postgres_url: str) -> None:
    url = postgres_url.replace("postgresql+psycopg2://", "postgres://")  # the libpq spelling works too
    replay.replay([1], url)
    replay.replay([1, 2], url)  # month 1 again: replaced, not duplicated
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.text("SELECT month, count(*) FROM flights GROUP BY month")).all())
        kinds = dict(
            conn.execute(
                sa.text("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'flights'")
            ).all()
        )
    assert counts == {1: MONTHS[1], 2: MONTHS[2]}
    assert kinds["time_hour"] == "timestamp with time zone" and kinds["sched_dep_ts"] == "timestamp without time zone"


def test_cli_errors_name_the_problem(tmp_path: Path) -> None:
    proc = run_cli("--months", "13", "--to", str(tmp_path))
    assert proc.returncode == 2 and "Months must be ranges within 1..12" in proc.stderr
    proc = run_cli("--months", "1", "--to", str(tmp_path), "--source", str(tmp_path / "missing.parquet"))
    assert proc.returncode == 2 and "missing.parquet' does not exist; pass --source" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_default_source_is_read_under_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The package never looks beside its own files (gone in a wheel): the project root is the cwd."""
    monkeypatch.chdir(REPO)
    assert replay.load_flights().num_rows == 336776
    monkeypatch.chdir(tmp_path)
    expected = tmp_path / "include" / "data" / "nycflights13" / "flights.parquet"
    with pytest.raises(SourceNotFoundError, match=re.escape(f"No flights file at '{expected}'")):
        replay.load_flights()
