"""Imports go one way (core -> hooks -> operators/sensors/triggers/links -> dags), and DAG parsing
never pays for the heavy ML libraries."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.support.imports import (
    AIRFLOW_LAYERS,
    REPO,
    dag_files,
    heavy_imports,
    import_without_airflow,
    module_names,
)


def test_core_imports_without_airflow() -> None:
    core = module_names("core")
    assert "airflow_mlops.core.storage" in core
    assert import_without_airflow(core) == []


def test_airflow_side_modules_and_dags_import_no_heavy_library() -> None:
    targets = [m for layer in AIRFLOW_LAYERS for m in module_names(layer)]
    targets += ["airflow_mlops.get_provider_info", "airflow_mlops.exceptions", "airflow_mlops.settings"]
    targets += [str(p) for p in dag_files()]
    assert heavy_imports(targets) == {}


def _copy_package(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "airflow_mlops", root / "airflow_mlops", ignore=shutil.ignore_patterns("__pycache__"))
    return root


def test_heavy_import_check_catches_a_module_level_pandas_import(tmp_path: Path) -> None:
    """The check above can fail: an operator module importing pandas at the top is reported."""
    root = _copy_package(tmp_path)
    bad = root / "airflow_mlops" / "operators" / "careless.py"
    bad.write_text("import pandas\n\nfrom airflow.sdk import BaseOperator\n")
    assert "airflow_mlops.operators.careless" in module_names("operators", root)
    found = heavy_imports(["airflow_mlops.operators.careless"], cwd=root)
    assert found == {"airflow_mlops.operators.careless": ["pandas"]}


def test_airflow_block_catches_a_core_module_importing_airflow(tmp_path: Path) -> None:
    root = _copy_package(tmp_path)
    (root / "airflow_mlops" / "core" / "careless.py").write_text("from airflow.sdk import BaseOperator\n")
    failures = import_without_airflow(["airflow_mlops.core.careless"], cwd=root)
    assert len(failures) == 1 and "core must not import airflow" in failures[0]
