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

import io
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops import __version__
from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.metrics import Predictions, compute_metrics
from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.pipeline.requirements import FeatureRequirements, refuse
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.core.training.data import PreparedData, check_columns, onnx_inputs, prepare, split_rows
from airflow_mlops.core.training.export import ParityError, ParityReport, check_parity, expected_outputs, export_onnx
from airflow_mlops.core.training.model import CategoryReport, TrialResult, feature_importance, fit_model, predict
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.pipeline.business import BusinessMetric, BusinessValue

__all__ = [
    "ParityError",
    "TrainingReceipt",
    "TrainingResult",
    "TrainingSpec",
    "load_spec",
    "read_snapshot",
    "run_training",
    "split_frame",
    "train_model",
]

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TrainingResult:
    """Everything :func:`train_model` produced. Big members (frames, the pipeline, ONNX bytes) stay in
    memory; :meth:`summary` is the small JSON-able part."""

    spec: TrainingSpec
    pipeline: Pipeline
    onnx_bytes: bytes
    onnx_sha256: str
    onnx_inputs: tuple[OnnxInput, ...]
    classes: tuple[Any, ...]
    metrics: dict[str, dict[str, float]]
    parity: ParityReport
    params: dict[str, Any]
    best_iteration: int | None
    trials: tuple[TrialResult, ...]
    categories: dict[str, CategoryReport]
    importance: dict[str, float]
    rows: dict[str, int]
    warnings: tuple[str, ...]
    test_frame: pd.DataFrame
    test_target: np.ndarray
    test_predictions: Predictions
    reference: pd.DataFrame
    seconds: dict[str, float]

    def flat_metrics(self) -> dict[str, float]:
        """``{split}_{metric}`` for every split, as logged to MLflow."""
        return {f"{split}_{name}": value for split in SPLITS for name, value in self.metrics[split].items()}

    def spec_artifact(self) -> dict[str, Any]:
        """The training spec artifact (``contracts.ARTIFACT_SPEC``): the spec plus what scoring, the gate
        and drift need to use the model without this code: classes, ONNX inputs and outputs, vocabulary."""
        document = self.spec.to_dict()
        document.update(
            {
                "classes": list(self.classes),
                "positive_class": self.classes[1] if self.spec.task == "binary" else None,
                "onnx_inputs": [i.to_dict() for i in self.onnx_inputs],
                "onnx_outputs": expected_outputs(self.spec),
                "onnx_sha256": self.onnx_sha256,
                "primary_metric": self.spec.primary_metric,
                "vocabulary": {name: list(report.kept) for name, report in self.categories.items()},
                "model_params": self.params,
                "best_iteration": self.best_iteration,
                "metrics": self.metrics,
                "parity": self.parity.to_dict(),
                "rows": self.rows,
                "trained_with": library_versions(),
            }
        )
        return document

    def summary(self) -> dict[str, Any]:
        return {
            "onnx_sha256": self.onnx_sha256,
            "onnx_size_bytes": len(self.onnx_bytes),
            "metrics": self.metrics,
            "primary_metric": self.spec.primary_metric,
            "parity": self.parity.to_dict(),
            "rows": dict(self.rows),
            "best_iteration": self.best_iteration,
            "trials": len(self.trials),
            "categories": {name: report.to_dict() for name, report in self.categories.items()},
            "warnings": list(self.warnings),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def library_versions() -> dict[str, str]:
    import lightgbm
    import onnx
    import onnxmltools
    import onnxruntime
    import pandas
    import skl2onnx
    import sklearn

    return {
        "airflow_mlops": __version__,
        "scikit-learn": sklearn.__version__,
        "lightgbm": lightgbm.__version__,
        "pandas": pandas.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnxmltools": onnxmltools.__version__,
    }


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
    """A seeded sample of at most ``reference_rows`` train rows: features, target and predictions.

    ``train_rows`` are the positions (into ``data.frame``) that ``train`` predicts, in the same order.
    """
    import numpy as np

    picked = _sample_positions(len(train_rows), spec.reference_rows, spec.seed)
    reference = data.frame.iloc[train_rows[picked]][[*spec.features, spec.target]].reset_index(drop=True)
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
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    data = prepare(frame, spec)
    splits = split_rows(data, spec)
    lap("prepare")
    x = {name: data.x.iloc[getattr(splits, name)] for name in SPLITS}
    y = {name: data.y[getattr(splits, name)] for name in SPLITS}
    # Train rows whose predictions are needed: the train-metric sample and the drift reference.
    train_rows = _sample_positions(len(y["train"]), max(spec.train_metrics_rows, spec.reference_rows), spec.seed)
    fitted = fit_model(spec, x["train"], y["train"], x["validation"], y["validation"], data.classes)
    lap("fit")
    estimator = fitted.pipeline.named_steps["model"]
    test_matrix = fitted.pipeline.named_steps["features"].transform(x["test"])
    inputs = onnx_inputs(spec)
    # The converter is Python (holds the GIL); native prediction is C++ (releases it): run them side by side.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="native-test") as pool:
        native_test = pool.submit(predict, estimator, test_matrix, spec, data.classes)
        model_bytes = export_onnx(fitted.pipeline, spec, inputs, data.classes)
        predictions = {"test": native_test.result()}
    lap("export")
    predictions["validation"] = fitted.validation_predictions or predict(
        estimator, fitted.validation_matrix, spec, data.classes
    )
    predictions["train"] = predict(estimator, fitted.train_matrix[train_rows], spec, data.classes)
    targets = {**y, "train": y["train"][train_rows]}
    metric_rows = _sample_positions(len(train_rows), spec.train_metrics_rows, spec.seed)
    metrics = {
        name: compute_metrics(
            spec.task, targets[name], _take(predictions[name], metric_rows if name == "train" else None), data.classes
        )
        for name in SPLITS
    }
    lap("evaluate")
    test_frame = data.frame.iloc[splits.test].reset_index(drop=True)
    parity = check_parity(model_bytes, inputs, spec, test_frame, predictions["test"], data.classes)
    lap("parity")
    reference = _reference(data, splits.train[train_rows], predictions["train"], spec, data.classes)
    importance = feature_importance(fitted, spec)
    lap("reference")
    rows = {
        "input": data.rows_in,
        "dropped_missing_target": data.rows_dropped_missing_target,
        "used": len(data.y),
        **splits.sizes(),
    }
    warnings = data.warnings + splits.warnings
    warnings += tuple(
        f"categorical feature {name!r}: kept {len(r.kept)} of {r.distinct} values, "
        f"covering {r.coverage:.1%} of train rows"
        for name, r in fitted.categories.items()
        if len(r.kept) < r.distinct
    )
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
        rows=rows,
        warnings=warnings,
        test_frame=test_frame,
        test_target=y["test"],
        test_predictions=predictions["test"],
        reference=reference,
        seconds=seconds,
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


def read_snapshot(root: StorageRoot, uri: str, expected_sha256: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a Parquet snapshot; verify its sha256 when one is given. Returns the frame and its sha256.

    The snapshot may live inside the storage root (local or S3) or be any local file.

    :raises IntegrityError: the content does not hash to ``expected_sha256``.
    :raises DataError: the file is not readable Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.errors import IntegrityError, SourceNotFoundError

    if root.contains(uri):
        source = root
    elif uri.startswith("s3://"):
        raise SpecError(
            f"The snapshot {uri!r} lies outside the storage root {root.uri!r}; S3 snapshots must be inside it."
        )
    else:  # a local file anywhere (a shipped sample, a file produced outside the pipeline)
        path = os.path.abspath(uri[len("file://") :] if uri.startswith("file://") else uri)
        source, uri = StorageRoot(os.path.dirname(path)), path
    try:
        content = source.read_bytes(uri)
    except SourceNotFoundError as exc:
        raise SourceNotFoundError(f"The snapshot {uri!r} does not exist.") from exc
    digest = sha256_bytes(content)
    if expected_sha256 and digest != expected_sha256.strip().lower():
        raise IntegrityError(
            f"The snapshot {uri!r} has sha256 {digest}, but {expected_sha256} was recorded when it was ingested: "
            "it changed since. Refusing to train on it."
        )
    try:
        table = pq.read_table(pa.BufferReader(content))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"The snapshot {uri!r} is not a readable Parquet file: {exc}") from exc
    return table.to_pandas(), digest


def feature_samples(frame: pd.DataFrame, features: tuple[str, ...], rows: int = 10_000) -> dict[str, list[Any]]:
    """The first ``rows`` values of each text feature (what the personal-data detector reads); other
    features by name only (numbers are not inspected, a name such as ``email`` still is)."""
    from pandas.api.types import is_numeric_dtype

    head = frame.head(rows)
    return {name: [] if is_numeric_dtype(head[name]) else head[name].tolist() for name in features}


def write_frame(root: StorageRoot, uri: str, frame: pd.DataFrame) -> str:
    """Write ``frame`` as Parquet to ``uri`` atomically; return the content's sha256."""
    return root.write_bytes(uri, parquet_bytes(frame))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()


@dataclass(frozen=True)
class TrainingReceipt:
    """What :func:`run_training` hands back (JSON-able through :meth:`to_dict`)."""

    run_id: str
    experiment_id: str
    model_uri: str
    onnx_uri: str
    onnx_sha256: str
    spec_uri: str
    reference_uri: str
    test_split_uri: str
    test_split_sha256: str
    dataset_uri: str
    dataset_sha256: str
    result: dict[str, Any]
    mlflow_seconds: float

    def to_dict(self) -> dict[str, Any]:
        summary = dict(self.result)
        rows = summary.pop("rows")
        return {
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "onnx_uri": self.onnx_uri,
            "onnx_sha256": self.onnx_sha256,
            "spec_uri": self.spec_uri,
            "reference_uri": self.reference_uri,
            "test_split_uri": self.test_split_uri,
            "test_split_sha256": self.test_split_sha256,
            "dataset_uri": self.dataset_uri,
            "dataset_sha256": self.dataset_sha256,
            "rows_used": rows["used"],
            "rows_dropped": rows["dropped_missing_target"],
            "rows": rows,
            **summary,
            "mlflow_seconds": round(self.mlflow_seconds, 3),
        }


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
    lineage = {
        **dict(tags or {}),
        contracts.TAG_PIPELINE: pipeline,
        contracts.TAG_DATASET_URI: snapshot_uri,
        contracts.TAG_DATASET_SHA256: dataset_sha256,
        contracts.TAG_PACKAGE_VERSION: __version__,
        contracts.TAG_TEST_SPLIT_URI: test_split_uri,
    }
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
