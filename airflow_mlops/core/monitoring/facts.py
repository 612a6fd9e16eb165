"""What the monitoring checks read from MLflow and storage: a model version's facts, a snapshot's
schema, a prediction file's columns, and the time series of a performance metric.

Kept apart from the checks (:mod:`~airflow_mlops.core.monitoring.model`, ``data``, ``serving``) so that
the rules there stay pure functions.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.core.pipeline import LabelledBatch

TAG_MONITORING_OF = contracts.TAG_MONITORING_OF
TAG_MONITORING = contracts.TAG_MONITORING
_METRIC_KEY = re.compile(r"[^A-Za-z0-9_\-./ ]")


@dataclass(frozen=True)
class ModelVersionFacts:
    """A registered model version and its training run, as the checks need them."""

    name: str
    version: str
    run_id: str
    experiment_id: str
    alias: str | None
    onnx_sha256: str
    created_at: datetime
    run_tags: dict[str, str]
    run_metrics: dict[str, float]
    spec: dict[str, Any]
    run_params: dict[str, str]

    @property
    def dataset_uri(self) -> str | None:
        return self.run_tags.get(contracts.TAG_DATASET_URI) or self.spec.get("dataset_uri")

    @property
    def dataset_sha256(self) -> str | None:
        return self.run_tags.get(contracts.TAG_DATASET_SHA256) or self.spec.get("dataset_sha256")

    @property
    def features(self) -> list[str]:
        return [*self.spec.get("numeric_features", []), *self.spec.get("categorical_features", [])]

    def identity(self) -> dict[str, Any]:
        return {"model_name": self.name, "model_version": self.version, "alias": self.alias, "run_id": self.run_id}

    def proxy_metric(self, metric: str | None = None) -> tuple[str, str, bool]:
        """``(task, metric, higher_is_better)``: ``metric``, else the training spec's primary metric."""
        from airflow_mlops.core.metrics import METRIC_DIRECTIONS

        task = str(self.spec.get("task", "binary"))
        chosen = metric or str(self.spec.get("primary_metric") or "roc_auc")
        return task, chosen, bool(METRIC_DIRECTIONS.get(task, {}).get(chosen, True))


def model_version_facts(
    client: Any, name: str, *, alias: str | None = None, version: str | int | None = None
) -> ModelVersionFacts:
    """Resolve ``name`` by ``version`` or ``alias`` and gather its run's tags, metrics and training spec.

    :raises SourceNotFoundError: no such model, version or alias, or the run lacks its spec artifact.
    :raises IntegrityError: the version has no recorded ONNX sha256 (see ``resolve_model_version``).
    """
    from airflow_mlops.core.gating.inputs import download_run_artifact
    from airflow_mlops.core.serving import resolve_model_version

    ref = resolve_model_version(client, name, alias=alias, version=version)
    found = client.get_model_version(name, ref.version)
    run = client.get_run(ref.run_id)
    try:
        spec = json.loads(download_run_artifact(client, ref.run_id, contracts.ARTIFACT_SPEC))
    except ValueError as exc:
        raise ArtifactError(f"The training spec of run {ref.run_id} is not valid JSON: {exc}") from exc
    return ModelVersionFacts(
        name=name,
        version=ref.version,
        run_id=ref.run_id,
        experiment_id=str(run.info.experiment_id),
        alias=ref.alias,
        onnx_sha256=ref.onnx_sha256,
        created_at=datetime.fromtimestamp(int(found.creation_timestamp) / 1000.0, tz=UTC),
        run_tags=dict(run.data.tags),
        run_metrics={k: float(v) for k, v in run.data.metrics.items()},
        spec=spec,
        run_params=dict(run.data.params),
    )


def locate(root: StorageRoot, uri: str) -> tuple[StorageRoot, str]:
    """The storage root that reaches ``uri``: ``root`` when it contains it, else the local file's folder
    (a shipped sample, a file produced outside the pipeline). S3 URIs must lie inside the root."""
    import os

    if root.contains(uri):
        return root, uri
    if uri.startswith("s3://"):
        raise SpecError(f"{uri!r} lies outside the storage root {root.uri!r}; S3 files must be inside it.")
    path = os.path.abspath(uri[len("file://") :] if uri.startswith("file://") else uri)
    return StorageRoot(os.path.dirname(path)), path


def snapshot_watermark(root: StorageRoot, snapshot_uri: str) -> Any:
    """The ``source_watermark`` of the ingestion receipt beside a snapshot (``receipt.json``), or None
    when there is no receipt or it records no watermark (a snapshot made outside the pipeline)."""
    from airflow_mlops.core.ingestion import RECEIPT_FILE

    if not root.contains(snapshot_uri):
        return None
    receipt_uri = snapshot_uri.rpartition("/")[0] + "/" + RECEIPT_FILE
    try:
        receipt = json.loads(root.read_bytes(receipt_uri))
    except (SourceNotFoundError, ValueError):
        return None
    return receipt.get("source_watermark") if isinstance(receipt, dict) else None


@contextlib.contextmanager
def _parquet_input(root: StorageRoot, uri: str) -> Iterator[Any]:
    """An open input file for the Parquet file ``uri`` (see :func:`locate`); a read that fails inside
    the block is reported as the file not being Parquet.

    :raises SourceNotFoundError: the file does not exist; :raises DataError: it is not Parquet.
    """
    import pyarrow as pa

    root, uri = locate(root, uri)
    if not root.exists(uri):
        raise SourceNotFoundError(f"The Parquet file {uri!r} does not exist.")
    try:
        with root.filesystem.open_input_file(root.fs_path(uri)) as handle:
            yield handle
    except (pa.ArrowInvalid, OSError) as exc:  # ArrowInvalid: not Parquet; OSError: unreadable
        raise DataError(f"{uri!r} is not a readable Parquet file: {exc}") from exc


def parquet_schema(root: StorageRoot, uri: str) -> dict[str, str]:
    """``{column: arrow type}`` of a Parquet file (footer only), as ingestion receipts record it.

    :raises SourceNotFoundError: the file does not exist; :raises DataError: it is not Parquet.
    """
    import pyarrow.parquet as pq

    with _parquet_input(root, uri) as handle:
        schema = pq.read_schema(handle)
    return {f.name: str(f.type) for f in schema}


def read_columns(root: StorageRoot, uri: str, select: Callable[[str], bool] | None = None) -> dict[str, np.ndarray]:
    """The numeric columns of a Parquet file (those whose name ``select`` accepts, when given) as
    float64 numpy arrays. Only those columns are read, so a wide file costs what the check needs.

    :raises DataError: the file is not Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _parquet_input(root, uri) as handle:
        schema = pq.read_schema(handle)
        wanted = [
            f.name
            for f in schema
            if (pa.types.is_floating(f.type) or pa.types.is_integer(f.type)) and (select is None or select(f.name))
        ]
        handle.seek(0)
        table = pq.read_table(handle, columns=wanted)
    # nulls become NaN on purpose: a null prediction is as unusable as a NaN one
    return {name: table.column(name).to_numpy(zero_copy_only=False).astype("float64") for name in wanted}


def read_text_columns(root: StorageRoot, uri: str, rows: int) -> dict[str, list[Any]]:
    """The string columns of the first ``rows`` rows of a Parquet file, as Python lists."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    with _parquet_input(root, uri) as handle:
        parquet = pq.ParquetFile(handle)
        wanted = [
            f.name
            for f in parquet.schema_arrow
            if pa.types.is_string(f.type) or pa.types.is_large_string(f.type) or pa.types.is_dictionary(f.type)
        ]
        if not wanted:
            return {}
        batch = next(parquet.iter_batches(batch_size=rows, columns=wanted), None)
    if batch is None:
        return {name: [] for name in wanted}
    return {name: batch.column(name).to_pylist() for name in wanted}


# -- a metric's history on a monitoring run -------------------------------------------------------------
def monitoring_run(
    client: Any, experiment_id: str, subject: str, kind: str, tags: Mapping[str, str] | None = None
) -> str:
    """The id of the ``kind`` monitoring run of ``subject`` in the experiment (its oldest), created on
    first use: one run per subject keeps a metric's whole history as one MLflow time series."""
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG_MONITORING_OF}` = '{subject}' AND tags.`{TAG_MONITORING}` = '{kind}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        return str(found[0].info.run_id)
    run = client.create_run(
        experiment_id,
        run_name=f"{kind} {subject}",
        tags={TAG_MONITORING: kind, TAG_MONITORING_OF: subject, **dict(tags or {})},
    )
    return str(run.info.run_id)


def performance_run(client: Any, experiment_id: str, subject: str) -> str:
    """The id of the run that keeps the performance series of ``subject``, created on first use."""
    return monitoring_run(client, experiment_id, subject, "performance")


def metric_key(name: str) -> str:
    """``name`` with every character MLflow refuses in a metric key replaced by ``_``."""
    return _METRIC_KEY.sub("_", name)


def record_metric(client: Any, run_id: str, metric: str, value: float, step: int) -> list[float]:
    """Log ``value`` at ``step`` (once: a rerun of the same step logs nothing) and return the values of
    the earlier steps, oldest first: the history to compare it with. ``metric`` is passed through
    :func:`metric_key` (a partition key may hold ``:`` or ``+``)."""
    metric = metric_key(metric)
    history = sorted(client.get_metric_history(run_id, metric), key=lambda m: (m.step, m.timestamp))
    earlier = [float(m.value) for m in history if m.step < step]
    if not any(m.step == step for m in history):
        client.log_metric(run_id, metric, float(value), timestamp=int(time.time() * 1000), step=step)
    return earlier


def step_of(when: datetime) -> int:
    """A metric step from a run's logical date: minutes since the epoch (ordered, stable on rerun)."""
    return int(when.timestamp() // 60)


def receipt_value(receipt: Mapping[str, Any], path: str) -> float:
    """A number inside a receipt by dotted path (``throughput_rows_per_s``, ``seconds.fit``); a dict of
    numbers is summed (``seconds`` of a training receipt is its total time).

    :raises SpecError: the path does not lead to a number.
    """
    value: Any = receipt
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise SpecError(f"The receipt has no {path!r} (keys: {sorted(map(str, receipt))[:30]}).")
        value = value[part]
    if isinstance(value, Mapping):
        value = sum(float(v) for v in value.values())
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{path!r} of the receipt is not a number: {value!r}.") from exc


# -- a training run's feature importance ----------------------------------------------------------------
ARTIFACT_IMPORTANCE = "importance/feature_importance.json"  # written by training (core/training/tracking.py)


def run_feature_importance(client: Any, run_id: str) -> dict[str, float]:
    """The importance share per input feature that training logged with the run (gain share for
    LightGBM, one-hot columns summed back to their feature; empty when the estimator exposes none).

    :raises SourceNotFoundError: the run has no importance artifact; :raises ArtifactError: it is not
        a JSON object of numbers.
    """
    from airflow_mlops.core.gating.inputs import download_run_artifact

    content = download_run_artifact(client, run_id, ARTIFACT_IMPORTANCE)
    try:
        raw = json.loads(content)
        return {str(name): float(share) for name, share in raw.items()}
    except (ValueError, TypeError, AttributeError) as exc:
        raise ArtifactError(
            f"The feature importance of run {run_id} ({ARTIFACT_IMPORTANCE}) is not a JSON object of numbers: {exc}"
        ) from exc


def monitoring_series(
    client: Any, experiment_ids: Collection[str], filter_string: str, keys: Collection[str], max_runs: int = 1000
) -> dict[str, dict[int, dict[str, float]]]:
    """``{subject: {step: {key: value}}}``: the metrics ``keys`` logged on the monitoring runs that
    ``filter_string`` selects in the experiments (the subject is the run's ``mlops.monitoring_of`` tag)."""
    found = client.search_runs(list(experiment_ids), filter_string=filter_string, max_results=max_runs)
    series: dict[str, dict[int, dict[str, float]]] = {}
    for run in found:
        subject = run.data.tags.get(TAG_MONITORING_OF, "")
        for key in keys:
            for m in client.get_metric_history(run.info.run_id, key):
                series.setdefault(subject, {}).setdefault(int(m.step), {})[key] = float(m.value)
    return series


def labelled_batches(client: Any, model_name: str, metric: str, series_key: str) -> list[LabelledBatch]:
    """Every labelled batch any version of ``model_name`` served, as the drift checks logged it: the
    served ``quality.<metric>`` and the business series ``series_key`` (``business.<name>``, or a measured
    ``outcome.<name>``) at the batch's step on the version's monitoring run, with that version's
    training-time ``test_<metric>``. Batches without the business series (served before it was declared)
    are left out."""
    from airflow_mlops.core.pipeline import LabelledBatch

    runs: dict[str, Any] = {}
    for found in client.search_model_versions(f"name = '{model_name}'"):
        if found.run_id:
            runs[str(found.version)] = client.get_run(found.run_id)
    if not runs:
        return []
    quality, cost = metric_key(f"quality.{metric}"), metric_key(series_key)
    prefix = f"{model_name}/v"
    series = monitoring_series(
        client,
        sorted({str(run.info.experiment_id) for run in runs.values()}),
        f"tags.`{TAG_MONITORING_OF}` LIKE '{prefix}%'",
        [quality, cost],
    )
    batches: list[LabelledBatch] = []
    for subject, steps in series.items():
        version = subject[len(prefix) :] if subject.startswith(prefix) else None
        if version not in runs:
            continue
        offline = runs[version].data.metrics.get(f"test_{metric}")
        batches.extend(
            LabelledBatch(version, step, values.get(quality), None if offline is None else float(offline), values[cost])
            for step, values in steps.items()
            if cost in values
        )
    return sorted(batches, key=lambda b: (b.step, b.version))
