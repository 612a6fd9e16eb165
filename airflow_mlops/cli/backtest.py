"""``airflow-mlops backtest``: replay a labelled history through a pipeline's training, serving, drift
check, drift policy and gate, and compare the policy with never-retrain and retrain-every-batch.

Runs in this process, without a scheduler or an MLflow server. Prints the tables, writes
``backtest.json``, ``backtest.md``, ``backtest.html`` (with the plot) and ``backtest.png`` under
``--out``, and ends with one line::

    BENCH backtest quality_vs_never=<+better> quality_vs_always=<+better> retrains=<n> batches=<n>
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from airflow_mlops.core.errors import MlopsError, SpecError


def parse_override(raw: str | None) -> dict[str, Any]:
    """The ``--training-override`` mapping, given as JSON or YAML text."""
    if not raw:
        return {}
    import yaml

    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise SpecError(f"--training-override must be a JSON or YAML mapping: {exc}") from exc
    if not isinstance(value, Mapping):
        raise SpecError(f"--training-override must be a JSON or YAML mapping. Got {raw!r} instead.")
    return dict(value)


def parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Replay a labelled history batch by batch through the pipeline's train, gate, score, "
        "drift-check and drift-policy code; compare with never-retrain and retrain-every-batch.",
    )
    parser.add_argument("pipeline_file", help="pipeline file (include/pipelines/<name>.yaml)")
    parser.add_argument("--data", required=True, help="labelled history: a Parquet/CSV file or a folder of them")
    parser.add_argument("--batch", default="monthly", help="monthly, weekly, daily or rows=N (default: %(default)s)")
    parser.add_argument("--from", dest="start", help="first batch starts here (ISO date); earlier rows train v1")
    parser.add_argument("--to", dest="end", help="last batch ends before this (ISO date)")
    parser.add_argument("--out", help="folder for the reports (default: backtest-<pipeline>)")
    parser.add_argument("--time-column", help="column batches are cut by (default: the pipeline's)")
    parser.add_argument(
        "--storage-root",
        default=None,
        help="storage root whose <pipeline>/dims/ holds the tables feature joins read (default: [mlops] storage_root)",
    )
    parser.add_argument(
        "--training-override",
        help="JSON/YAML mapping laid over the pipeline's training spec, e.g. a smaller search: "
        "'{search: null, estimator: {params: {n_estimators: 200}}}'",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = "airflow-mlops backtest") -> int:
    from airflow_mlops.core.backtest import (
        BacktestSettings,
        BatchRule,
        bench_line,
        read_history,
        run_backtest,
        split_batches,
        write_reports,
    )
    from airflow_mlops.core.backtest.report import batch_table, summary_table

    command = parser(prog)
    args = command.parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        from airflow_mlops.hooks.ingestion import sql_engine
        from airflow_mlops.hooks.storage import StorageHook

        settings = BacktestSettings.from_pipeline_file(
            args.pipeline_file, training_override=parse_override(args.training_override), time_column=args.time_column,
            root=StorageHook(args.storage_root).get_conn(), sql_engine=sql_engine,
        )  # fmt: skip
        rule = BatchRule.parse(args.batch)
        history = split_batches(read_history(args.data), rule, settings.time_column, start=args.start, end=args.end)
    except (MlopsError, OSError) as exc:
        command.error(str(exc))
    result = run_backtest(settings, history)
    files = write_reports(result, args.out or f"backtest-{settings.pipeline}")
    print(summary_table(result), "", batch_table(result), "", sep="\n")
    print("Reports: " + ", ".join(files.values()))
    print(bench_line(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
