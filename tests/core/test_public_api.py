"""The lazy public API of the monitoring, pipeline and feature cost stems: every exported name resolves, and
importing a stem package imports no heavy library (the names load their submodule on first use)."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from tests.support.imports import REPO

STEMS = (
    "airflow_mlops.core.monitoring",
    "airflow_mlops.core.pipeline",
    "airflow_mlops.core.feature_cost",
    "airflow_mlops.core.features",
)
HEAVY = ("numpy", "pandas", "pyarrow", "onnx", "onnxruntime", "sklearn", "mlflow")


@pytest.mark.parametrize("stem", STEMS)
def test_every_exported_name_resolves(stem: str) -> None:
    package = importlib.import_module(stem)
    assert sorted(package.__all__) == dir(package)
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute"):
        _ = package.not_a_public_name


@pytest.mark.parametrize("stem", STEMS)
def test_importing_a_stem_imports_no_heavy_library(stem: str) -> None:
    code = f"import sys, json, {stem}; print(json.dumps(sorted(set(sys.modules) & set({list(HEAVY)!r}))))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert json.loads(done.stdout) == []
