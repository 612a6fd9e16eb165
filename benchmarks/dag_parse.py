"""Parse time of each reference DAG file against a bare one-task DAG, measured the same way.

Each measurement is a fresh Python process that has already imported ``airflow.sdk`` and the DagBag
machinery and frozen them out of the garbage collector's reach (as Airflow's DAG processor has, with
``gc.freeze()``) and then times ``DagBag`` loading one file: module import,
DAG construction and Airflow's checks. Files are measured interleaved, round after round, so that
machine noise hits all of them alike; the figure per file is the median over rounds.

The package's modules are byte-compiled first (into their ``__pycache__`` folders, which git ignores),
as a wheel install does: otherwise, with ``PYTHONDONTWRITEBYTECODE`` set, every probe would compile them
from source and the figure would be Python's compiler, not the import. A second baseline is a bare DAG scheduled on
one ``x-mlops://`` asset: the first asset with a URI scheme makes Airflow load every provider's asset URI
handlers (with the Amazon provider installed, that imports boto3), a cost any asset-scheduled DAG pays.

Run: .venv/bin/python benchmarks/dag_parse.py [--rounds 7]
Last line: BENCH dag_parse worst_ratio=<x> ... worst_ratio_vs_asset_dag=<y>
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BARE_DAG = """
from datetime import datetime
from airflow.sdk import dag, task


@dag(schedule=None, start_date=datetime(2024, 1, 1), catchup=False)
def bare():
    @task
    def one():
        return 1

    one()


bare()
"""

BARE_ASSET_DAG = """
from datetime import datetime
from airflow.sdk import Asset, dag, task


@dag(schedule=Asset("x-mlops://bench/dataset"), start_date=datetime(2024, 1, 1), catchup=False)
def bare_asset():
    @task
    def one():
        return 1

    one()


bare_asset()
"""

PROBE = r"""
import sys, time, warnings
warnings.simplefilter("ignore")
import gc
import airflow.sdk
from airflow.dag_processing.dagbag import DagBag
# Airflow's DAG processor freezes what it has imported before it forks the parsing processes
# (DagFileProcessorManager.before_run: gc.freeze()), so a parse never pays a garbage collection that
# scans Airflow's own objects. Without it, the first full collection lands inside whichever parse
# allocates enough, and the figure measures the collector, not the file.
gc.freeze()
path = sys.argv[1]
start = time.perf_counter()
bag = DagBag(dag_folder=path, safe_mode=False)
elapsed = time.perf_counter() - start
if bag.import_errors:
    raise SystemExit(f"import errors in {path}: {bag.import_errors}")
if not bag.dags:
    raise SystemExit(f"no DAG found in {path}")
print(f"{elapsed:.6f}")
"""


def measure(path: Path, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, env=env, cwd=REPO, check=False
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:] or out.stdout[-3000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dag-parse-") as tmp:
        env = {**os.environ, "AIRFLOW_HOME": tmp, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(REPO / "airflow_mlops")], env=env, check=True, cwd=REPO
        )
        bare = Path(tmp) / "bare_dag.py"
        bare.write_text(BARE_DAG)
        bare_asset = Path(tmp) / "bare_asset_dag.py"
        bare_asset.write_text(BARE_ASSET_DAG)
        files = sorted(p for p in (REPO / "dags").glob("*.py") if not p.name.startswith("_"))
        times: dict[Path, list[float]] = {p: [] for p in [bare, bare_asset, *files]}
        measure(bare, env)  # warm the OS file cache before the first counted round
        for _ in range(args.rounds):
            for path in times:
                times[path].append(measure(path, env))

    base = statistics.median(times[bare])
    asset_base = statistics.median(times[bare_asset])
    print(f"{'file':40s} {'median ms':>10s} {'ratio':>7s} {'vs asset DAG':>13s}")
    print(f"{'(bare one-task DAG)':40s} {base * 1000:10.1f} {1.0:7.2f}")
    label = "(bare DAG scheduled on an mlops asset)"
    print(f"{label:40s} {asset_base * 1000:10.1f} {asset_base / base:7.2f} {1.0:13.2f}")
    worst = worst_asset = 0.0
    for path in files:
        median = statistics.median(times[path])
        ratio = median / base
        worst = max(worst, ratio)
        worst_asset = max(worst_asset, median / asset_base)
        print(f"{'dags/' + path.name:40s} {median * 1000:10.1f} {ratio:7.2f} {median / asset_base:13.2f}")
    if not files:
        print("(no DAG files in dags/ yet)")
    print(
        f"BENCH dag_parse worst_ratio={worst:.2f} files={len(files)} rounds={args.rounds} "
        f"worst_ratio_vs_asset_dag={worst_asset:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
