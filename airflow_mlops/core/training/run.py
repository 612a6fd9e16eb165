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
from typing import TYPE_CHECKING, Any

from airflow_mlops import __version__
from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import Predictions, compute_metrics
from airflow_mlops.core.pipeline.requirements import FeatureRequirements, refuse
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.core.training.ablation import log_ablation, permutation_ablation
from airflow_mlops.core.training.data import PreparedData, Splits, check_columns, onnx_inputs, prepare, split_rows
from airflow_mlops.core.training.export import ParityReport
from airflow_mlops.core.training.frames import feature_samples, read_snapshot, write_frame
from airflow_mlops.core.training.importance import feature_importance
from airflow_mlops.core.training.model import FittedModel, fit_model, predict, validation_scorer
from airflow_mlops.core.training.predictions import (
    export_and_predict_test,
    reference_sample,
    sample_positions,
    take_rows,
)
from airflow_mlops.core.training.recency import recency_weights
from airflow_mlops.core.training.refit import RegisteredModel, register_refit
from airflow_mlops.core.training.result import SPLITS, ModelFit, TrainingReceipt, TrainingResult, business_on_test
from airflow_mlops.core.training.spec import TrainingSpec
from airflow_mlops.core.training.tuning import log_search_comparison, search_comparison

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.features.apply import Transformer
    from airflow_mlops.core.features.dimensions import SqlEngine
    from airflow_mlops.core.pipeline.business import BusinessMetric
    from airflow_mlops.core.training.tracking import TrainingRun


def split_frame(
    frame: pd.DataFrame, spec: TrainingSpec, *, transformer: Transformer | None = None
) -> dict[str, pd.DataFrame]:
    """The rows of ``frame`` (with a target) in each split, exactly as :func:`train_model` splits them.

    The gate can rebuild the train split of a run from its snapshot and spec with this (for a
    baseline model), without training.
    """
    frame, _ = transformed(frame, spec, transformer)
    data = prepare(frame, spec)
    splits = split_rows(data, spec)
    return {name: data.frame.iloc[getattr(splits, name)].reset_index(drop=True) for name in SPLITS}


def transformed(
    frame: pd.DataFrame, spec: TrainingSpec, transformer: Transformer | None
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """``frame`` with the spec's derived and joined columns, and the transforms' receipt (None without any).

    :raises SpecError: the spec joins dimensions but no transformer (with them loaded) was given.
    """
    if not spec.transforms:
        return frame, None
    if transformer is None:
        from airflow_mlops.core.features.apply import bind
        from airflow_mlops.core.features.dimensions import located_by_root

        rooted = [j.name for j in spec.transforms.joins if located_by_root(j) or j.sql is not None]
        if rooted:
            raise SpecError(
                f"The training spec joins dimension table(s) {rooted} under the storage root or in SQL: pass a "
                "transformer with them loaded (airflow_mlops.core.features.bind(spec.transforms, root, pipeline, ...))."
            )
        transformer = bind(spec.transforms, StorageRoot("."), "-")  # sources under include/ or absolute
    return transformer.apply_frame(frame), transformer.receipt()


def train_model(frame: pd.DataFrame, spec: TrainingSpec, *, transformer: Transformer | None = None) -> TrainingResult:
    """Train, evaluate, export and parity-check a model for ``spec`` on ``frame``.

    ``frame`` holds the input columns; the spec's feature transforms run first (through ``transformer``,
    which holds the dimension tables of its joins), exactly as scoring runs them on each batch.

    The selection model is fitted on the train split (early stopping and search on the validation
    split) and judged on the test split; with ``refit: all`` the selected configuration is then
    refitted on every row and that model is the one exported for registration (see
    :mod:`~airflow_mlops.core.training.refit`).

    :raises DataError: the data does not fit the spec (missing column, single class, leakage, ...).
    :raises SpecError: the estimator rejects its parameters or cannot be exported.
    :raises ParityError: an ONNX graph disagrees with its native model on the test split.
    """
    laps = _Laps()
    frame, transforms = transformed(frame, spec, transformer)
    data = prepare(frame, spec)
    splits = split_rows(data, spec)
    laps.lap("prepare")
    x = {name: data.x.iloc[getattr(splits, name)] for name in SPLITS}
    y = {name: data.y[getattr(splits, name)] for name in SPLITS}
    # Train rows whose predictions are needed: the train-metric sample and the drift reference.
    train_rows = sample_positions(len(y["train"]), max(spec.train_metrics_rows, spec.reference_rows), spec.seed)
    recency = recency_weights(data.frame.iloc[splits.train], spec)
    fitted = fit_model(spec, x["train"], y["train"], x["validation"], y["validation"], data.classes, recency)
    laps.lap("fit")
    ablation = None
    if spec.ablation is not None:  # on the selection model, before any refit sees the validation rows
        scorer = validation_scorer(fitted, spec, data.classes)
        ablation = permutation_ablation(scorer, spec, x["validation"], y["validation"], spec.ablation)
        laps.lap("ablation")
    inputs = onnx_inputs(spec)
    test_frame = data.frame.iloc[splits.test].reset_index(drop=True)
    selection_bytes, test_predictions, parity = export_and_predict_test(
        fitted, spec, x["test"], test_frame, inputs, data.classes
    )
    laps.lap("export")
    predictions, metrics = _evaluate_splits(fitted, spec, y, train_rows, test_predictions, data.classes)
    laps.lap("evaluate")
    reference = reference_sample(data, splits.train[train_rows], predictions["train"], spec, data.classes)
    if spec.refit == "all":
        registered = register_refit(spec, fitted, data, len(splits.train), splits.test, test_frame, inputs)
        laps.lap("refit")
    else:
        registered = RegisteredModel(fitted, selection_bytes, parity, reference, len(splits.train))
    importance = feature_importance(registered.fitted, spec)
    laps.lap("reference")
    return TrainingResult(
        spec=spec,
        pipeline=registered.fitted.pipeline,
        onnx_bytes=registered.onnx_bytes,
        onnx_sha256=sha256_bytes(registered.onnx_bytes),
        onnx_inputs=tuple(inputs),
        classes=data.classes,
        metrics=metrics,
        parity=registered.parity,
        params=registered.fitted.params,
        best_iteration=fitted.best_iteration,
        trials=fitted.trials,
        categories=registered.fitted.categories,
        importance=importance,
        rows=_rows(data, splits, registered.rows),
        warnings=_warnings(data, splits, registered.fitted) + (ablation.warnings() if ablation else ()),
        test_frame=test_frame,
        test_target=y["test"],
        test_predictions=predictions["test"],
        reference=registered.reference,
        seconds=laps.seconds,
        fit=_model_fit(spec, fitted, registered, selection_bytes, parity, reference),
        ablation=ablation,
        transforms=transforms,
    )


def _model_fit(
    spec: TrainingSpec, selected: FittedModel, registered: RegisteredModel, selection_bytes: bytes,
    selection_parity: ParityReport, selection_reference: pd.DataFrame,
) -> ModelFit:  # fmt: skip
    """Which model was judged (the selection model) and which is registered."""
    if spec.refit != "all":
        return ModelFit("train_only", registered.rows, selected.best_iteration)
    return ModelFit(
        "refit_all",
        registered.rows,
        selected.best_iteration,
        refit_iterations=registered.fitted.best_iteration,
        selection_onnx_bytes=selection_bytes,
        selection_parity=selection_parity,
        selection_pipeline=selected.pipeline,
        selection_reference=selection_reference,
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
    metric_rows = sample_positions(len(train_rows), spec.train_metrics_rows, spec.seed)
    metrics = {
        name: compute_metrics(
            spec.task, targets[name], take_rows(predictions[name], metric_rows if name == "train" else None), classes
        )
        for name in SPLITS
    }
    return predictions, metrics


def _rows(data: PreparedData, splits: Splits, registered: int) -> dict[str, int]:
    """Row counts: read, dropped for a missing target, outside the window, used, in each split, and
    fitted by the registered model."""
    rows = {
        "input": data.rows_in,
        "dropped_missing_target": data.rows_dropped_missing_target,
        "used": len(data.y),
        **splits.sizes(),
        "registered_fit": registered,
    }
    if data.rows_outside_window:
        rows["outside_window"] = data.rows_outside_window
    return rows


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
    sql_engine: SqlEngine | None = None,
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
    :param sql_engine: a connection id -> a SQLAlchemy engine, for joins whose dimension is a SQL table.
    """
    from airflow_mlops.core.training import tracking

    business, frame, dataset_sha256, transformer = _checked_inputs(
        spec, root, snapshot_uri, snapshot_sha256, pipeline, requirements, business_metric, sql_engine
    )
    test_split_uri = root.layout(pipeline, contracts.KIND_EVALUATION, partition, "test.parquet")
    lineage = _lineage(tags, pipeline, snapshot_uri, dataset_sha256, test_split_uri)
    with tracking.training_run(experiment_id, run_name or f"{pipeline}-{partition}", lineage) as run:
        if on_start is not None:
            on_start(run.experiment_id, run.run_id)
        run.log_dataset(frame, snapshot_uri, dataset_sha256, spec, pipeline)
        run.log_spec_params(spec)
        result = train_model(frame, spec, transformer=transformer)
        if result.transforms is not None:
            run.log_transform_tags(result.transforms)
        test_split_sha256 = write_frame(root, test_split_uri, result.test_frame)
        logged = run.log_result(
            result,
            test_split_uri=test_split_uri,
            test_split_sha256=test_split_sha256,
            dataset_uri=snapshot_uri,
            dataset_sha256=dataset_sha256,
        )
        summary = _log_studies(run, logged.run_id, result, business)
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


def _log_studies(
    run: TrainingRun, run_id: str, result: TrainingResult, business: BusinessMetric | None
) -> dict[str, Any]:
    """The result's summary, with what was logged beside the model: the ablation, the search against the
    hand-set parameters, and the business metric of the test predictions."""
    summary = result.summary()
    if result.ablation is not None:
        log_ablation(run_id, result.ablation)
    searched = search_comparison(result.trials, result.spec.primary_metric)
    if searched is not None:
        log_search_comparison(run_id, searched)
        summary["search"] = searched
    if business is not None:
        summary["business"] = run.log_business(business, business_on_test(business, result))
    return summary


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


def _checked_inputs(
    spec: TrainingSpec,
    root: StorageRoot,
    snapshot_uri: str,
    snapshot_sha256: str | None,
    pipeline: str,
    requirements: FeatureRequirements | None,
    business_metric: Mapping[str, Any] | None,
    sql_engine: SqlEngine | None,
) -> tuple[Any, pd.DataFrame, str, Transformer | None]:
    """Everything that can refuse a training before a run is opened: the business metric's definition,
    the feature requirements (by name, then by values that look like personal data), the snapshot's
    checksum, the spec's columns and the dimension tables its joins read. Returns the parsed business
    metric, the snapshot, its sha256 and the bound transforms (None without any)."""
    from airflow_mlops.core.pipeline.business import BusinessMetric

    business = None if business_metric is None else BusinessMetric.from_mapping(business_metric, spec.task)
    where = f"The training spec of pipeline {pipeline!r}"
    if requirements is not None:
        requirements.check(spec.features, where=where, transforms=spec.transforms)
    frame, dataset_sha256 = read_snapshot(root, snapshot_uri, snapshot_sha256)
    check_columns(frame, spec, raw=True)
    if requirements is not None:
        samples = feature_samples(frame, tuple(spec.input_columns))
        refuse(requirements.personal_data_violations(samples), where=where)
    transformer = None
    if spec.transforms:
        from airflow_mlops.core.features.apply import bind

        transformer = bind(spec.transforms, root, pipeline, sql_engine)
        transformer.check_frame(frame)
    return business, frame, dataset_sha256, transformer
