"""Drift check at 1M rows x 20 columns: our core path against Evidently's DataDriftPreset, same run.

Data: a seeded reference and current frame, 1,000,000 rows each, 14 numeric columns (normal,
log-normal, integer-valued, two with 3-4 distinct values, one with 10% nulls) and 6 categorical
columns (3 to 300 categories); 7 columns carry a real shift, the others are redrawn from the same
distribution. Both are written to Parquet (row groups of 128k rows), as the operator finds its inputs.

- **ours**: ``check_batch`` on the two Parquet files (``compute_drift`` reading one column at a time,
  every row: the default ``sample_size`` of 1M keeps them all; the HTML report, forced on with
  ``html_report: true``, from the default ``report_sample_size`` of 100k rows per side; the JSON
  summary written), i.e. what ``CheckDriftOperator`` runs. The report alone is timed again after it
  (the split printed).
- **Evidently**: ``Report([DataDriftPreset()])`` on the full in-memory frames (``Dataset.from_pandas``,
  ``run``, ``get_html_str``); reading the Parquet files into frames is not timed.

Each side runs in its own fresh process after its imports, so neither pays for the other's memory or
warm caches; the figure per side is the median over ``--rounds`` (1 by default: Evidently takes
minutes here). Peak resident memory of each process is reported too. Verdicts are compared column by
column (Evidently's per-column test status against ours), and scores must agree to 1e-9.

Run: .venv/bin/python benchmarks/drift.py [--rows 1000000] [--rounds 1] [--columns 20] [--tree CHECKOUT]
Last line: BENCH drift time_ratio=<ours/evidently> report_mib=<our report's size> verdicts_agree=<1 or 0>
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NUMERIC = [f"num_{i:02d}" for i in range(14)]
CATEGORICAL = [f"cat_{i}" for i in range(6)]

OURS = r"""
import json, os, resource, sys, tempfile, time
sys.path.insert(0, sys.argv[1])
from airflow_mlops.core.drift import DriftSpec, check_batch, render_reports
from airflow_mlops.core.storage import StorageRoot
import evidently  # imported before timing, as in a worker that already imported it
columns = {"numeric_features": json.loads(sys.argv[4]), "categorical_features": json.loads(sys.argv[5])}
spec = DriftSpec.from_mapping({**columns, "html_report": True})  # the report is always rendered here
root = StorageRoot(tempfile.mkdtemp(prefix="bench-drift-out-"))
start = time.perf_counter()
outcome = check_batch(root, sys.argv[2], sys.argv[3], spec, pipeline="bench", partition="p")
elapsed = time.perf_counter() - start
result = outcome.result
start = time.perf_counter()
render_reports(sys.argv[2], sys.argv[3], result, spec)  # the report alone again, for the split of the time
verdict_seconds = elapsed - (time.perf_counter() - start)
verdicts = {c.column: [c.drifted, c.score, c.method] for c in result.features}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
html_bytes = os.path.getsize(outcome.outputs.report_uri)
print("RESULT " + json.dumps({"seconds": elapsed, "verdict_seconds": verdict_seconds, "verdicts": verdicts,
                              "share": result.drift_share, "rss_mb": rss, "html_bytes": html_bytes}))
"""

EVIDENTLY = r"""
import json, resource, sys, time
import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset
numeric, categorical = json.loads(sys.argv[4]), json.loads(sys.argv[5])
reference, current = pd.read_parquet(sys.argv[2]), pd.read_parquet(sys.argv[3])
start = time.perf_counter()
definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
snapshot = Report([DataDriftPreset()], include_tests=True).run(
    current_data=Dataset.from_pandas(current, data_definition=definition),
    reference_data=Dataset.from_pandas(reference, data_definition=definition),
)
html = snapshot.get_html_str(as_iframe=False)
elapsed = time.perf_counter() - start
found = snapshot.dict()
scores = {m["config"]["column"]: m["value"] for m in found["metrics"] if "column" in m["config"]}
share = next(m["value"]["share"] for m in found["metrics"] if "DriftedColumnsCount" in m["metric_name"])
drifted = {t["metric_config"]["params"]["column"]: t["status"] == "FAIL" for t in found["tests"]
           if t["name"].startswith("Value Drift for column")}
verdicts = {c: [drifted[c], scores[c], None] for c in scores}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"seconds": elapsed, "verdicts": verdicts, "share": share, "rss_mb": rss,
                              "html_bytes": len(html)}))
"""


def make_frames(rows: int, folder: Path) -> tuple[str, str]:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    def frame(seed: int, shifted: bool) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        data: dict[str, object] = {}
        for i, column in enumerate(NUMERIC):
            kind = i % 5
            moved = shifted and i in (0, 3, 6, 9)
            if kind == 0:
                values = rng.normal(0.25 * moved, 1.0, rows)
            elif kind == 1:
                values = rng.lognormal(0.2 * moved, 0.8, rows)
            elif kind == 2:
                values = rng.integers(0, 2400, rows).astype("float64") + 120 * moved
            elif kind == 3:
                values = rng.choice([0.0, 1.0, 2.0], rows, p=[0.5, 0.3, 0.2] if not moved else [0.35, 0.35, 0.3])
            else:
                values = rng.choice([1.0, 2.0, 3.0, 4.0], rows)
            if i == 13:
                values = np.where(rng.random(rows) < 0.1, np.nan, values)
            data[column] = values
        for i, column in enumerate(CATEGORICAL):
            levels = [3, 8, 20, 50, 120, 300][i]
            weights = np.linspace(1.0, 1.0 + (2.0 if shifted and i in (1, 4, 5) else 0.0), levels)
            data[column] = rng.choice(np.array([f"{column}_{k}" for k in range(levels)], dtype=object),
                                      rows, p=weights / weights.sum())  # fmt: skip
        return pd.DataFrame(data)

    paths = []
    for name, seed, shifted in (("reference", 1, False), ("current", 2, True)):
        path = folder / f"{name}.parquet"
        pq.write_table(pa.Table.from_pandas(frame(seed, shifted), preserve_index=False), path, row_group_size=131072)
        paths.append(str(path))
    return paths[0], paths[1]


def run(code: str, reference: str, current: str, tree: Path) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tree), reference, current, json.dumps(NUMERIC), json.dumps(CATEGORICAL)],
        capture_output=True, text=True, cwd=REPO, timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--columns", type=int, default=20, help="first N of the 20 columns (about 7 in 10 numeric)")
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose airflow_mlops is measured")
    args = parser.parse_args()
    categorical = max(1, round(args.columns * len(CATEGORICAL) / (len(NUMERIC) + len(CATEGORICAL))))
    del NUMERIC[args.columns - categorical :], CATEGORICAL[categorical:]
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as folder:
        reference, current = make_frames(args.rows, Path(folder))
        ours, theirs = [], []
        for _ in range(args.rounds):  # interleaved, so machine noise hits both alike
            ours.append(run(OURS, reference, current, args.tree))
            theirs.append(run(EVIDENTLY, reference, current, args.tree))
    mine, peer = ours[-1], theirs[-1]
    agree = all(mine["verdicts"][c][0] == peer["verdicts"][c][0] for c in NUMERIC + CATEGORICAL)
    scores_agree = all(
        abs(mine["verdicts"][c][1] - peer["verdicts"][c][1]) <= 1e-9 * max(1.0, abs(peer["verdicts"][c][1]))
        for c in NUMERIC + CATEGORICAL
    )
    ours_s = statistics.median(r["seconds"] for r in ours)
    theirs_s = statistics.median(r["seconds"] for r in theirs)
    print(f"rows={args.rows} columns={len(NUMERIC) + len(CATEGORICAL)} rounds={args.rounds}")
    print(f"{'column':8} {'method':14} {'ours':>10} {'evidently':>10} drifted")
    for column in NUMERIC + CATEGORICAL:
        drifted, score, method = mine["verdicts"][column]
        print(f"{column:8} {method:14} {score:10.5f} {peer['verdicts'][column][1]:10.5f} "
              f"{drifted}/{peer['verdicts'][column][0]}")  # fmt: skip
    print(f"drift share: ours {mine['share']:.4f}, evidently {peer['share']:.4f}; scores agree to 1e-9: {scores_agree}")
    verdict_s = statistics.median(r["verdict_seconds"] for r in ours)
    print(f"time: ours {ours_s:.1f} s (verdicts {verdict_s:.1f} s + HTML report), evidently {theirs_s:.1f} s")
    print(f"peak RSS: ours {mine['rss_mb']:.0f} MB, evidently {peer['rss_mb']:.0f} MB")
    report_mib = mine["html_bytes"] / 2**20
    print(f"HTML report: ours {report_mib:.2f} MiB, evidently {peer['html_bytes'] / 2**20:.2f} MiB")
    agreed = int(agree and mine["share"] == peer["share"])
    print(f"BENCH drift time_ratio={ours_s / theirs_s:.3f} report_mib={report_mib:.2f} verdicts_agree={agreed}")


if __name__ == "__main__":
    main()
