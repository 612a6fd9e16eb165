"""Two checks that a model version is what its training run says it is.

- :func:`check_training_serving_skew`: the training rows kept in the run's reference sample, with the
  predictions the native model made for them at training time, are written to a Parquet file and
  scored by :func:`~airflow_mlops.core.scoring.run.score_partition`, the serving path itself (Parquet
  reading, dtype coercion, the registered ONNX graph). Any difference beyond the tolerance means the
  features or the model seen at serving are not those of training.
- :func:`check_reproducibility`: retrain the version's spec on its recorded snapshot (verified by its
  sha256) and compare the metrics, and the ONNX sha256, with those the run recorded.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.monitoring.checks import Finding
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.monitoring.facts import ModelVersionFacts
    from airflow_mlops.core.serving import ServingModel

DEFAULT_SKEW_TOLERANCE = 1e-4
DEFAULT_METRIC_TOLERANCE = 1e-6
_SKEW_PARTITION = "skew-check"


def _reference_columns(model: ServingModel) -> list[str]:
    if model.spec.is_classifier:
        return [contracts.PREDICTION_COLUMN, *model.spec.probability_columns]
    return [contracts.PREDICTION_COLUMN]


def check_training_serving_skew(
    reference: pd.DataFrame,
    model: ServingModel,
    *,
    tolerance: float = DEFAULT_SKEW_TOLERANCE,
    max_rows: int | None = None,
) -> Finding:
    """Score the reference rows through the serving path and compare with their training-time predictions.

    Classifiers compare the class probabilities (largest absolute difference) and the labels (share
    that differ); regressors the values, relative to their scale. Above ``tolerance``, or any label
    flip, is an alert.

    :param reference: the run's reference sample (features, target, training-time prediction columns).
    :param max_rows: score only the first ``max_rows`` rows (all when None).
    :raises DataError: the reference lacks a feature or prediction column.
    """
    import numpy as np
    import pandas as pd

    expected_columns = _reference_columns(model)
    missing = [c for c in (*model.spec.feature_columns, *expected_columns) if c not in reference.columns]
    if missing:
        raise DataError(
            f"The reference sample of model {model.name!r} v{model.version} lacks column(s) {missing}: it was not "
            "written by a compatible trainer, so there are no training-time predictions to compare with."
        )
    rows = reference if max_rows is None else reference.head(max_rows)
    if rows.empty:
        raise DataError(f"The reference sample of model {model.name!r} v{model.version} has no rows.")
    from airflow_mlops.core.scoring import ScoringSpec, score_partition
    from airflow_mlops.core.training import parquet_bytes

    with tempfile.TemporaryDirectory(prefix="mlops-skew-") as folder:
        root = StorageRoot(folder)
        source = root.join("input", "reference.parquet")
        # Only the raw feature columns, as an upstream batch would deliver them.
        root.write_bytes(source, parquet_bytes(rows[model.spec.feature_columns]))
        spec = ScoringSpec(
            pipeline="skew",
            partition=_SKEW_PARTITION,
            input_uri=source,
            scored_at=datetime(1970, 1, 1, tzinfo=UTC),
            serving_log_rows=0,
        )
        result = score_partition(root, spec, model)
        served = pd.read_parquet(result.output_uri)
    details: dict[str, Any] = {**_identity(model), "rows": len(rows), "tolerance": tolerance}
    if model.spec.is_classifier:
        trained = rows[model.spec.probability_columns].to_numpy(dtype=np.float64)
        scored = served[model.spec.probability_columns].to_numpy(dtype=np.float64)
        gap = float(np.max(np.abs(trained - scored)))
        # A label may flip where the two top classes tie within float32 rounding: not skew.
        top = np.sort(trained, axis=1)
        decided = (top[:, -1] - top[:, -2]) > 2 * tolerance
        differs = (
            served[contracts.PREDICTION_COLUMN].astype(str).to_numpy()
            != rows[contracts.PREDICTION_COLUMN].astype(str).to_numpy()
        )
        flips = int((differs & decided).sum())
        details.update(max_abs_probability_difference=gap, label_mismatches=flips)
        bad = gap > tolerance or flips > 0
        summary = f"max |probability difference| {gap:.3g}, {flips} label mismatch(es)"
    else:
        trained = rows[contracts.PREDICTION_COLUMN].to_numpy(dtype=np.float64)
        scored = served[contracts.PREDICTION_COLUMN].to_numpy(dtype=np.float64)
        scale = max(1.0, float(np.max(np.abs(trained))))
        gap = float(np.max(np.abs(trained - scored)) / scale)
        details.update(max_relative_difference=gap)
        bad = not math.isfinite(gap) or gap > tolerance
        summary = f"max relative difference {gap:.3g}"
    if bad:
        message = (
            f"Training/serving skew on {len(rows)} training rows of {model.name!r} v{model.version}: {summary} "
            f"(tolerance {tolerance:g})."
        )
        return Finding("training_serving_skew", "alert", message, details)
    message = f"Serving path matches training on {len(rows)} rows of {model.name!r} v{model.version}: {summary}."
    return Finding("training_serving_skew", "ok", message, details)


def _identity(model: ServingModel) -> dict[str, Any]:
    return {"model_name": model.name, "model_version": model.version, "onnx_sha256": model.sha256}


def read_reference(client: Any, run_id: str) -> pd.DataFrame:
    """The run's reference sample (training rows with training-time predictions).

    :raises SourceNotFoundError: the run has no reference artifact.
    """
    import io

    import pyarrow.parquet as pq

    from airflow_mlops.core.gating.inputs import download_run_artifact

    return pq.read_table(io.BytesIO(download_run_artifact(client, run_id, contracts.ARTIFACT_REFERENCE))).to_pandas()


# -- reproducibility ---------------------------------------------------------------------------------
def spec_from_artifact(document: Mapping[str, Any], params: Mapping[str, str] | None = None) -> Any:
    """The :class:`TrainingSpec` inside a training spec artifact (which adds classes, metrics, ... to it).

    The artifact keeps the spec's ``categories`` settings (``max``, ``min_frequency``) and the kept
    vocabulary beside them (``vocabulary``). Artifacts written before that held the vocabulary under
    ``categories``; for those, the settings are read back from the run's params (``categories.max``,
    ``categories.min_frequency``), which training logs.

    :raises SpecError: the settings are in neither place.
    """
    from airflow_mlops.core.training.spec import TrainingSpec

    document = dict(document)
    categories = document.get("categories")
    if isinstance(categories, Mapping) and not {"max", "min_frequency"} <= set(categories):
        params = params or {}
        try:
            document["categories"] = {
                "max": int(params["categories.max"]),
                "min_frequency": int(params["categories.min_frequency"]),
            }
        except (KeyError, ValueError) as exc:
            raise SpecError(
                "The training spec artifact holds the kept categories, not the 'categories' settings, and the run "
                f"has no usable 'categories.max'/'categories.min_frequency' params ({exc!r}): cannot rebuild the spec."
            ) from exc

    fields = {
        "task", "target", "numeric_features", "categorical_features", "estimator", "split", "class_weight",
        "early_stopping_rounds", "search", "categories", "seed", "reference_rows", "train_metrics_rows",
        "leakage_check", "parity_tolerance",
    }  # fmt: skip
    return TrainingSpec.from_mapping({k: v for k, v in document.items() if k in fields and v is not None})


def compare_metrics(
    recorded: Mapping[str, Mapping[str, float]], retrained: Mapping[str, Mapping[str, float]], tolerance: float
) -> dict[str, dict[str, Any]]:
    """Per ``split.metric``: both values and their absolute difference, for every metric either side has."""
    rows: dict[str, dict[str, Any]] = {}
    for split in sorted(set(recorded) | set(retrained)):
        before, after = recorded.get(split, {}), retrained.get(split, {})
        for name in sorted(set(before) | set(after)):
            a, b = before.get(name), after.get(name)
            diff = abs(float(a) - float(b)) if a is not None and b is not None else None
            rows[f"{split}.{name}"] = {
                "recorded": a,
                "retrained": b,
                "difference": diff,
                "within_tolerance": diff is not None and diff <= tolerance,
            }
    return rows


def check_reproducibility(
    facts: ModelVersionFacts,
    root: StorageRoot,
    *,
    tolerance: float = DEFAULT_METRIC_TOLERANCE,
    require_identical_onnx: bool = False,
) -> Finding:
    """Retrain ``facts``' spec on its recorded snapshot and compare with what its run recorded.

    Training is deterministic for a snapshot, spec and seed, so the metrics should match to rounding
    and the ONNX bytes exactly. A metric beyond ``tolerance`` is an alert; a different ONNX sha256
    with matching metrics is a warning (an alert with ``require_identical_onnx``): a library upgrade
    may change bytes without changing a single prediction.

    :raises SourceNotFoundError: the run records no snapshot, or it is gone.
    :raises IntegrityError: the snapshot changed since training (its sha256 differs).
    """
    from airflow_mlops.core.training import read_snapshot, train_model

    if not facts.dataset_uri:
        raise SourceNotFoundError(
            f"Model {facts.name!r} v{facts.version} (run {facts.run_id}) records no training snapshot "
            f"({contracts.TAG_DATASET_URI!r}), so it cannot be retrained."
        )
    recorded = facts.spec.get("metrics")
    if not isinstance(recorded, Mapping) or not recorded:
        raise SpecError(f"The training spec artifact of run {facts.run_id} records no metrics to compare with.")
    spec = spec_from_artifact(facts.spec, facts.run_params)
    frame, _ = read_snapshot(root, facts.dataset_uri, facts.dataset_sha256)
    result = train_model(frame, spec)
    rows = compare_metrics(recorded, result.metrics, tolerance)
    drifted = sorted(k for k, v in rows.items() if not v["within_tolerance"])
    same_onnx = result.onnx_sha256 == facts.onnx_sha256
    details: dict[str, Any] = {
        **facts.identity(),
        "dataset_uri": facts.dataset_uri,
        "dataset_sha256": facts.dataset_sha256,
        "tolerance": tolerance,
        "metrics": rows,
        "not_reproduced": drifted,
        "recorded_onnx_sha256": facts.onnx_sha256,
        "retrained_onnx_sha256": result.onnx_sha256,
        "identical_onnx": same_onnx,
        "seconds": round(sum(result.seconds.values()), 3),
    }
    name = f"{facts.name!r} v{facts.version}"
    if drifted:
        shown = ", ".join(f"{k} {rows[k]['recorded']} -> {rows[k]['retrained']}" for k in drifted[:5]) + (
            " ..." if len(drifted) > 5 else ""
        )
        return Finding("reproducibility", "alert", f"Retraining {name} does not reproduce: {shown}.", details)
    if not same_onnx:
        message = (
            f"Retraining {name} reproduces its {len(rows)} metrics within {tolerance:g}, but the ONNX sha256 differs "
            f"({facts.onnx_sha256[:12]} -> {result.onnx_sha256[:12]})."
        )
        return Finding("reproducibility", "alert" if require_identical_onnx else "warn", message, details)
    message = f"Retraining {name} reproduces its {len(rows)} metrics within {tolerance:g} and byte-identical ONNX."
    return Finding("reproducibility", "ok", message, details)
