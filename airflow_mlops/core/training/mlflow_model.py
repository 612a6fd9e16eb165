"""Save an exported ONNX graph as an MLflow model: the folder a registered model version points at.

The folder (``onnx/`` for the registered model, ``onnx_selection/`` for the selection model of a
``refit: all`` run) holds::

    model.onnx                  the exported graph, byte for byte (its sha256 is the run's tag)
    MLmodel                     flavors ``onnx`` and ``python_function``, signature, metadata ``mlops``
    input_example.json          raw feature rows of the test split
    serving_input_example.json  the same rows as ``mlflow models serve`` takes them
    requirements.txt, python_env.yaml, conda.yaml   explicit pins (inferring them costs seconds)

The signature comes from the feature schema: each feature column typed as in the training data
(integers ``long``, floats ``double``, text ``string``: MLflow checks inputs against it and refuses,
say, an int64 column declared ``double``), outputs the scorer's columns. The ``python_function`` flavor loads through
:mod:`airflow_mlops.core.serving.pyfunc`, which checks the graph's sha256 against the metadata and
feeds frames exactly as batch scoring does.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.storage import sha256_bytes

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.training.result import TrainingResult

LOADER_MODULE = "airflow_mlops.core.serving.pyfunc"
PACKAGE = "airflow-mlops"
SERVING_PACKAGES = ("onnx", "onnxruntime", "numpy", "pandas", "pyarrow")
EXAMPLE_ROWS = 5


def serving_requirements() -> list[str]:
    """Exact pins of what loading the pyfunc needs: this package (the loader) and the ONNX runtime stack.
    MLflow adds its own pin."""
    from importlib.metadata import PackageNotFoundError, version

    import airflow_mlops

    pins = [f"{PACKAGE}=={airflow_mlops.__version__}"]
    for name in SERVING_PACKAGES:
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{name}=={version(name)}")
    return pins


def _plain(value: Any) -> Any:
    """NumPy scalars as Python ones (the MLmodel is YAML)."""
    return value.item() if hasattr(value, "item") else value


def column_type(frame: pd.DataFrame, item: OnnxInput) -> str:
    """The MLflow type of a feature column: that of its values in the training data (what callers send;
    MLflow refuses an int64 column declared ``double``), the graph input's kind for anything else."""
    kind = frame[item.column].dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iu":
        return "long"
    if kind == "f":
        return "double"
    return "string" if item.type == "string" else "double"


def model_signature(frame: pd.DataFrame, inputs: Sequence[OnnxInput], task: str, classes: Sequence[Any]) -> Any:
    """The MLflow signature of a graph: its feature columns as typed in ``frame`` in, the scorer's columns out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema, TensorSpec

    features = Schema([ColSpec(column_type(frame, i), i.column) for i in inputs])
    if task == "regression":
        return ModelSignature(inputs=features, outputs=Schema([ColSpec("float", contracts.PREDICTION_COLUMN)]))
    label = "string" if any(isinstance(c, str) for c in classes) else "long"
    outputs: list[ColSpec | TensorSpec] = [ColSpec(label, contracts.PREDICTION_COLUMN)]
    outputs += [ColSpec("float", f"{contracts.PROBABILITY_COLUMN_PREFIX}{c}") for c in classes]
    return ModelSignature(inputs=features, outputs=Schema(outputs))


def save_onnx_model(folder: Path, onnx_bytes: bytes, result: TrainingResult) -> None:
    """Write ``onnx_bytes`` (one of ``result``'s graphs) as an MLflow model into ``folder`` (created).

    :raises ArtifactError: MLflow wrote a graph that differs from ``onnx_bytes`` and it cannot be restored.
    """
    import mlflow.onnx
    import onnx
    from mlflow.models import Model

    sha256 = sha256_bytes(onnx_bytes)
    metadata = {
        contracts.MLMODEL_METADATA_KEY: {
            "task": result.spec.task,
            "target": result.spec.target,
            "classes": [_plain(c) for c in result.classes],
            "onnx_inputs": [i.to_dict() for i in result.onnx_inputs],
            "onnx_sha256": sha256,
        }
    }
    with warnings.catch_warnings():  # MLflow warns about integer columns in the example's schema
        warnings.simplefilter("ignore", UserWarning)
        mlflow.onnx.save_model(
            onnx.load_from_string(onnx_bytes),
            str(folder),
            signature=model_signature(result.test_frame, result.onnx_inputs, result.spec.task, result.classes),
            input_example=result.test_frame[[i.column for i in result.onnx_inputs]].head(EXAMPLE_ROWS),
            pip_requirements=serving_requirements(),
            onnx_execution_providers=["CPUExecutionProvider"],
            metadata=metadata,
            save_as_external_data=False,  # one file, whose sha256 is the one recorded
        )
    graph = folder / contracts.ONNX_MODEL_FILE
    graph.write_bytes(onnx_bytes)  # the exported bytes exactly, whatever onnx's re-serialisation did
    if sha256_bytes(graph.read_bytes()) != sha256:
        raise ArtifactError(f"Could not write the ONNX graph of sha256 {sha256} into {folder}.")
    mlmodel = Model.load(str(folder / "MLmodel"))
    mlmodel.flavors["python_function"]["loader_module"] = LOADER_MODULE
    mlmodel.save(str(folder / "MLmodel"))


def save_onnx_models(folder: Path, result: TrainingResult) -> None:
    """The run's graphs as MLflow models under ``folder``: the registered one in ``onnx/``, and with
    ``refit: all`` the selection model in ``onnx_selection/``."""
    save_onnx_model(folder / contracts.ARTIFACT_ONNX_MODEL, result.onnx_bytes, result)
    if result.fit.selection_onnx_bytes is not None:
        save_onnx_model(folder / contracts.ARTIFACT_ONNX_SELECTION_MODEL, result.fit.selection_onnx_bytes, result)
