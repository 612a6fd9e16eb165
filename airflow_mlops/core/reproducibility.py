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
from airflow_mlops.core.monitoring import Finding
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.features.apply import Transformer
    from airflow_mlops.core.monitoring import ModelVersionFacts
    from airflow_mlops.core.serving import ServingModel
    from airflow_mlops.core.training.result import TrainingResult

DEFAULT_SKEW_TOLERANCE = 1e-4
DEFAULT_METRIC_TOLERANCE = 1e-6
_SKEW_PARTITION = "skew-check"
_SKEW_ROW = "mlops_skew_row"  # the reference row of each served row, to compare transformed values


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
    transformer: Transformer | None = None,
) -> Finding:
    """Score the reference rows through the serving path and compare with their training-time predictions.

    A version with feature transforms gets its raw input columns only, as a batch would deliver them:
    scoring runs the transforms (with ``transformer``, which holds the dimension tables its joins read),
    and each produced feature the serving log records is compared with the value training computed.

    Classifiers compare the class probabilities (largest absolute difference) and the labels (share
    that differ); regressors the values, relative to their scale. Above ``tolerance``, or any label
    flip, is an alert.

    :param reference: the run's reference sample (features, target, training-time prediction columns).
    :param max_rows: score only the first ``max_rows`` rows (all when None).
    :raises DataError: the reference lacks a feature or prediction column.
    """
    rows = _reference_rows(reference, model, max_rows)
    served, logged = _serve(rows, model, transformer)
    details: dict[str, Any] = {**_identity(model), "rows": len(rows), "tolerance": tolerance}
    if model.spec.is_classifier:
        measured, bad, summary = _classifier_skew(rows, served, model, tolerance)
    else:
        measured, bad, summary = _regression_skew(rows, served, tolerance)
    details.update(measured)
    if logged is not None:
        values, differ, said = _feature_skew(rows, logged, model, tolerance)
        details["feature_transforms"] = values
        bad, summary = bad or differ, f"{summary}; {said}"
    if bad:
        message = (
            f"Training/serving skew on {len(rows)} training rows of {model.name!r} v{model.version}: {summary} "
            f"(tolerance {tolerance:g})."
        )
        return Finding("training_serving_skew", "alert", message, details)
    message = f"Serving path matches training on {len(rows)} rows of {model.name!r} v{model.version}: {summary}."
    return Finding("training_serving_skew", "ok", message, details)


def _reference_rows(reference: pd.DataFrame, model: ServingModel, max_rows: int | None) -> pd.DataFrame:
    """The reference rows to score (the first ``max_rows``), once they are known to hold every column.

    :raises DataError: the reference lacks a feature or prediction column, or has no rows.
    """
    expected_columns = _reference_columns(model)
    missing = [c for c in (*model.spec.input_columns, *expected_columns) if c not in reference.columns]
    if missing:
        raise DataError(
            f"The reference sample of model {model.name!r} v{model.version} lacks column(s) {missing}: it was not "
            "written by a compatible trainer, so there are no training-time predictions to compare with."
        )
    rows = reference if max_rows is None else reference.head(max_rows)
    if rows.empty:
        raise DataError(f"The reference sample of model {model.name!r} v{model.version} has no rows.")
    return rows


def _serve(
    rows: pd.DataFrame, model: ServingModel, transformer: Transformer | None
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``rows`` scored by :func:`~airflow_mlops.core.scoring.run.score_partition` in a scratch folder: the
    predictions, and (for a version with feature transforms) the serving log of every row, in order."""
    import pandas as pd

    from airflow_mlops.core.scoring import ScoringSpec, score_partition
    from airflow_mlops.core.training import parquet_bytes

    transforms = bool(model.spec.transforms)
    with tempfile.TemporaryDirectory(prefix="mlops-skew-") as folder:
        root = StorageRoot(folder)
        source = root.join("input", "reference.parquet")
        # Only the raw input columns, as an upstream batch would deliver them.
        batch = rows[model.spec.input_columns].reset_index(drop=True)
        if transforms:
            batch[_SKEW_ROW] = range(len(batch))
        root.write_bytes(source, parquet_bytes(batch))
        spec = ScoringSpec(
            pipeline="skew",
            partition=_SKEW_PARTITION,
            input_uri=source,
            scored_at=datetime(1970, 1, 1, tzinfo=UTC),
            serving_log_rows=len(batch) if transforms else 0,
            passthrough_columns=(_SKEW_ROW,) if transforms else (),
        )
        result = score_partition(root, spec, model, transformer=transformer)
        served = pd.read_parquet(result.output_uri)
        if not transforms or result.serving_log_uri is None:
            return served, None
        logged = pd.read_parquet(result.serving_log_uri).sort_values(_SKEW_ROW).reset_index(drop=True)
        return served, logged


def _feature_skew(
    rows: pd.DataFrame, logged: pd.DataFrame, model: ServingModel, tolerance: float
) -> tuple[dict[str, Any], bool, str]:
    """Each transform-produced feature as training computed it against the serving path's value."""
    import numpy as np
    import pandas as pd

    produced = [c for c in model.spec.feature_columns if c in set(model.spec.transforms.outputs)]
    trained = rows.reset_index(drop=True)
    differences: dict[str, float | int] = {}
    for column in produced:
        before, after = trained[column], logged[column]
        if pd.api.types.is_numeric_dtype(before) and pd.api.types.is_numeric_dtype(after):
            a, b = before.to_numpy(dtype=np.float64), after.to_numpy(dtype=np.float64)
            both_missing = np.isnan(a) & np.isnan(b)
            gap = np.where(both_missing, 0.0, np.abs(a - b))
            differences[column] = float(np.nan_to_num(gap, nan=np.inf).max()) if len(gap) else 0.0
        else:
            a_text = before.astype("object").where(before.notna(), None).to_numpy()
            b_text = after.astype("object").where(after.notna(), None).to_numpy()
            differences[column] = int(sum(x != y for x, y in zip(a_text, b_text, strict=True)))
    worst = max(differences.values(), default=0.0)
    differ = worst > tolerance
    details = {"columns": produced, "differences": differences, "rows": len(logged)}
    return details, differ, f"{len(produced)} transformed feature(s), largest difference {worst:.3g}"


def _classifier_skew(
    rows: pd.DataFrame, served: pd.DataFrame, model: ServingModel, tolerance: float
) -> tuple[dict[str, Any], bool, str]:
    """A classifier's largest probability difference and label flips: (details, skewed, summary)."""
    import numpy as np

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
    details = {"max_abs_probability_difference": gap, "label_mismatches": flips}
    return details, gap > tolerance or flips > 0, f"max |probability difference| {gap:.3g}, {flips} label mismatch(es)"


def _regression_skew(rows: pd.DataFrame, served: pd.DataFrame, tolerance: float) -> tuple[dict[str, Any], bool, str]:
    """A regressor's largest difference relative to the scale of its values: (details, skewed, summary)."""
    import numpy as np

    trained = rows[contracts.PREDICTION_COLUMN].to_numpy(dtype=np.float64)
    scored = served[contracts.PREDICTION_COLUMN].to_numpy(dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(trained))))
    gap = float(np.max(np.abs(trained - scored)) / scale)
    bad = not math.isfinite(gap) or gap > tolerance
    return {"max_relative_difference": gap}, bad, f"max relative difference {gap:.3g}"


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
        "leakage_check", "parity_tolerance", "transforms", "ablation",
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
    sql_engine: Any = None,
) -> Finding:
    """Retrain ``facts``' spec on its recorded snapshot and compare with what its run recorded.

    Training is deterministic for a snapshot, spec and seed, so the metrics should match to rounding
    and the ONNX bytes exactly. A metric beyond ``tolerance`` is an alert; a different ONNX sha256
    with matching metrics is a warning (an alert with ``require_identical_onnx``): a library upgrade
    may change bytes without changing a single prediction.

    :param sql_engine: a connection id -> a SQLAlchemy engine, for joins whose dimension is a SQL table.
    :raises SourceNotFoundError: the run records no snapshot, or it is gone.
    :raises IntegrityError: the snapshot changed since training (its sha256 differs).
    """
    if not facts.dataset_uri:
        raise SourceNotFoundError(
            f"Model {facts.name!r} v{facts.version} (run {facts.run_id}) records no training snapshot "
            f"({contracts.TAG_DATASET_URI!r}), so it cannot be retrained."
        )
    recorded = facts.spec.get("metrics")
    if not isinstance(recorded, Mapping) or not recorded:
        raise SpecError(f"The training spec artifact of run {facts.run_id} records no metrics to compare with.")
    result = _retrain(facts, facts.dataset_uri, root, sql_engine)
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


def _retrain(facts: ModelVersionFacts, dataset_uri: str, root: StorageRoot, sql_engine: Any) -> TrainingResult:
    """Train ``facts``' spec again on its snapshot ``dataset_uri`` (sha256-checked), with its joins bound."""
    from airflow_mlops.core.training import read_snapshot, train_model

    spec = spec_from_artifact(facts.spec, facts.run_params)
    frame, _ = read_snapshot(root, dataset_uri, facts.dataset_sha256)
    transformer = None
    if spec.transforms.joins:
        from airflow_mlops.core.features.apply import bind

        transformer = bind(spec.transforms, root, facts.run_tags.get(contracts.TAG_PIPELINE, ""), sql_engine)
    return train_model(frame, spec, transformer=transformer)
