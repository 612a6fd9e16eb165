"""Record a training run in MLflow: lineage, dataset inputs, params, metrics, models, plots, trials.

Uses MLflow's fluent API against whatever tracking URI is active (the MLflow hook sets it from the
Airflow connection, or the embedded store). Run artifacts (paths from :mod:`contracts`)::

    model/                      native scikit-learn pipeline (MLflow sklearn flavor, signature, example)
    model_selection/            refit: all only: the selection model's native pipeline (same flavor)
    lightgbm/model.txt          LightGBM only: the booster's text model (serving.runtime compiled); sha256 in
                                the tag mlops.lightgbm_sha256
    onnx/                       the registered model as an MLflow model (onnx + python_function flavors,
                                signature, example; :mod:`mlflow_model`), the version's source
    onnx/model.onnx             its exported graph; its sha256 is the tag mlops.onnx_sha256
    onnx_selection/             refit: all only: the selection model the metrics (and the gate) judge, the same
                                kind of MLflow model; model.onnx's sha256 is the tag mlops.selection_onnx_sha256
    reference_selection/        refit: all only: its train-split sample with its predictions
    spec/training_spec.json     spec + classes + onnx_inputs + vocabulary + metrics
    reference/reference.parquet bounded training sample with predictions, the drift reference
    plots/*.png                 ROC / PR / confusion matrix or residuals, feature importance
    importance/feature_importance.json
    training/summary.json       rows, parity, warnings, timings
    search/trials.json          every search trial (each also a nested run)

All files go up in one ``log_artifacts`` call; the native model is logged with explicit pip
requirements (inferring them costs seconds per run).
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.training.booster import write_lightgbm_text
from airflow_mlops.core.training.export import ParityError
from airflow_mlops.core.training.frames import parquet_bytes
from airflow_mlops.core.training.run_tags import fit_tags, run_note
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.pipeline.business import BusinessMetric, BusinessValue
    from airflow_mlops.core.training.result import TrainingResult

TAG_ERROR = contracts.TAG_PREFIX + "error"
TAG_TRIAL = contracts.TAG_PREFIX + "trial"
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 8000
EXAMPLE_ROWS = 5
SCHEMA_ROWS = 1000


@dataclass(frozen=True)
class LoggedRun:
    """Where a training run's outputs live in MLflow."""

    run_id: str
    experiment_id: str
    model_uri: str
    onnx_uri: str
    spec_uri: str
    reference_uri: str


def run_artifact_uri(run_id: str, path: str) -> str:
    """``runs:/<run_id>/<path>``: resolvable with ``mlflow.artifacts.download_artifacts``."""
    return f"runs:/{run_id}/{path}"


def pip_requirements(spec: TrainingSpec) -> list[str]:
    """Exact pins of what loading the native pipeline needs (explicit: inferring them is slow)."""
    from importlib.metadata import PackageNotFoundError, version

    names = ["scikit-learn", "numpy", "scipy", "pandas", "cloudpickle"]
    if spec.estimator.is_lightgbm:
        names.append("lightgbm")
    elif "." in spec.estimator.type:
        top = spec.estimator.type.split(".", 1)[0]
        if top not in {"sklearn"}:
            names.append(top)
    pins = []
    for name in names:
        with contextlib.suppress(PackageNotFoundError):
            pins.append(f"{name}=={version(name)}")
    return pins


def _clip(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class TrainingRun:
    """The open MLflow run of one training; counts the seconds spent talking to MLflow."""

    def __init__(self, run_id: str, experiment_id: str) -> None:
        self.run_id = run_id
        self.experiment_id = experiment_id
        self.seconds = 0.0

    @contextlib.contextmanager
    def _timed(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    def log_dataset(self, frame: pd.DataFrame, uri: str, sha256: str, spec: TrainingSpec, pipeline: str) -> None:
        """The snapshot as the run's training input (source = its URI, digest = its sha256)."""
        with self._timed():
            _log_dataset_input(
                self.run_id, frame, uri, f"{pipeline}-snapshot", sha256[:36], spec.target, "training", sha256
            )

    def log_transform_tags(self, receipt: Mapping[str, Any]) -> None:
        """The feature transforms' dimension snapshots as tags (``mlops.dimension.<join>.sha256``); the
        whole receipt is in the spec artifact's ``feature_transforms``."""
        import mlflow

        with self._timed():
            mlflow.set_tags(
                {
                    f"mlops.dimension.{name}.{key}": str(join[key])
                    for name, join in receipt["joins"].items()
                    for key in ("sha256", "uri")
                }
            )

    def log_spec_params(self, spec: TrainingSpec) -> None:
        import mlflow

        params: dict[str, Any] = {
            "task": spec.task,
            "target": spec.target,
            "numeric_features": ",".join(spec.numeric_features),
            "categorical_features": ",".join(spec.categorical_features),
            "estimator": spec.estimator.type,
            "split.method": spec.split.method,
            "split.column": spec.split.column,
            "split.fractions": f"{spec.split.train}/{spec.split.validation}/{spec.split.test}",
            "class_weight": spec.class_weight,
            "early_stopping_rounds": spec.effective_early_stopping_rounds,
            "categories.max": spec.categories.max,
            "categories.min_frequency": spec.categories.min_frequency,
            "seed": spec.seed,
            "parity_tolerance": spec.parity_tolerance,
        }
        if spec.search:
            params.update({"search.trials": spec.search.trials, "search.metric": spec.search.metric})
        with self._timed():
            mlflow.log_params({k: _clip(v if v is not None else "none", MAX_PARAM_LENGTH) for k, v in params.items()})

    def log_result(
        self,
        result: TrainingResult,
        *,
        test_split_uri: str,
        test_split_sha256: str,
        dataset_uri: str,
        dataset_sha256: str,
    ) -> LoggedRun:
        """Everything a finished training produced (see the module docstring for the layout)."""
        import mlflow

        from airflow_mlops.core.training.mlflow_model import save_onnx_models
        from airflow_mlops.core.training.plots import render_plots

        with self._timed(), tempfile.TemporaryDirectory(prefix="mlops-training-") as tmp:
            folder = Path(tmp)
            spec_document = result.spec_artifact()
            spec_document.update(
                {"dataset_uri": dataset_uri, "dataset_sha256": dataset_sha256, "test_split_uri": test_split_uri}
            )
            save_onnx_models(folder, result)
            booster_tags = write_lightgbm_text(result.pipeline, folder)
            if result.fit.selection_reference is not None and result.fit.selection_onnx_bytes is not None:
                _write(folder / contracts.ARTIFACT_REFERENCE_SELECTION, parquet_bytes(result.fit.selection_reference))
            _write(folder / contracts.ARTIFACT_SPEC, _json(spec_document))
            _write(folder / contracts.ARTIFACT_REFERENCE, parquet_bytes(result.reference))
            _write(folder / "importance" / "feature_importance.json", _json(result.importance))
            _write(folder / "training" / "summary.json", _json(result.summary()))
            if result.trials:
                _write(folder / "search" / "trials.json", _json([t.to_dict() for t in result.trials]))
            render_plots(result, folder / "plots")
            self._log_numbers(result)
            self._log_trials(result)
            model_uri = self._log_native_model(result, result.pipeline, contracts.ARTIFACT_NATIVE_MODEL)
            if result.fit.selection_pipeline is not None:
                self._log_native_model(result, result.fit.selection_pipeline, contracts.ARTIFACT_NATIVE_SELECTION_MODEL)
            mlflow.log_artifacts(str(folder))
            self._log_test_input(result, test_split_uri, test_split_sha256)
            mlflow.set_tags({**fit_tags(result), **booster_tags, "mlflow.note.content": run_note(result)})
        return LoggedRun(
            run_id=self.run_id,
            experiment_id=self.experiment_id,
            model_uri=model_uri,
            onnx_uri=run_artifact_uri(self.run_id, contracts.ARTIFACT_ONNX),
            spec_uri=run_artifact_uri(self.run_id, contracts.ARTIFACT_SPEC),
            reference_uri=run_artifact_uri(self.run_id, contracts.ARTIFACT_REFERENCE),
        )

    def log_business(self, metric: BusinessMetric, value: BusinessValue) -> dict[str, Any]:
        """The business metric on the test split, as ``test_<name>`` beside the proxy metrics; its
        definition as the ``business_metric`` param. Returns it for the receipt."""
        import mlflow

        with self._timed():
            mlflow.log_param("business_metric", _clip(metric.describe(), MAX_PARAM_LENGTH))
            if value.value is not None:
                mlflow.log_metric(metric.training_key, value.value)
        return {**value.to_dict(), "description": metric.describe()}

    def _log_numbers(self, result: TrainingResult) -> None:
        import mlflow

        params = {f"model.{k}": _clip(v, MAX_PARAM_LENGTH) for k, v in sorted(result.params.items())}
        params["model.best_iteration"] = str(result.best_iteration)
        fit = {
            "refit_rows": result.fit.rows,
            "selected_iterations": result.fit.selected_iterations,
            "refit_iterations": result.fit.refit_iterations,
        }
        params.update({name: str(value) for name, value in fit.items()})
        mlflow.log_params(params)
        metrics = result.flat_metrics()
        metrics[f"parity_{result.parity.measure}"] = result.parity.value
        metrics["onnx_size_bytes"] = float(len(result.onnx_bytes))
        metrics.update({f"rows_{k}": float(v) for k, v in result.rows.items()})
        if result.best_iteration is not None:
            metrics["best_iteration"] = float(result.best_iteration)
        metrics.update({name: float(value) for name, value in fit.items() if value is not None})
        mlflow.log_metrics(metrics)

    def _log_trials(self, result: TrainingResult) -> None:
        import mlflow

        for trial in result.trials:
            with mlflow.start_run(
                experiment_id=self.experiment_id,  # nested runs otherwise land in the active (default) experiment
                run_name=f"trial-{trial.number}",
                nested=True,
                tags={TAG_TRIAL: str(trial.number)},
            ):
                mlflow.log_params({k: _clip(v, MAX_PARAM_LENGTH) for k, v in trial.params.items()})
                metrics = {f"validation_{k}": v for k, v in trial.metrics.items()}
                metrics["fit_seconds"] = trial.seconds
                if trial.best_iteration is not None:
                    metrics["best_iteration"] = float(trial.best_iteration)
                mlflow.log_metrics(metrics)

    def _log_native_model(self, result: TrainingResult, pipeline: Pipeline, name: str) -> str:
        """A fitted pipeline in MLflow's sklearn flavor, with signature and input example: the registered
        model as ``model``, and with ``refit: all`` the selection model as ``model_selection``.

        Serialised with cloudpickle. The native model is for people and notebooks: every serving
        path in this package loads the ONNX file and checks its sha256, and never unpickles. (skops,
        MLflow's safer format, costs seconds per task just to import, and MLflow gates loading every
        format behind the same MLFLOW_ALLOW_PICKLE_DESERIALIZATION flag anyway.)
        """
        import mlflow.sklearn
        from mlflow.models import infer_signature

        from airflow_mlops.core.training.data import feature_frame

        example = feature_frame(result.test_frame.head(EXAMPLE_ROWS), result.spec).reset_index(drop=True)
        with _no_user_warnings():
            signature = infer_signature(example, pipeline.predict(example))
        with _quiet("mlflow.sklearn"):  # the pickle caution is logged on every save
            info = mlflow.sklearn.log_model(
                pipeline,
                name=name,
                signature=signature,
                input_example=example,
                pip_requirements=pip_requirements(result.spec),
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            )
        return str(info.model_uri)

    def _log_test_input(self, result: TrainingResult, test_split_uri: str, test_split_sha256: str) -> None:
        _log_dataset_input(
            self.run_id,
            result.test_frame,
            test_split_uri,
            "test-split",
            test_split_sha256[:36],
            result.spec.target,
            "test",
            test_split_sha256,
        )


def _log_dataset_input(
    run_id: str,
    frame: pd.DataFrame,
    uri: str,
    name: str,
    digest: str,
    target: str,
    context: str,
    sha256: str,
) -> None:
    """Log ``frame`` as a dataset input of the run (``mlflow.data.from_pandas`` with its source URI).

    ``from_pandas`` infers the schema by looking at every value of every object column in Python
    (11 s for the flights year); it is given the first rows for the schema, and the profile (row and
    element counts) is then set from the whole frame.
    """
    import json as _json_module

    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    with _no_user_warnings():
        config = from_pandas(frame.head(SCHEMA_ROWS), source=uri, name=name, targets=target, digest=digest).to_dict()
    config["profile"] = _json_module.dumps({"num_rows": len(frame), "num_elements": int(frame.size)})
    dataset = Dataset(**config)
    tags = [InputTag(MLFLOW_DATASET_CONTEXT, context), InputTag("sha256", sha256), InputTag("uri", uri)]
    MlflowClient().log_inputs(run_id, datasets=[DatasetInput(dataset, tags=tags)])


@contextlib.contextmanager
def _no_user_warnings() -> Iterator[None]:
    """MLflow warns while guessing a dataset's source type and about integer columns in schemas;
    neither is actionable here (sources are URIs we chose, integer features are fed as float)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        yield


@contextlib.contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Silence a chatty logger's warnings for the duration of one call."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=str).encode("utf-8")


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


@contextlib.contextmanager
def training_run(experiment_id: str, run_name: str, tags: Mapping[str, str]) -> Iterator[TrainingRun]:
    """Open an MLflow run for a training; close it FINISHED, or FAILED with the error recorded."""
    import mlflow

    started = time.perf_counter()
    active = mlflow.start_run(
        experiment_id=experiment_id,
        run_name=run_name,
        tags={k: _clip(str(v), MAX_TAG_LENGTH) for k, v in tags.items() if v is not None},
    )
    run = TrainingRun(active.info.run_id, str(active.info.experiment_id))
    run.seconds += time.perf_counter() - started
    try:
        yield run
    except BaseException as exc:
        with contextlib.suppress(Exception):  # recording the failure must not hide it
            mlflow.set_tag(TAG_ERROR, _clip(f"{type(exc).__name__}: {exc}", MAX_TAG_LENGTH))
            if isinstance(exc, ParityError) and exc.report is not None:
                mlflow.log_metric(f"parity_{exc.report.measure}", exc.report.value)
        mlflow.end_run(status="FAILED")
        raise
    started = time.perf_counter()
    mlflow.end_run(status="FINISHED")
    run.seconds += time.perf_counter() - started
