"""One entry point: ``python -m airflow_mlops <command>`` and the ``airflow-mlops`` console script."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from airflow_mlops.cli import main as cli
from tests.support.imports import HEAVY, REPO


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and out.startswith("usage: airflow-mlops")
    for name, command in cli.COMMANDS.items():
        assert name in out and command.summary.split()[0] in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "the following arguments are required: <command>"), (["bogus"], "invalid choice: 'bogus'")],
    ids=["no-command", "unknown-command"],
)
def test_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_command_parses_its_own_arguments(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith(f"usage: airflow-mlops {name} ")


def test_the_rest_of_the_line_goes_to_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "absent.parquet"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["replay", "--months", "1", "--to", str(tmp_path / "out"), "--source", str(source)])
    assert exit_.value.code == 2 and f"{str(source)!r} does not exist" in capsys.readouterr().err


def test_the_console_script_is_the_same_entry_point() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"airflow-mlops": "airflow_mlops.cli.main:main"}


_PROBE = r"""
import json, runpy, sys
sys.argv = ["airflow-mlops", "--help"]
try:
    runpy.run_module("airflow_mlops", run_name="__main__", alter_sys=True)
except SystemExit as exc:
    code = exc.code
print("LOADED " + json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def test_help_imports_no_heavy_library() -> None:
    """``--help`` (and a typo) answer before any command module, pyarrow or airflow is imported."""
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, cwd=REPO, timeout=120)
    line = next(x for x in done.stdout.splitlines() if x.startswith("LOADED "))
    loaded = json.loads(line[len("LOADED ") :])
    assert loaded["code"] == 0
    assert set(loaded["modules"]) & {*HEAVY, "pyarrow", "airflow", "numpy", "sqlalchemy"} == set()
