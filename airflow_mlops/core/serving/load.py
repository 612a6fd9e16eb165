"""Load a pinned model version from the registry as a :class:`~airflow_mlops.core.serving.model.ServingModel`.

Only ONNX bytes, the JSON training spec and (for explanations) the Parquet reference sample are
downloaded from the version's run: nothing here unpickles. The ONNX bytes are checked against the
sha256 that :func:`~airflow_mlops.core.serving.resolve.resolve_model_version` pinned.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.serving.model import ModelSpec, ServingModel
from airflow_mlops.core.serving.resolve import ModelReference, _not_found


def _download(client: Any, run_id: str, path: str, folder: str) -> bytes:
    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(run_id, path, folder)
        with open(local, "rb") as handle:
            return handle.read()
    except (MlflowException, OSError) as exc:
        if isinstance(exc, MlflowException) and not _not_found(exc):
            raise
        raise ArtifactError(
            f"The run {run_id} has no artifact {path!r}: it was not logged by a compatible trainer ({exc})."
        ) from exc


def load_serving_model(
    client: Any, ref: ModelReference, *, threads: int = 1, with_baseline: bool = False
) -> ServingModel:
    """Download the ONNX file and training spec of ``ref``'s run, verify the sha256 and load the graph.

    Reads only ONNX bytes, JSON and (for ``with_baseline``) the Parquet reference sample: nothing
    here unpickles.

    :raises IntegrityError: the ONNX file does not match the recorded sha256.
    :raises ArtifactError: an artifact is missing.
    """
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
        model_bytes = _download(client, ref.run_id, contracts.ARTIFACT_ONNX, folder)
        spec_bytes = _download(client, ref.run_id, contracts.ARTIFACT_SPEC, folder)
        try:
            raw_spec = json.loads(spec_bytes)
        except ValueError as exc:
            raise ArtifactError(f"The training spec of run {ref.run_id} is not valid JSON: {exc}") from exc
        baseline = _baseline(client, ref, raw_spec, folder) if with_baseline else None
    return ServingModel.from_bytes(
        model_bytes,
        raw_spec,
        name=ref.name,
        version=ref.version,
        expected_sha256=ref.onnx_sha256,
        threads=threads,
        alias=ref.alias,
        baseline=baseline,
    )


def _baseline(client: Any, ref: ModelReference, raw_spec: Any, folder: str) -> dict[str, Any]:
    """The occlusion baseline row, from the run's training reference sample."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.serving.explanations import baseline_from_reference

    reference = pq.read_table(pa.BufferReader(_download(client, ref.run_id, contracts.ARTIFACT_REFERENCE, folder)))
    return baseline_from_reference(reference, ModelSpec.from_mapping(raw_spec).inputs)
