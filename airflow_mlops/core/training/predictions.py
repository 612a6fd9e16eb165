"""What a fitted model predicts for the record: the test split (beside the ONNX export) and the drift
reference, a seeded sample of the rows it was fitted on with their predictions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.metrics import Predictions
from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.training.data import PreparedData
from airflow_mlops.core.training.export import export_onnx
from airflow_mlops.core.training.model import FittedModel, predict
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd


def sample_positions(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of at most ``limit`` of ``n`` rows (all rows when n <= limit)."""
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def take_rows(predictions: Predictions, rows: np.ndarray | None) -> Predictions:
    if rows is None:
        return predictions
    return Predictions(
        values=None if predictions.values is None else predictions.values[rows],
        probabilities=None if predictions.probabilities is None else predictions.probabilities[rows],
        labels=None if predictions.labels is None else predictions.labels[rows],
    )


def reference_sample(
    data: PreparedData, train_rows: np.ndarray, train: Predictions, spec: TrainingSpec, classes: tuple[Any, ...]
) -> pd.DataFrame:
    """A seeded sample of at most ``reference_rows`` train rows: features, target, the input's other
    columns and predictions.

    The other columns (those the model does not read, e.g. fees that would leak the target) are kept so
    that drift monitoring can watch them too. ``train_rows`` are the positions (into ``data.frame``) that
    ``train`` predicts, in the same order.
    """
    import numpy as np

    picked = sample_positions(len(train_rows), spec.reference_rows, spec.seed)
    modelled = [*spec.features, spec.target]
    outputs = (contracts.PREDICTION_COLUMN, contracts.PROBABILITY_COLUMN_PREFIX)
    others = [c for c in data.frame.columns if c not in modelled and not str(c).startswith(outputs)]
    reference = data.frame.iloc[train_rows[picked]][[*modelled, *others]].reset_index(drop=True)
    if spec.is_classifier:
        reference[contracts.PREDICTION_COLUMN] = np.asarray(train.labels)[picked]
        probabilities = np.asarray(train.probabilities)[picked]
        for index, label in enumerate(classes):
            reference[f"{contracts.PROBABILITY_COLUMN_PREFIX}{label}"] = probabilities[:, index]
    else:
        reference[contracts.PREDICTION_COLUMN] = np.asarray(train.values)[picked]
    return reference


def export_and_predict_test(
    fitted: FittedModel, spec: TrainingSpec, x_test: pd.DataFrame, inputs: list[OnnxInput], classes: tuple[Any, ...]
) -> tuple[bytes, Predictions]:
    """The pipeline as ONNX bytes, and the native model's predictions of the test split."""
    estimator = fitted.pipeline.named_steps["model"]
    test_matrix = fitted.pipeline.named_steps["features"].transform(x_test)
    # The converter is Python (holds the GIL); native prediction is C++ (releases it): run them side by side.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="native-test") as pool:
        native_test = pool.submit(predict, estimator, test_matrix, spec, classes)
        model_bytes = export_onnx(fitted.pipeline, spec, inputs, classes)
        return model_bytes, native_test.result()
