"""Explain one prediction from the command line::

    airflow-mlops explain --model flights --alias champion \\
        --row '{"hour": 17, "minute": 5, "sched_dep_time": 1705, ...}'
    airflow-mlops explain --model flights --version 3 --input scored.parquet --index 42

Prints a readable summary, then the explanation as JSON (``--json`` prints only the JSON). MLflow is
reached through the ``[mlops]`` settings and the ``mlflow`` connection, as the operators reach it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence


def parser(prog: str = "airflow-mlops explain") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__.split("::")[0].strip())
    p.add_argument("--model", required=True, help="registered model name")
    which = p.add_mutually_exclusive_group()
    which.add_argument("--alias", default=None, help="alias to explain (champion when no --version)")
    which.add_argument("--version", default=None, help="a model version")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--row", help="the row as JSON: {column: value}")
    source.add_argument("--input", help="a Parquet file to take the row from")
    p.add_argument("--index", type=int, default=0, help="position of the row in --input (0)")
    p.add_argument("--mlflow-conn-id", default=None, help="MLflow connection ([mlops] mlflow_conn_id)")
    p.add_argument("--json", action="store_true", help="print only the JSON")
    return p


def main(argv: Sequence[str] | None = None, prog: str = "airflow-mlops explain") -> int:
    args = parser(prog).parse_args(argv)
    out = sys.stdout
    # Airflow and MLflow log to stdout; only the explanation goes there, so that --json can be piped.
    with contextlib.redirect_stdout(sys.stderr):
        from airflow_mlops.core.errors import MlopsError
        from airflow_mlops.core.scoring import explain_row, read_row
        from airflow_mlops.core.serving import resolve_model_version
        from airflow_mlops.core.storage import StorageRoot
        from airflow_mlops.hooks.mlflow import MlflowHook

        try:
            row, _ = read_row(StorageRoot("."), args.row, args.input, args.index)
            client = MlflowHook(args.mlflow_conn_id).get_conn()
            alias = args.alias or (None if args.version else "champion")
            ref = resolve_model_version(client, args.model, alias=alias, version=args.version)
            from airflow_mlops.hooks.ingestion import sql_engine
            from airflow_mlops.hooks.storage import StorageHook

            explanation = explain_row(client, ref, row, StorageHook().get_conn(), sql_engine)
        except MlopsError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not args.json:
        print(explanation.render(), file=out)
        print(file=out)
    print(json.dumps(explanation.to_dict(), indent=2, default=str), file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
