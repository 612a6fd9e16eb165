"""Refit after selection: the chosen configuration fitted again on every row of the snapshot.

A time split holds the newest rows out for validation and test; the model fitted on the train split
alone never sees the newest regime, which is the one it will serve. With ``refit: all`` training
selects on the validation split (early stopping, search) and judges on the test split as always, then
fits the selected configuration once more on every row (train + validation + test, after the window)
and registers that model.

Iterations: early stopping chose ``best_iteration`` on the train split; the refit sees more rows, so
it boosts ``round(best_iteration * rows_all / rows_train)`` rounds (at least 1), capped by the
configured maximum (``n_estimators`` of the selected parameters). The refit has no validation split
to stop on, so the count is fixed by this rule. Estimators without boosting iterations are refitted
with the selected parameters as they are.

The refit's preprocessor is fitted on every row too (the categorical vocabulary can take in values
that only the newest rows hold); its ONNX export is parity-checked on the test split like any model,
and its drift reference is a seeded sample of all rows with the refit's predictions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.training.data import PreparedData
from airflow_mlops.core.training.export import ParityReport
from airflow_mlops.core.training.model import (
    FittedModel,
    _fit_estimator,
    build_preprocessor,
    fit_preprocessor,
    predict,
    sample_weights,
)
from airflow_mlops.core.training.predictions import export_and_predict_test, reference_sample, sample_positions
from airflow_mlops.core.training.recency import combined_weights, recency_weights
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import pandas as pd


def refit_iterations(selected: int | None, rows_all: int, rows_train: int, maximum: int | None) -> int | None:
    """``round(selected * rows_all / rows_train)``, at least 1 and at most ``maximum`` (None: no iterations)."""
    if selected is None or rows_train <= 0:
        return None
    scaled = max(1, round(selected * rows_all / rows_train))
    return scaled if maximum is None else min(scaled, maximum)


@dataclass(frozen=True)
class RegisteredModel:
    """The model a run registers: fitted, exported, parity-checked, with its drift reference.

    :param rows: how many rows it was fitted on.
    """

    fitted: FittedModel
    onnx_bytes: bytes
    parity: ParityReport
    reference: pd.DataFrame
    rows: int


def refit_all_rows(spec: TrainingSpec, selected: FittedModel, data: PreparedData, rows_train: int) -> FittedModel:
    """The selected configuration fitted on every row of ``data``, without early stopping."""
    from sklearn.pipeline import Pipeline

    params: dict[str, Any] = dict(selected.params)
    maximum = int(params["n_estimators"]) if "n_estimators" in params else None
    iterations = refit_iterations(selected.best_iteration, len(data.y), rows_train, maximum)
    if iterations is not None and spec.estimator.is_lightgbm:
        params["n_estimators"] = iterations
    preprocessor, categories = build_preprocessor(spec, data.x)
    matrix = fit_preprocessor(preprocessor, spec, data.x)
    weights = combined_weights(sample_weights(spec, data.y, data.classes), recency_weights(data.frame, spec))
    fixed_rounds = dataclasses.replace(spec, early_stopping_rounds=0)
    no_validation = (matrix[:0], data.y[:0], None)
    estimator, fitted_iterations, _ = _fit_estimator(
        fixed_rounds, params, (matrix, data.y, weights), no_validation, data.classes
    )
    return FittedModel(
        pipeline=Pipeline([("features", preprocessor), ("model", estimator)]),
        params=params,
        best_iteration=fitted_iterations,
        categories=categories,
        trials=selected.trials,
        train_matrix=matrix,
        validation_matrix=selected.validation_matrix,
    )


def register_refit(
    spec: TrainingSpec, selected: FittedModel, data: PreparedData, rows_train: int, test_rows: Any,
    test_frame: pd.DataFrame, inputs: list[OnnxInput],
) -> RegisteredModel:  # fmt: skip
    """Refit on every row, export, check parity on the test split, and sample the drift reference.

    :param test_rows: positions of the test split in ``data`` (the parity rows).
    """
    refitted = refit_all_rows(spec, selected, data, rows_train)
    onnx_bytes, _, parity = export_and_predict_test(
        refitted, spec, data.x.iloc[test_rows], test_frame, inputs, data.classes
    )
    picked = sample_positions(len(data.y), spec.reference_rows, spec.seed)
    estimator = refitted.pipeline.named_steps["model"]
    predictions = predict(estimator, refitted.train_matrix[picked], spec, data.classes)
    reference = reference_sample(data, picked, predictions, spec, data.classes)
    return RegisteredModel(refitted, onnx_bytes, parity, reference, len(data.y))
