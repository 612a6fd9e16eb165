"""Training: a spec and a snapshot in, a parity-checked ONNX model, metrics and lineage out. Public API:
``TrainingSpec``, ``load_spec``, ``train_model``, ``run_training``, ``split_frame``, ``TrainingResult``,
``ModelFit``, ``TrainingReceipt``, ``read_snapshot``, ``write_frame``, ``parquet_bytes``, ``feature_samples``,
``feature_frame``, ``onnx_inputs``, ``export_onnx``, ``check_parity``, ``ParityError`` (modules: ``spec``
parses the training spec, with ``spec_fields``, ``estimators`` and ``spec_sections`` for its values and
sections; ``data`` prepares and splits rows, ``recency`` applies the window and recency weights, ``model``
fits the pipeline, ``refit`` refits the selected configuration on every row, ``export`` converts it to
ONNX and checks parity, ``predictions`` keeps the test predictions and the drift reference, ``run``
trains and records a run, ``result`` holds what training produces, ``frames`` reads and writes Parquet,
``tracking`` and ``plots`` log to MLflow)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.training.data import feature_frame, onnx_inputs
    from airflow_mlops.core.training.export import ParityError, check_parity, export_onnx
    from airflow_mlops.core.training.frames import feature_samples, parquet_bytes, read_snapshot, write_frame
    from airflow_mlops.core.training.result import ModelFit, TrainingReceipt, TrainingResult
    from airflow_mlops.core.training.run import load_spec, run_training, split_frame, train_model
    from airflow_mlops.core.training.spec import TrainingSpec

__all__ = [
    "ModelFit",
    "ParityError",
    "TrainingReceipt",
    "TrainingResult",
    "TrainingSpec",
    "check_parity",
    "export_onnx",
    "feature_frame",
    "feature_samples",
    "load_spec",
    "onnx_inputs",
    "parquet_bytes",
    "read_snapshot",
    "run_training",
    "split_frame",
    "train_model",
    "write_frame",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "feature_frame": "data",
        "onnx_inputs": "data",
        "ParityError": "export",
        "check_parity": "export",
        "export_onnx": "export",
        "feature_samples": "frames",
        "parquet_bytes": "frames",
        "read_snapshot": "frames",
        "write_frame": "frames",
        "ModelFit": "result",
        "TrainingReceipt": "result",
        "TrainingResult": "result",
        "load_spec": "run",
        "run_training": "run",
        "split_frame": "run",
        "train_model": "run",
        "TrainingSpec": "spec",
    },
)
