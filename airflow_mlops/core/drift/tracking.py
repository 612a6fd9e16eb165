"""MLflow side of a drift check: the champion's training reference, and the check's time series on a
monitoring run."""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, MlopsError, SourceNotFoundError
from airflow_mlops.core.monitoring import facts as monitoring_registry

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops.core.drift.compare import DriftResult


# -- the champion's reference in MLflow ----------------------------------------------------------------
@dataclass(frozen=True)
class ChampionReference:
    """The champion's training reference, downloaded to a local folder."""

    model_name: str
    version: str
    run_id: str
    experiment_id: str
    reference_path: str
    training_spec: dict[str, Any]

    @property
    def reference_id(self) -> str:
        return f"{self.model_name}/v{self.version}"


def fetch_champion_reference(client: MlflowClient, model_name: str, folder: str | None = None) -> ChampionReference:
    """Resolve ``model_name@champion`` and download its run's reference sample and training spec.

    :raises SourceNotFoundError: no champion alias, or its run lacks the reference or spec artifact.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, contracts.ALIAS_CHAMPION)
    except MlflowException as exc:
        raise SourceNotFoundError(
            f"The registered model {model_name!r} has no {contracts.ALIAS_CHAMPION!r} alias, so there is no "
            f"reference to compare with. Promote a version first, or pass reference_uri. ({exc})"
        ) from exc
    run_id = str(version.run_id)
    folder = folder or tempfile.mkdtemp(prefix="mlops-drift-")
    paths = {}
    for artifact in (contracts.ARTIFACT_REFERENCE, contracts.ARTIFACT_SPEC):
        try:
            paths[artifact] = client.download_artifacts(run_id, artifact, folder)
        except (MlflowException, OSError) as exc:
            raise SourceNotFoundError(
                f"The champion {model_name!r} v{version.version} (run {run_id}) has no artifact {artifact!r}: "
                f"it was not trained by a compatible trainer. ({exc})"
            ) from exc
    try:
        with open(paths[contracts.ARTIFACT_SPEC], encoding="utf-8") as handle:
            training_spec = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"The training spec of run {run_id} is not readable JSON: {exc}") from exc
    experiment_id = str(client.get_run(run_id).info.experiment_id)
    return ChampionReference(
        model_name, str(version.version), run_id, experiment_id, paths[contracts.ARTIFACT_REFERENCE], training_spec
    )


def champion_importance(client: MlflowClient, run_id: str) -> dict[str, float] | None:
    """The feature importance training logged with the champion's run; None when it logged none (an
    older run, or an estimator without importance): the weighted drift share is then the plain one."""
    try:
        importance = monitoring_registry.run_feature_importance(client, run_id)
    except MlopsError:
        return None
    return importance or None


# -- MLflow time series on a monitoring run ------------------------------------------------------------
@contextmanager
def ended_run(client: MlflowClient, run_id: str) -> Iterator[str]:
    """End the monitoring run when the block ends: FINISHED, or FAILED when it raised. The run is found
    again and written to by the next check (MLflow accepts metrics on an ended run); between checks it
    is not left RUNNING."""
    try:
        yield run_id
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


def monitoring_run(
    client: MlflowClient, experiment_id: str, subject: str, tags: Mapping[str, str] | None = None
) -> str:
    """The id of the drift monitoring run of ``subject`` in the experiment, created on first use."""
    return monitoring_registry.monitoring_run(client, experiment_id, subject, "drift", tags)


def log_drift_metrics(
    client: MlflowClient,
    run_id: str,
    result: DriftResult,
    step: int,
    timestamp_ms: int,
    extra: Mapping[str, float] | None = None,
) -> int:
    """Log one step of the time series on a monitoring run; return how many values were logged.

    Two groups share the step of a batch: *data* (drift share, per-feature and prediction drift scores,
    row count) and *labels* (quality metrics, quality drop, target drift, labelled rows). A group whose
    marker metric already has a point at this step is not logged again, so a rerun of a batch adds
    nothing, and the labelled check of a batch adds its quality to the data its serving check logged.
    ``extra`` values join the labels group of a labelled check and the data group otherwise, except
    the policy's (``policy.*``): the serving and labelled checks of a batch are one batch to the policy,
    so they get one point per step, and a second only when the batch's later check triggered a retrain
    that the first did not (the sum of ``policy.retrain`` counts retrains, one per batch at most).
    """
    data, labels = _metric_groups(result, {k: v for k, v in (extra or {}).items() if not k.startswith("policy.")})
    policy = {k: v for k, v in (extra or {}).items() if k.startswith("policy.")}
    logged = 0
    for group, marker in ((data, "current_rows"), (labels, "labelled_rows")):
        if not group or any(m.step == step for m in client.get_metric_history(run_id, marker)):
            continue
        logged += _log_group(client, run_id, group, step, timestamp_ms)
    if policy:
        earlier = [m.value for m in client.get_metric_history(run_id, "policy.retrain") if m.step == step]
        if not earlier or max(earlier) < float(policy.get("policy.retrain", 0.0)):
            logged += _log_group(client, run_id, dict(policy), step, timestamp_ms)
    return logged


def _log_group(
    client: MlflowClient, run_id: str, group: Mapping[str, float | None], step: int, timestamp_ms: int
) -> int:
    from mlflow.entities import Metric

    metrics = [
        Metric(monitoring_registry.metric_key(key), float(value), timestamp_ms, step)
        for key, value in group.items()
        if value is not None and math.isfinite(float(value))
    ]
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    return len(metrics)


def _metric_groups(
    result: DriftResult, extra: Mapping[str, float] | None
) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """The *data* and *labels* groups of a check's metrics (see :func:`log_drift_metrics`)."""
    data: dict[str, float | None] = {
        "current_rows": float(result.current_rows),
        "drift_share": result.drift_share,
        "weighted_drift_share": result.weighted_drift_share,
        "input_drifted_columns": float(len(result.input_drift)),
        "drifted_columns": float(len(result.drifted_columns)) if result.drift_share is not None else None,
        "dataset_drift": float(result.dataset_drift),
    }
    labels: dict[str, float | None] = {}
    keys = {"feature": "drift_score", "prediction": "prediction_drift_score", "input": "input_drift_score"}
    for item in (*result.features, *result.predictions, *result.inputs):
        key = keys[item.role]
        data[f"{key}.{item.column}"] = item.score
    if result.target is not None:
        labels["labelled_rows"] = float(result.labelled_rows)
        labels[f"target_drift_score.{result.target.column}"] = result.target.score
    if result.quality is not None:
        labels.update({f"quality.{name}": value for name, value in result.quality.current_metrics.items()})
        labels["quality_drop"] = result.quality.drop
        business = result.quality.business
        if business is not None:
            labels[f"business.{business['name']}"] = business["value"]
    (labels if result.target is not None else data).update(extra or {})
    return data, labels
