"""Load a pinned model version from the registry as a :class:`~airflow_mlops.core.serving.model.ServingModel`.

Only ONNX bytes, the JSON training spec and (for explanations) the Parquet reference sample are
downloaded from the version's run: nothing here unpickles. The ONNX bytes are checked against the
sha256 that :func:`~airflow_mlops.core.serving.resolve.resolve_model_version` pinned.
"""

from __future__ import annotations

import json
import tempfile
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, IntegrityError, SpecError
from airflow_mlops.core.serving.compiled import PARITY_ROWS, RUNTIMES
from airflow_mlops.core.serving.model import ModelSpec, ServingModel
from airflow_mlops.core.serving.resolve import ModelReference, _not_found

if TYPE_CHECKING:
    from airflow_mlops.core.features.apply import Transformer
    from airflow_mlops.core.features.dimensions import SqlEngine


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
    client: Any,
    ref: ModelReference,
    *,
    threads: int = 1,
    with_baseline: bool = False,
    runtime: str = "onnx",
    cache_dir: str | None = None,
) -> ServingModel:
    """Download the ONNX file and training spec of ``ref``'s run, verify the sha256 and load the graph.

    Reads only ONNX bytes, JSON and (for ``with_baseline``) the Parquet reference sample: nothing
    here unpickles. With ``runtime="compiled"`` the LightGBM text model is compiled on this worker
    too (:func:`attach_compiled`).

    :raises IntegrityError: the ONNX file does not match the recorded sha256, or is gone although a
        sha256 was recorded for it at registration (deleted since: asking again will not bring it back).
    :raises ArtifactError: another artifact is missing.
    """
    if runtime not in RUNTIMES:
        raise SpecError(f"'runtime' must be one of {list(RUNTIMES)}. Got {runtime!r} instead.")
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
        model_bytes = _download_onnx(client, ref, folder)
        spec_bytes = _download(client, ref.run_id, contracts.ARTIFACT_SPEC, folder)
        try:
            raw_spec = json.loads(spec_bytes)
        except ValueError as exc:
            raise ArtifactError(f"The training spec of run {ref.run_id} is not valid JSON: {exc}") from exc
        baseline = _baseline(client, ref, raw_spec, folder) if with_baseline else None
    model = ServingModel.from_bytes(
        model_bytes,
        raw_spec,
        name=ref.name,
        version=ref.version,
        expected_sha256=ref.onnx_sha256,
        threads=threads,
        alias=ref.alias,
        baseline=baseline,
    )
    if runtime == "compiled":
        if cache_dir is None:
            raise SpecError("serving.runtime 'compiled' needs a cache folder for the compiled models ('cache_dir').")
        return attach_compiled(client, ref, model, raw_spec, cache_dir)
    return model


def attach_compiled(
    client: Any, ref: ModelReference, model: ServingModel, raw_spec: Any, cache_dir: str
) -> ServingModel:
    """``model`` with its LightGBM trees compiled on this worker (:mod:`~airflow_mlops.core.serving.compiled`).

    The text model must carry the sha256 recorded at training; the compiled trees must match the ONNX
    graph on the run's reference sample (at most ``PARITY_ROWS`` rows), or nothing is served.

    :raises SpecError: lleaves is not installed.
    :raises ArtifactError: the run logged no LightGBM text model (not LightGBM, or trained before it was logged).
    :raises IntegrityError: the text model was changed, or the compiled trees disagree with the graph.
    """
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.onnx_model import feed_arrow
    from airflow_mlops.core.serving.compiled import CompiledForest, FeatureLayout, _lleaves, check_parity

    _lleaves()  # the missing extra is named before anything is downloaded
    expected = client.get_run(ref.run_id).data.tags.get(contracts.TAG_LIGHTGBM_SHA256)
    if not expected:
        raise ArtifactError(
            f"Model {ref.name!r} version {ref.version} (run {ref.run_id}) has no LightGBM text model with a "
            f"recorded sha256 (tag {contracts.TAG_LIGHTGBM_SHA256!r}): serving.runtime 'compiled' serves LightGBM "
            "models trained by this version of the package or later; use 'onnx' for this one."
        )
    with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
        text = _download(client, ref.run_id, contracts.ARTIFACT_LIGHTGBM_TEXT, folder)
        sample = pq.read_table(pa.BufferReader(_download(client, ref.run_id, contracts.ARTIFACT_REFERENCE, folder)))
    forest = CompiledForest(
        text,
        expected,
        FeatureLayout.of(model.spec.inputs, raw_spec.get("vocabulary")),
        task=model.spec.task,
        classes=model.spec.classes,
        label_type="string" if str(model.prediction_type()) == "string" else "int64",
        cache_dir=cache_dir,
        threads=model.onnx.threads,
    )
    check_parity(model.onnx, forest, feed_arrow(sample.slice(0, PARITY_ROWS), model.spec.inputs))
    return dataclasses.replace(model, runner=forest)


def _download_onnx(client: Any, ref: ModelReference, folder: str) -> bytes:
    try:
        return _download(client, ref.run_id, contracts.ARTIFACT_ONNX, folder)
    except ArtifactError as exc:
        if not ref.onnx_sha256:
            raise
        raise IntegrityError(
            f"Model {ref.name!r} version {ref.version} was registered with an ONNX file of sha256 "
            f"{ref.onnx_sha256}, but {contracts.ARTIFACT_ONNX!r} is no longer among the artifacts of run "
            f"{ref.run_id}: it was deleted after registration. Refusing to serve the version; restore the file "
            "or promote another version."
        ) from exc


def _baseline(client: Any, ref: ModelReference, raw_spec: Any, folder: str) -> dict[str, Any]:
    """The occlusion baseline row, from the run's training reference sample."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.serving.explanations import baseline_from_reference

    reference = pq.read_table(pa.BufferReader(_download(client, ref.run_id, contracts.ARTIFACT_REFERENCE, folder)))
    return baseline_from_reference(reference, ModelSpec.from_mapping(raw_spec).inputs)


def run_transformer(
    client: Any, run_id: str, model: ServingModel, root: Any, sql_engine: SqlEngine | None = None
) -> Transformer | None:
    """The version's feature transforms bound to the dimensions of the pipeline its run trained for
    (``{root}/{pipeline}/...``, the pipeline read from the run's ``mlops.pipeline`` tag, or SQL tables
    through ``sql_engine``: a connection id -> a SQLAlchemy engine); None without any.

    :raises SpecError: the run records no pipeline although the transforms join dimension tables.
    """
    from airflow_mlops.core.features.apply import Transformer, bind

    if not model.spec.transforms:
        return None
    if not model.spec.transforms.joins:
        return Transformer(model.spec.transforms)
    pipeline = client.get_run(run_id).data.tags.get(contracts.TAG_PIPELINE)
    if not pipeline:
        raise SpecError(
            f"Run {run_id} has no {contracts.TAG_PIPELINE!r} tag: the dimension tables its joins read cannot be found."
        )
    return bind(model.spec.transforms, root, str(pipeline), sql_engine)
