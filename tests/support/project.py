"""A copy of the project's reference DAGs and pipeline files in a fresh folder, to edit in a test.

The DAG files read the ``include/pipelines/`` folder of their own project when parsed, so a test that
edits a pipeline file works on a copy: the reference DAG files as shipped, beside the edited file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAG_FILES = ("dags/continuous_training.py", "dags/batch_serving.py")


def copy_project(folder: Path, pipelines: tuple[str, ...] = ("flights_delay",)) -> Path:
    """``folder`` with the reference DAG files, the named pipeline files and the validation suites."""
    parts = [*DAG_FILES, *(f"include/pipelines/{name}.yaml" for name in pipelines)]
    parts += [str(p.relative_to(REPO)) for p in (REPO / "include" / "expectations").glob("*.json")]
    for part in parts:
        (folder / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / part, folder / part)
    return folder


def pipeline_file(project: Path, name: str = "flights_delay") -> Path:
    return project / "include" / "pipelines" / f"{name}.yaml"
