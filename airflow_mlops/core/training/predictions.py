"""What a fitted model predicts for the record: the test split (beside the ONNX export) and the drift
reference, a seeded sample of the rows it was fitted on with their predictions."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.metrics import Predictions
from airflow_mlops.core.onnx_model import OnnxInput, OnnxModel
from airflow_mlops.core.training.data import PreparedData
from airflow_mlops.core.training.export import ParityReport, export_onnx, graph_predictions, parity_report
from airflow_mlops.core.training.model import FittedModel, predict
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# Test rows the native model predicts for the parity check (a seeded sample; every row of a smaller split).
PARITY_ROWS = 10_000


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
    fitted: FittedModel,
    spec: TrainingSpec,
    x_test: pd.DataFrame,
    test_frame: pd.DataFrame,
    inputs: list[OnnxInput],
    classes: tuple[Any, ...],
) -> tuple[bytes, Predictions, ParityReport]:
    """The pipeline as ONNX bytes, the graph's predictions of the test split, and their parity with the
    native model.

    The graph scores every test row (``test_frame``, raw rows fed as scoring feeds them): those are the
    predictions the test metrics are computed from, which the parity check proves equal to the native
    model's within ``spec.parity_tolerance``. The native model predicts a seeded sample of at most
    :data:`PARITY_ROWS` test rows (``x_test``, the same rows), and the check compares the two there:
    LightGBM predicts several times slower than ONNX Runtime, and predicting the whole split natively
    only to compare it was the largest cost of a training after the fit.

    :raises ParityError: the graph disagrees with the native model on the sampled rows.
    """
    estimator = fitted.pipeline.named_steps["model"]
    positions = sample_positions(len(x_test), PARITY_ROWS, spec.seed)
    sample_matrix = fitted.pipeline.named_steps["features"].transform(x_test.iloc[positions])
    # The converter is Python (holds the GIL); native prediction is C++ (releases it): run them side by side.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="native-test") as pool:
        native_sample = pool.submit(predict, estimator, sample_matrix, spec, classes)
        model_bytes = export_onnx(fitted.pipeline, spec, inputs, classes)
        native = native_sample.result()
    outputs = OnnxModel(model_bytes, inputs, threads=1).run(test_frame)
    parity = parity_report(outputs, native, inputs, spec, test_frame, classes, positions)
    return model_bytes, graph_predictions(outputs, spec, classes), parity
