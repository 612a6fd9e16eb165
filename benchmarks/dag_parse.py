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

Each reference DAG file is also measured against its **same-shape peer**: a generated file defining the
same DAGs (ids, task ids, edges, params with their schemas, schedule, start date, tags) from
``EmptyOperator`` only, so the ratio is what this package's modules and operators add, not what Airflow
pays per task and per edge.

Run: .venv/bin/python benchmarks/dag_parse.py [--rounds 7] [--tree CHECKOUT]
Last lines: BENCH dag_parse worst_ratio=<x> ... worst_ratio_vs_asset_dag=<y>, then
BENCH dag_parse vs_same_shape=<worst file/peer ratio>
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

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
print(f"{elapsed:.6f}")
"""


# Dumps the shape of every DAG a file defines (in a helper process, not timed): ids, edges, params,
# schedule, start date; :func:`peer_source` writes the same shape with EmptyOperators.
SHAPE = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from airflow.dag_processing.dagbag import DagBag
from airflow.sdk.definitions.asset import Asset, AssetAll, AssetAny

def condition(node):
    if isinstance(node, Asset):
        return {"asset": [node.name, node.uri]}
    kind = "all" if isinstance(node, AssetAll) else "any"
    return {kind: [condition(n) for n in node.objects]}

def schedule(timetable):
    name = type(timetable).__name__
    if name == "AssetTriggeredTimetable":
        return {"assets": condition(timetable.asset_condition)}
    if name == "CronDataIntervalTimetable":
        return {"cron": timetable._expression}
    if name == "DeltaDataIntervalTimetable":
        return {"delta": timetable._delta.total_seconds()}
    return None

bag = DagBag(dag_folder=sys.argv[1], safe_mode=False)
shapes = []
for dag in bag.dags.values():
    params = {k: {"default": p.value, "description": p.description, **p.schema}
              for k, p in ((k, dag.params.get_param(k)) for k in dag.params)}
    tasks = [[t.task_id, sorted(t.upstream_task_ids)] for t in dag.tasks]
    shapes.append({"dag_id": dag.dag_id, "schedule": schedule(dag.timetable), "params": params, "tasks": tasks,
                   "start": dag.start_date.isoformat() if dag.start_date else None, "catchup": dag.catchup,
                   "tags": sorted(dag.tags)})
print(json.dumps(shapes, default=str))
"""

PEER_HEAD = """
import datetime
from airflow.sdk import DAG, Asset, Param
from airflow.sdk.definitions.asset import AssetAll, AssetAny
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable
from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable
from airflow.providers.standard.operators.empty import EmptyOperator
"""


def _condition_source(node: dict[str, Any]) -> str:
    if "asset" in node:
        name, uri = node["asset"]
        return f"Asset(name={name!r}, uri={uri!r})"
    kind, items = next(iter(node.items()))
    return f"{'AssetAll' if kind == 'all' else 'AssetAny'}({', '.join(_condition_source(n) for n in items)})"


def _schedule_source(schedule: dict[str, Any] | None) -> str:
    if schedule is None:
        return "None"
    if "assets" in schedule:
        return f"AssetTriggeredTimetable({_condition_source(schedule['assets'])})"
    if "cron" in schedule:
        return f"CronDataIntervalTimetable({schedule['cron']!r}, timezone='UTC')"
    return f"DeltaDataIntervalTimetable(datetime.timedelta(seconds={schedule['delta']!r}))"


def peer_source(shapes: list[dict[str, Any]]) -> str:
    """A DAG file defining the same DAGs (ids, edges, params, schedule) with EmptyOperators only."""
    lines = [PEER_HEAD]
    for i, shape in enumerate(shapes):
        start = f"datetime.datetime.fromisoformat({shape['start']!r})" if shape["start"] else "None"
        params = "{" + ", ".join(f"{k!r}: Param(**{v!r})" for k, v in shape["params"].items()) + "}"
        lines += [
            f"with DAG({shape['dag_id']!r}, schedule={_schedule_source(shape['schedule'])}, start_date={start}, "
            f"catchup={shape['catchup']!r}, tags={shape['tags']!r}, params={params}) as dag_{i}:",
            f"    t = {{i: EmptyOperator(task_id=i) for i in {[t[0] for t in shape['tasks']]!r}}}",
            f"    for task, upstream in {shape['tasks']!r}:",
            "        if upstream:",
            "            t[task].set_upstream([t[u] for u in upstream])",
        ]
    return "\n".join(lines) + "\n"


def same_shape_peer(path: Path, folder: Path, env: dict[str, str]) -> Path:
    out = subprocess.run(
        [sys.executable, "-c", SHAPE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=path.parents[1],
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    peer = folder / f"peer_{path.name}"
    peer.write_text(peer_source(json.loads(out.stdout.strip().splitlines()[-1])))
    return peer


def measure(path: Path, env: dict[str, str]) -> float:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=env["PYTHONPATH"].split(os.pathsep)[0],
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:] or out.stdout[-3000:])
    return float(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose dags/ and package are measured")
    args = parser.parse_args()
    tree = args.tree.resolve()

    with tempfile.TemporaryDirectory(prefix="dag-parse-") as tmp:
        path = os.pathsep.join([str(tree), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        env = {**os.environ, "AIRFLOW_HOME": tmp, "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "PYTHONPATH": path}
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", str(tree / "airflow_mlops")], env=env, check=True, cwd=tree
        )
        bare = Path(tmp) / "bare_dag.py"
        bare.write_text(BARE_DAG)
        bare_asset = Path(tmp) / "bare_asset_dag.py"
        bare_asset.write_text(BARE_ASSET_DAG)
        files = sorted(p for p in (tree / "dags").glob("*.py") if not p.name.startswith("_"))
        peers = {p: same_shape_peer(p, Path(tmp), env) for p in files}
        times: dict[Path, list[float]] = {p: [] for p in [bare, bare_asset, *files, *peers.values()]}
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
    worst = worst_asset = worst_peer = 0.0
    for path in files:
        median = statistics.median(times[path])
        ratio = median / base
        worst = max(worst, ratio)
        worst_asset = max(worst_asset, median / asset_base)
        print(f"{'dags/' + path.name:40s} {median * 1000:10.1f} {ratio:7.2f} {median / asset_base:13.2f}")
        peer = statistics.median(times[peers[path]])
        per_round = [o / q for o, q in zip(times[path], times[peers[path]], strict=True)]
        worst_peer = max(worst_peer, median / peer)
        print(
            f"{'  same shape, EmptyOperators':40s} {peer * 1000:10.1f} {peer / base:7.2f}   file/peer "
            f"{median / peer:.2f} (per round {min(per_round):.2f}-{max(per_round):.2f})"
        )
    if not files:
        print("(no DAG files in dags/ yet)")
    print(
        f"BENCH dag_parse worst_ratio={worst:.2f} files={len(files)} rounds={args.rounds} "
        f"worst_ratio_vs_asset_dag={worst_asset:.2f}"
    )
    print(f"BENCH dag_parse vs_same_shape={worst_peer:.2f} files={len(files)} rounds={args.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
