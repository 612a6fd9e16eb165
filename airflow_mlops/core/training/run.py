"""Training: a spec and a snapshot in, a parity-checked ONNX model, metrics and lineage out.

Two entry points:

- :func:`train_model` is pure (a frame in, a :class:`TrainingResult` out, no I/O): prepare the data,
  split it, fit the pipeline (with early stopping and an optional search), evaluate every split,
  export the pipeline to ONNX and check parity on the test split.
- :func:`run_training` is what the operator calls: read and verify the snapshot, open an MLflow run,
  train, write the test split to the storage root for the gate, log everything to MLflow, and return
  a small :class:`TrainingReceipt`.

Determinism: the same snapshot, spec and seed give the same split, the same trees, the same metrics
and byte-identical ONNX (same sha256).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_mlops import __version__
from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import Predictions, compute_metrics
from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.pipeline.requirements import FeatureRequirements, refuse
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.core.training.data import PreparedData, Splits, check_columns, onnx_inputs, prepare, split_rows
from airflow_mlops.core.training.export import check_parity, export_onnx
from airflow_mlops.core.training.frames import feature_samples, read_snapshot, write_frame
from airflow_mlops.core.training.model import FittedModel, feature_importance, fit_model, predict
from airflow_mlops.core.training.result import SPLITS, TrainingReceipt, TrainingResult
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.pipeline.business import BusinessMetric, BusinessValue


def split_frame(frame: pd.DataFrame, spec: TrainingSpec) -> dict[str, pd.DataFrame]:
    """The rows of ``frame`` (with a target) in each split, exactly as :func:`train_model` splits them.

    The gate can rebuild the train split of a run from its snapshot and spec with this (for a
    baseline model), without training.
    """
    data = prepare(frame, spec)
    splits = split_rows(data, spec)
    return {name: data.frame.iloc[getattr(splits, name)].reset_index(drop=True) for name in SPLITS}


def _sample_positions(n: int, limit: int, seed: int) -> np.ndarray:
    """Sorted positions of a seeded sample of at most ``limit`` of ``n`` rows (all rows when n <= limit)."""
    import numpy as np

    if n <= limit:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, limit, replace=False))


def _take(predictions: Predictions, rows: np.ndarray | None) -> Predictions:
    if rows is None:
        return predictions
    return Predictions(
        values=None if predictions.values is None else predictions.values[rows],
        probabilities=None if predictions.probabilities is None else predictions.probabilities[rows],
        labels=None if predictions.labels is None else predictions.labels[rows],
    )


def _reference(
    data: PreparedData, train_rows: np.ndarray, train: Predictions, spec: TrainingSpec, classes: tuple[Any, ...]
) -> pd.DataFrame:
    """A seeded sample of at most ``reference_rows`` train rows: features, target, the input's other
    columns and predictions.

    The other columns (those the model does not read, e.g. fees that would leak the target) are kept so
    that drift monitoring can watch them too. ``train_rows`` are the positions (into ``data.frame``) that
    ``train`` predicts, in the same order.
    """
    import numpy as np

    picked = _sample_positions(len(train_rows), spec.reference_rows, spec.seed)
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


def train_model(frame: pd.DataFrame, spec: TrainingSpec) -> TrainingResult:
    """Train, evaluate, export and parity-check a model for ``spec`` on ``frame``.

    :raises DataError: the data does not fit the spec (missing column, single class, leakage, ...).
    :raises SpecError: the estimator rejects its parameters or cannot be exported.
    :raises ParityError: the ONNX graph disagrees with the native model on the test split.
    """
    laps = _Laps()
    data = prepare(frame, spec)
    splits = split_rows(data, spec)
    laps.lap("prepare")
    x = {name: data.x.iloc[getattr(splits, name)] for name in SPLITS}
    y = {name: data.y[getattr(splits, name)] for name in SPLITS}
    # Train rows whose predictions are needed: the train-metric sample and the drift reference.
    train_rows = _sample_positions(len(y["train"]), max(spec.train_metrics_rows, spec.reference_rows), spec.seed)
    fitted = fit_model(spec, x["train"], y["train"], x["validation"], y["validation"], data.classes)
    laps.lap("fit")
    inputs = onnx_inputs(spec)
    model_bytes, test_predictions = _export_and_predict_test(fitted, spec, x["test"], inputs, data.classes)
    laps.lap("export")
    predictions, metrics = _evaluate_splits(fitted, spec, y, train_rows, test_predictions, data.classes)
    laps.lap("evaluate")
    test_frame = data.frame.iloc[splits.test].reset_index(drop=True)
    parity = check_parity(model_bytes, inputs, spec, test_frame, predictions["test"], data.classes)
    laps.lap("parity")
    reference = _reference(data, splits.train[train_rows], predictions["train"], spec, data.classes)
    importance = feature_importance(fitted, spec)
    laps.lap("reference")
    return TrainingResult(
        spec=spec,
        pipeline=fitted.pipeline,
        onnx_bytes=model_bytes,
        onnx_sha256=sha256_bytes(model_bytes),
        onnx_inputs=tuple(inputs),
        classes=data.classes,
        metrics=metrics,
        parity=parity,
        params=fitted.params,
        best_iteration=fitted.best_iteration,
        trials=fitted.trials,
        categories=fitted.categories,
        importance=importance,
        rows=_rows(data, splits),
        warnings=_warnings(data, splits, fitted),
        test_frame=test_frame,
        test_target=y["test"],
        test_predictions=predictions["test"],
        reference=reference,
        seconds=laps.seconds,
    )


class _Laps:
    """Seconds spent in each stage of training, each lap measured from the end of the previous one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = now - self._clock
        self._clock = now


def _export_and_predict_test(
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


def _evaluate_splits(
    fitted: FittedModel, spec: TrainingSpec, y: dict[str, np.ndarray], train_rows: np.ndarray,
    test_predictions: Predictions, classes: tuple[Any, ...],
) -> tuple[dict[str, Predictions], dict[str, dict[str, float]]]:  # fmt: skip
    """Predictions of every split (of the sampled ``train_rows`` for train) and their metrics; train
    metrics are computed on a sample of at most ``train_metrics_rows`` of those rows."""
    estimator = fitted.pipeline.named_steps["model"]
    predictions = {"test": test_predictions}
    predictions["validation"] = fitted.validation_predictions or predict(
        estimator, fitted.validation_matrix, spec, classes
    )
    predictions["train"] = predict(estimator, fitted.train_matrix[train_rows], spec, classes)
    targets = {**y, "train": y["train"][train_rows]}
    metric_rows = _sample_positions(len(train_rows), spec.train_metrics_rows, spec.seed)
    metrics = {
        name: compute_metrics(
            spec.task, targets[name], _take(predictions[name], metric_rows if name == "train" else None), classes
        )
        for name in SPLITS
    }
    return predictions, metrics


def _rows(data: PreparedData, splits: Splits) -> dict[str, int]:
    """Row counts: read, dropped for a missing target, used, and in each split."""
    return {
        "input": data.rows_in,
        "dropped_missing_target": data.rows_dropped_missing_target,
        "used": len(data.y),
        **splits.sizes(),
    }


def _warnings(data: PreparedData, splits: Splits, fitted: FittedModel) -> tuple[str, ...]:
    """What the data, the split and the category bounds warned about."""
    return (
        data.warnings
        + splits.warnings
        + tuple(
            f"categorical feature {name!r}: kept {len(r.kept)} of {r.distinct} values, "
            f"covering {r.coverage:.1%} of train rows"
            for name, r in fitted.categories.items()
            if len(r.kept) < r.distinct
        )
    )


def business_on_test(metric: BusinessMetric, result: TrainingResult) -> BusinessValue:
    """The business metric of the model's test-split predictions: the positive-class probability
    against the label (binary), or the predicted values against the target (regression)."""
    import numpy as np

    predictions = result.test_predictions
    if metric.task == "regression":
        return metric.evaluate(np.asarray(result.test_target, dtype="float64"), np.asarray(predictions.values))
    positive = np.asarray(result.test_target) == result.classes[1]
    return metric.evaluate(positive.astype("float64"), np.asarray(predictions.probabilities)[:, 1])


# -- I/O ----------------------------------------------------------------------------------------
def load_spec(spec: TrainingSpec | Mapping[str, Any] | str) -> TrainingSpec:
    """A spec from a spec, a mapping, or the path of a YAML file."""
    if isinstance(spec, TrainingSpec):
        return spec
    if isinstance(spec, Mapping):
        return TrainingSpec.from_mapping(spec)
    if isinstance(spec, str) and spec.strip().endswith((".yaml", ".yml", ".json")) and "\n" not in spec:
        return TrainingSpec.from_yaml(spec.strip())
    raise SpecError(
        f"A training spec must be a mapping or the path of a .yaml/.yml/.json file. Got {str(spec)[:200]!r} instead."
    )


def run_training(
    spec: TrainingSpec,
    *,
    root: StorageRoot,
    snapshot_uri: str,
    snapshot_sha256: str | None,
    pipeline: str,
    partition: str,
    experiment_id: str,
    tags: Mapping[str, str] | None = None,
    run_name: str | None = None,
    on_start: Callable[[str, str], None] | None = None,
    requirements: FeatureRequirements | None = None,
    business_metric: Mapping[str, Any] | None = None,
) -> TrainingReceipt:
    """Train on a snapshot and record the run in MLflow (the tracking URI must already be set, which
    :meth:`MlflowHook.activate` does).

    Order, so that nothing is half-published: the run opens (status RUNNING) with its lineage tags and
    dataset input; training and the parity check run; the test split is written atomically to
    ``{root}/{pipeline}/evaluation/{partition}/test.parquet``; then the model, ONNX file, spec,
    reference sample, metrics and plots are logged and the run is closed FINISHED. Any failure closes
    the run FAILED with the error in the ``mlops.error`` tag, and the exception propagates.

    :param tags: lineage tags for the run (DAG id, run id, task id, try number, git sha ...); the
        pipeline, dataset URI and sha256, package version and test split URI are added here.
    :param on_start: called with ``(experiment_id, run_id)`` as soon as the run exists (the operator
        publishes its extra link with it, so a failed run is one click away too).
    :param requirements: the pipeline's feature requirements: a spec whose features break one (by name,
        or by values that look like personal data) is refused before a run is opened.
    :param business_metric: the pipeline's :class:`~airflow_mlops.core.pipeline.business.BusinessMetric` mapping,
        measured on the test split and logged as ``test_<name>`` (and in the receipt's ``business``).
    """
    from airflow_mlops.core.pipeline.business import BusinessMetric
    from airflow_mlops.core.training import tracking

    # Parsed first: a bad definition fails before a run is opened.
    business = None if business_metric is None else BusinessMetric.from_mapping(business_metric, spec.task)

    where = f"The training spec of pipeline {pipeline!r}"
    if requirements is not None:
        requirements.check(spec.features, where=where)
    test_split_uri = root.layout(pipeline, contracts.KIND_EVALUATION, partition, "test.parquet")
    frame, dataset_sha256 = read_snapshot(root, snapshot_uri, snapshot_sha256)
    # A spec that names columns the data lacks fails here, before a run is opened or anything logged.
    check_columns(frame, spec)
    if requirements is not None:
        refuse(requirements.personal_data_violations(feature_samples(frame, spec.features)), where=where)
    lineage = _lineage(tags, pipeline, snapshot_uri, dataset_sha256, test_split_uri)
    with tracking.training_run(experiment_id, run_name or f"{pipeline}-{partition}", lineage) as run:
        if on_start is not None:
            on_start(run.experiment_id, run.run_id)
        run.log_dataset(frame, snapshot_uri, dataset_sha256, spec, pipeline)
        run.log_spec_params(spec)
        result = train_model(frame, spec)
        test_split_sha256 = write_frame(root, test_split_uri, result.test_frame)
        logged = run.log_result(
            result,
            test_split_uri=test_split_uri,
            test_split_sha256=test_split_sha256,
            dataset_uri=snapshot_uri,
            dataset_sha256=dataset_sha256,
        )
        summary = result.summary()
        if business is not None:
            summary["business"] = run.log_business(business, business_on_test(business, result))
    return TrainingReceipt(
        run_id=logged.run_id,
        experiment_id=logged.experiment_id,
        model_uri=logged.model_uri,
        onnx_uri=logged.onnx_uri,
        onnx_sha256=result.onnx_sha256,
        spec_uri=logged.spec_uri,
        reference_uri=logged.reference_uri,
        test_split_uri=test_split_uri,
        test_split_sha256=test_split_sha256,
        dataset_uri=snapshot_uri,
        dataset_sha256=dataset_sha256,
        result=summary,
        mlflow_seconds=run.seconds,
    )


def _lineage(
    tags: Mapping[str, str] | None, pipeline: str, snapshot_uri: str, dataset_sha256: str, test_split_uri: str
) -> dict[str, str]:
    """The run's lineage tags: the caller's, plus the pipeline, dataset, package version and test split."""
    return {
        **dict(tags or {}),
        contracts.TAG_PIPELINE: pipeline,
        contracts.TAG_DATASET_URI: snapshot_uri,
        contracts.TAG_DATASET_SHA256: dataset_sha256,
        contracts.TAG_PACKAGE_VERSION: __version__,
        contracts.TAG_TEST_SPLIT_URI: test_split_uri,
    }
