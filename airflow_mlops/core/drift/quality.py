"""Model quality on the labelled rows of a batch against a baseline, and the business metric beside it.

Every metric is computed by :mod:`airflow_mlops.core.metrics` (the same numbers training and the gate
report); this module turns a batch's label and prediction columns into its inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import metrics as core_metrics
from airflow_mlops.core.drift.spec import PREDICTION_COLUMN, QUALITY_METRICS
from airflow_mlops.core.drift.tables import categorical_values
from airflow_mlops.core.metrics import Task

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.drift.spec import DriftSpec
    from airflow_mlops.core.drift.tables import Table
    from airflow_mlops.core.pipeline.business import BusinessMetric


@dataclass(frozen=True)
class QualityResult:
    """Model quality on the labelled rows of the batch against a baseline.

    ``drop`` is signed so that positive is worse: ``baseline - current`` for a metric where higher
    is better, ``current - baseline`` for an error metric (rmse, mae, log_loss).
    """

    task: Task
    metric: str
    higher_is_better: bool
    current: float | None
    baseline: float | None
    baseline_source: Literal["reference", "spec", "training"] | None
    drop: float | None
    labelled_rows: int
    current_metrics: dict[str, float | None]
    reference_metrics: dict[str, float | None]
    business: dict[str, Any] | None = None  # the business metric on the batch, and on the reference

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def quality_metrics(
    target: pd.Series, prediction: pd.Series, probabilities: pd.DataFrame | None, task: Task, classes: Sequence[str]
) -> dict[str, float | None]:
    """Quality of predictions against labels (rows with a null label or prediction are dropped first);
    None where a metric is undefined on the rows. A binary batch also gets ``positive_rate``."""
    if task == "regression":
        return _regression_quality(target, prediction)
    keep = target.notna().to_numpy() & prediction.notna().to_numpy()
    y_text = categorical_values(target[keep])
    p_text = categorical_values(prediction[keep])
    if len(y_text) == 0:
        return dict.fromkeys([*QUALITY_METRICS[task], *(["positive_rate"] if task == "binary" else [])])
    if task == "multiclass":
        return _multiclass_quality(y_text, p_text)
    return _binary_quality(y_text, p_text, probabilities, keep, classes)


def _defined(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _regression_quality(target: pd.Series, prediction: pd.Series) -> dict[str, float | None]:
    import numpy as np

    y = target.to_numpy(dtype="float64", na_value=np.nan)
    p = prediction.to_numpy(dtype="float64", na_value=np.nan)
    keep = ~(np.isnan(y) | np.isnan(p))
    names = QUALITY_METRICS["regression"]
    if not keep.any():
        return dict.fromkeys(names)
    return {name: _defined(value) for name, value in core_metrics.compute_all(names, y[keep], p[keep]).items()}


def _multiclass_quality(y_text: pd.Series, p_text: pd.Series) -> dict[str, float | None]:
    """At the predicted labels, over the classes seen in the labels or the predictions."""
    classes = sorted(set(y_text) | set(p_text))
    y = core_metrics.class_indices(y_text.to_numpy(), classes)
    decided = core_metrics.class_indices(p_text.to_numpy(), classes)
    names = QUALITY_METRICS["multiclass"]
    return {name: _defined(value) for name, value in core_metrics.compute_all(names, y, None, decided=decided).items()}


def _binary_quality(
    y_text: pd.Series, p_text: pd.Series, probabilities: pd.DataFrame | None, keep: np.ndarray, classes: Sequence[str]
) -> dict[str, float | None]:
    """At the predicted labels, and (with the positive-class probability) ROC AUC and log loss on the rows
    where that probability is known, when they hold both classes."""
    import numpy as np

    positive = classes[-1] if classes else "1"
    y = (y_text == positive).to_numpy().astype(np.int64)
    decided = (p_text == positive).to_numpy().astype(np.int64)
    at_decision = ("accuracy", "precision", "recall", "f1")
    out: dict[str, float | None] = {
        name: _defined(value) for name, value in core_metrics.compute_all(at_decision, y, None, decided=decided).items()
    }
    out.update(positive_rate=float(y.mean()), roc_auc=None, log_loss=None)
    if probabilities is not None and probabilities.shape[1] == 1:
        score = probabilities.iloc[:, 0][keep].to_numpy(dtype="float64", na_value=np.nan)
        finite = ~np.isnan(score)
        if finite.any() and len(set(y[finite].tolist())) == 2:
            proba = np.column_stack([1.0 - score[finite], score[finite]])
            out["roc_auc"] = _defined(core_metrics.compute("roc_auc", y[finite], proba))
            out["log_loss"] = _defined(core_metrics.compute("log_loss", y[finite], proba))
    return out


def measure_quality(
    ref_table: Table,
    cur_table: Table,
    ref_rows: np.ndarray | None,
    cur_rows: np.ndarray | None,
    cur_target: pd.Series,
    target_column: str,
    probability: str | None,
    spec: DriftSpec,
) -> QualityResult | None:
    """Quality of both sides' labelled rows; the drop of the spec's metric against its baseline (the
    spec's, else the reference's). None without a task or a metric."""
    metric, task = spec.primary_metric, spec.task
    if task is None or metric is None:
        return None

    def measure(table: Table, rows: np.ndarray | None, target: pd.Series) -> dict[str, float | None]:
        prediction = table.column(PREDICTION_COLUMN, rows)
        probas = table.frame([probability], rows) if probability else None
        return quality_metrics(
            target.reset_index(drop=True), prediction.reset_index(drop=True), probas, task, spec.classes
        )

    current = measure(cur_table, cur_rows, cur_target)
    reference = measure(ref_table, ref_rows, ref_table.column(target_column, ref_rows))
    higher = core_metrics.METRICS[metric].higher_is_better
    baseline: float | None
    source: Literal["reference", "spec", "training"]
    if spec.quality_baseline is not None:
        baseline, source = spec.quality_baseline, spec.quality_baseline_from or "spec"
    else:
        baseline, source = reference[metric], "reference"
    value = current[metric]
    drop = None
    if value is not None and baseline is not None:
        drop = round((baseline - value) if higher else (value - baseline), 6)
    labelled = int((cur_target.notna() & cur_table.column(PREDICTION_COLUMN, cur_rows).notna()).sum())
    business = None
    if spec.business_metric is not None:
        ref_target = ref_table.column(target_column, ref_rows)
        business = _business(spec, spec.business_metric, cur_table, cur_rows, cur_target, probability)
        reference_value = _business(spec, spec.business_metric, ref_table, ref_rows, ref_target, probability)
        if business is not None:
            business["reference_value"] = reference_value["value"] if reference_value else None
    return QualityResult(
        task=task, metric=metric, higher_is_better=higher, current=value, baseline=baseline,
        baseline_source=source if baseline is not None else None, drop=drop,
        labelled_rows=labelled, current_metrics=current, reference_metrics=reference, business=business,
    )  # fmt: skip


def _business(
    spec: DriftSpec,
    metric: BusinessMetric,
    table: Table,
    rows: np.ndarray | None,
    target: pd.Series,
    probability: str | None,
) -> dict[str, Any] | None:
    """The business metric of a side's labelled rows: the positive-class probability against whether the
    label is positive (binary; without a probability column there is no threshold to apply, so None),
    or the prediction against the target (regression)."""
    import numpy as np

    target = target.reset_index(drop=True)
    if metric.task == "regression":
        truth = target.to_numpy(dtype="float64", na_value=np.nan)
        predicted = table.column(PREDICTION_COLUMN, rows).reset_index(drop=True)
    elif probability is None:
        return None
    else:
        positive = spec.classes[-1] if spec.classes else "1"
        known = target.notna().to_numpy()
        truth = np.full(len(target), np.nan)
        truth[known] = (categorical_values(target) == positive).to_numpy(dtype="float64")
        predicted = table.column(probability, rows).reset_index(drop=True)
    values = predicted.to_numpy(dtype="float64", na_value=np.nan)
    return {**metric.evaluate(truth, values).to_dict(), "description": metric.describe()}
