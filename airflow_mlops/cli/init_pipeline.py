"""Write a pipeline file for your own table::

    airflow-mlops init-pipeline --data weather.csv --target visibility --out include/pipelines/

Screens a sample of the table's columns (identifiers, constants and leaking columns are left out, each with
its reason as a YAML comment), infers the task from the target unless ``--task`` names it, picks a time
column for a time split when one exists, infers a validation suite from the same rows and writes it next
to the pipeline file. The file is read back with the reference DAGs' parser before it is kept.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence


def parser(prog: str = "airflow-mlops init-pipeline") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("::")[0].strip())
    p.add_argument("--data", required=True, help="the table: a .csv or .parquet file (a sample of its rows)")
    p.add_argument("--target", required=True, help="the column to predict")
    p.add_argument("--task", choices=("binary", "multiclass", "regression"), help="inferred from the target")
    p.add_argument("--time-column", default=None, help="column ordering the rows (the first timestamp column)")
    p.add_argument("--name", default=None, help="pipeline and model name (the data file's name)")
    p.add_argument("--out", default="include/pipelines", help="a .yaml path or a folder (include/pipelines)")
    p.add_argument("--no-suite", action="store_true", help="write no suite: training infers one per snapshot")
    p.add_argument("--force", action="store_true", help="replace an existing pipeline file and suite")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "airflow-mlops init-pipeline") -> int:
    args = parser(prog).parse_args(argv)
    from airflow_mlops.core.errors import MlopsError
    from airflow_mlops.core.pipeline.scaffold import scaffold

    started = time.perf_counter()
    try:
        result = scaffold(
            args.data,
            args.target,
            out=args.out,
            task=args.task,
            time_column=args.time_column,
            name=args.name,
            suite=not args.no_suite,
            overwrite=args.force,
        )
    except MlopsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(result.summary())
    print(f"({time.perf_counter() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
