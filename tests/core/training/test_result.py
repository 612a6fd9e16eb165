"""What training produces: the spec artifact scoring and reproduction rely on; result types in a leaf
module, so tracking and plots never import the training run."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.onnx_model import OnnxModel, inputs_from_spec
from airflow_mlops.core.training import TrainingResult

TRAINING = Path(__file__).resolve().parents[3] / "airflow_mlops" / "core" / "training"


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at the top, in functions or under ``TYPE_CHECKING``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_spec_artifact_lets_scoring_run_the_model(trained: TrainingResult, january: pd.DataFrame) -> None:
    document = trained.spec_artifact()
    assert document["classes"] == [0, 1] and document["positive_class"] == 1
    assert document["onnx_outputs"] == ["label", "probabilities"]
    model = OnnxModel(trained.onnx_bytes, inputs_from_spec(document), expected_sha256=trained.onnx_sha256)
    outputs = model.run(january.head(50))
    assert outputs["probabilities"].shape == (50, 2)
    np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, atol=1e-6)


def test_spec_artifact_keeps_the_spec_and_the_kept_vocabulary_apart(trained: TrainingResult) -> None:
    """The artifact alone rebuilds the spec (no run params needed); the vocabulary sits beside it."""
    from airflow_mlops.core.reproducibility import spec_from_artifact

    document = trained.spec_artifact()
    assert document["categories"] == trained.spec.to_dict()["categories"]
    assert document["vocabulary"]["carrier"] == list(trained.categories["carrier"].kept)
    assert spec_from_artifact(document) == trained.spec


@pytest.mark.parametrize("module", ["result", "frames", "tracking", "plots"])
def test_what_the_run_uses_does_not_import_the_run(module: str) -> None:
    assert "airflow_mlops.core.training.run" not in imported_modules(TRAINING / f"{module}.py")
