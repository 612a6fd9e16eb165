"""A training run's artifacts in, its feature cost table out: :func:`measure_run` measures the run's ONNX
model on its reference sample, :func:`log_cost_table` logs the verdict back on the run."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.feature_cost.measurement import CostMeasurement, measure_feature_cost
from airflow_mlops.core.monitoring import Finding

ARTIFACT_FEATURE_COST = "feature_cost/feature_cost.json"  # logged on the training run by the operator


def measure_run(
    client: Any, run_id: str, *, rows: int = 10_000, repeats: int = 5, root: Any = None, sql_engine: Any = None
) -> CostMeasurement:
    """Measure the feature costs of a training run's ONNX model on its reference sample and, given the
    storage ``root``, the upstream cost of its feature transforms on up to ``rows`` rows of its training
    snapshot (:func:`~.upstream.measure_run_upstream`; ``sql_engine`` for a join reading SQL).

    :raises SourceNotFoundError: the run lacks its spec, ONNX or reference artifact.
    :raises IntegrityError: the ONNX artifact does not hash to the run's recorded sha256.
    """
    from airflow_mlops.core import contracts
    from airflow_mlops.core.errors import IntegrityError
    from airflow_mlops.core.feature_cost.upstream import measure_run_upstream
    from airflow_mlops.core.gating.inputs import download_run_artifact
    from airflow_mlops.core.onnx_model import inputs_from_spec
    from airflow_mlops.core.reproducibility import spec_from_artifact
    from airflow_mlops.core.storage import sha256_bytes

    try:
        spec = json.loads(download_run_artifact(client, run_id, contracts.ARTIFACT_SPEC))
    except ValueError as exc:
        raise ArtifactError(f"The training spec of run {run_id} is not valid JSON: {exc}") from exc
    model_bytes = download_run_artifact(client, run_id, contracts.ARTIFACT_ONNX)
    recorded = client.get_run(run_id).data.tags.get(contracts.TAG_ONNX_SHA256)
    if recorded and sha256_bytes(model_bytes) != recorded:
        raise IntegrityError(
            f"The ONNX artifact of run {run_id} hashes to {sha256_bytes(model_bytes)}, not the recorded {recorded}."
        )
    sample = download_run_artifact(client, run_id, contracts.ARTIFACT_REFERENCE)
    measurement = measure_feature_cost(model_bytes, inputs_from_spec(spec), sample, rows=rows, repeats=repeats)
    if root is None:
        return measurement
    training_spec = spec_from_artifact(spec, client.get_run(run_id).data.params)
    upstream = measure_run_upstream(
        client, run_id, training_spec, root, rows=rows, repeats=repeats, sql_engine=sql_engine
    )
    return replace(measurement, upstream=upstream)


def log_cost_table(client: Any, run_id: str, finding: Finding) -> None:
    """Put the finding on the training run: the whole table as :data:`ARTIFACT_FEATURE_COST`, per feature
    the metrics ``feature_cost.<feature>.cost_share``, ``.serving_ms_per_1k``, ``.compute_ms_per_1k`` and
    ``.model_bytes``, and per joined dimension ``feature_cost.dimension.<join>.lag_hours`` and
    ``.unmatched_share``, so that runs can be compared in the MLflow UI."""
    from mlflow.entities import Metric

    from airflow_mlops.core.monitoring import metric_key

    client.log_dict(run_id, finding.to_dict(), ARTIFACT_FEATURE_COST)
    now = int(time.time() * 1000)
    metrics = [
        Metric(metric_key(f"feature_cost.{row['feature']}.{name}"), float(row[name]), now, 0)
        for row in finding.details["features"]
        for name in ("cost_share", "serving_ms_per_1k", "compute_ms_per_1k", "model_bytes")
    ]
    upstream = finding.details.get("upstream") or {}
    metrics += [
        Metric(metric_key(f"feature_cost.dimension.{join}.{name}"), float(figures[name]), now, 0)
        for join, figures in upstream.get("dimensions", {}).items()
        for name in ("lag_hours", "unmatched_share")
        if figures[name] is not None
    ]
    metrics.append(Metric("feature_cost.flagged", float(len(finding.details["flagged"])), now, 0))
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
