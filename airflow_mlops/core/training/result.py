"""What training produces: :class:`TrainingResult`, everything
:func:`~airflow_mlops.core.training.run.train_model` made (in memory), and :class:`TrainingReceipt`, the
small JSON-able record :func:`~airflow_mlops.core.training.run.run_training` hands back. A leaf module:
tracking and plots read these types without importing the training run."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops import __version__
from airflow_mlops.core.training.ablation import ablation_summary
from airflow_mlops.core.training.export import expected_outputs

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.metrics import Predictions
    from airflow_mlops.core.onnx_model import OnnxInput
    from airflow_mlops.core.pipeline.business import BusinessMetric, BusinessValue
    from airflow_mlops.core.training.ablation import AblationReport
    from airflow_mlops.core.training.export import ParityReport
    from airflow_mlops.core.training.model import CategoryReport, TrialResult
    from airflow_mlops.core.training.spec import TrainingSpec

SPLITS = ("train", "validation", "test")
ModelFitKind = Literal["refit_all", "train_only"]


@dataclass(frozen=True)
class ModelFit:
    """Which model the run judged and which it registers.

    The metrics of a run are always the selection model's: fitted on the train split, selected on the
    validation split, judged on the out-of-time test split. With ``refit_all`` the registered model is
    that configuration refitted on every row (see :mod:`~airflow_mlops.core.training.refit`), and the
    selection metrics are the estimate of it; the selection model's ONNX is kept so the gate can judge
    it on the test split, which the refit has seen.

    :param kind: ``refit_all`` (registered = refit on every row) or ``train_only`` (registered = judged).
    :param rows: rows the registered model was fitted on.
    :param selected_iterations: boosting iterations early stopping selected (None: not a boosted model).
    :param refit_iterations: iterations of the refit, by the rule in the refit module (``refit_all``).
    :param selection_onnx_bytes: the judged selection model's ONNX, when it is not the registered one.
    :param selection_parity: its parity on the test split.
    :param selection_pipeline: its native pipeline (logged for the gate's parity re-check).
    :param selection_reference: a seeded sample of its train rows with its predictions (the gate's
        baseline learns from it; the registered reference samples every row, test rows included).
    """

    kind: ModelFitKind
    rows: int
    selected_iterations: int | None
    refit_iterations: int | None = None
    selection_onnx_bytes: bytes | None = None
    selection_parity: ParityReport | None = None
    selection_pipeline: Pipeline | None = field(default=None, compare=False, repr=False)
    selection_reference: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    @property
    def selection_onnx_sha256(self) -> str | None:
        from airflow_mlops.core.storage import sha256_bytes

        return None if self.selection_onnx_bytes is None else sha256_bytes(self.selection_onnx_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_fit": self.kind,
            "registered_rows": self.rows,
            "selected_iterations": self.selected_iterations,
            "refit_iterations": self.refit_iterations,
            "judged_model": "selection" if self.selection_onnx_bytes is not None else "registered",
            "selection_onnx_sha256": self.selection_onnx_sha256,
            "selection_parity": None if self.selection_parity is None else self.selection_parity.to_dict(),
        }


@dataclass(frozen=True)
class TrainingResult:
    """Everything :func:`train_model` produced. Big members (frames, the pipeline, ONNX bytes) stay in
    memory; :meth:`summary` is the small JSON-able part.

    ``pipeline``, ``onnx_bytes``, ``parity``, ``params``, ``categories``, ``importance`` and ``reference``
    describe the registered model; ``metrics``, ``best_iteration``, ``trials`` and ``test_predictions``
    the selection model judged on the test split (the same model unless ``fit.kind`` is ``refit_all``).
    """

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
    fit: ModelFit
    ablation: AblationReport | None = None
    transforms: dict[str, Any] | None = None  # the feature transforms' receipt: dimensions, matched rows

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
                "fit": self.fit.to_dict(),
                "trained_with": library_versions(),
                "feature_transforms": self.transforms,
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
            "fit": self.fit.to_dict(),
            "trials": len(self.trials),
            "categories": {name: report.to_dict() for name, report in self.categories.items()},
            "warnings": list(self.warnings),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "ablation": ablation_summary(self.ablation),
            **({"feature_transforms": self.transforms} if self.transforms is not None else {}),
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


def business_on_test(metric: BusinessMetric, result: TrainingResult) -> BusinessValue:
    """The business metric of the model's test-split predictions: the positive-class probability
    against the label (binary), or the predicted values against the target (regression)."""
    import numpy as np

    predictions = result.test_predictions
    if metric.task == "regression":
        return metric.evaluate(np.asarray(result.test_target, dtype="float64"), np.asarray(predictions.values))
    positive = np.asarray(result.test_target) == result.classes[1]
    return metric.evaluate(positive.astype("float64"), np.asarray(predictions.probabilities)[:, 1])
