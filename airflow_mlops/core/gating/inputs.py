"""Fetch what the gate evaluates from MLflow: the candidate's run, the champion's registered version.

A model under test is the ONNX file and training spec artifact of a run (paths in
:mod:`~airflow_mlops.core.contracts`), the sha256 recorded for it (the run's tag for a candidate, the
version's tag for a champion: what was registered is what must be served), the parity the training
run measured, and, when asked, the native model for re-checking that parity.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, SourceNotFoundError, SpecError
from airflow_mlops.core.gating.models import PARITY_MEASURES, ModelUnderTest, NativePredict
from airflow_mlops.core.onnx_model import feed, inputs_from_spec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)


def download_run_artifact(client: Any, run_id: str, path: str) -> bytes:
    """The bytes of one run artifact.

    :raises SourceNotFoundError: the run has no such artifact (named with the run and path).
    """
    from mlflow.exceptions import MlflowException

    with tempfile.TemporaryDirectory(prefix="mlops-gate-") as tmp:
        try:
            local = client.download_artifacts(run_id, path, tmp)
        except (MlflowException, OSError) as exc:
            if isinstance(exc, MlflowException) and getattr(exc, "error_code", None) not in (
                "RESOURCE_DOES_NOT_EXIST",
                "INVALID_PARAMETER_VALUE",
            ):
                raise
            raise SourceNotFoundError(f"Run {run_id} has no artifact {path!r}: {exc}") from exc
        file = Path(local)
        if not file.is_file():
            raise SourceNotFoundError(f"Run {run_id} has no artifact file {path!r}.")
        return file.read_bytes()


def training_plots(client: Any, run_id: str) -> dict[str, bytes]:
    """The PNG plots training logged on the run (``plots/*.png``), by file name; empty when it logged none."""
    from airflow_mlops.core.gating.card import PLOTS_FOLDER

    if not any(f.path.endswith(".png") for f in client.list_artifacts(run_id, PLOTS_FOLDER)):
        return {}
    with tempfile.TemporaryDirectory(prefix="mlops-plots-") as tmp:
        folder = Path(client.download_artifacts(run_id, PLOTS_FOLDER, tmp))
        return {path.name: path.read_bytes() for path in sorted(folder.glob("*.png"))}


def logged_parity(spec: dict[str, Any], run_metrics: dict[str, float]) -> float | None:
    """The parity the training run measured: from its spec artifact, else its ``parity_<measure>`` metric."""
    task = spec.get("task")
    parity = spec.get("parity")
    if (
        isinstance(parity, dict)
        and isinstance(parity.get("value"), (int, float))
        and parity.get("measure") in (None, PARITY_MEASURES.get(str(task)))
    ):
        return float(parity["value"])
    metric = f"parity_{PARITY_MEASURES.get(str(task), '')}"
    value = run_metrics.get(metric)
    return None if value is None else float(value)


def load_native_model(client: Any, run: Any, name: str = contracts.ARTIFACT_NATIVE_MODEL) -> Any:
    """The run's native scikit-learn pipeline, as the training stem logs it (the MLflow model named
    ``model``, sklearn flavor; ``model_selection`` for a refit run's selection model), found through
    this client (never MLflow's process-wide tracking URI).

    :raises ArtifactError: it was not logged, or cannot be loaded here (a flavor or library missing).
    """
    import mlflow.artifacts
    import mlflow.sklearn
    from mlflow.exceptions import MlflowException

    run_id = str(run.info.run_id)
    try:
        found = client.search_logged_models(
            experiment_ids=[str(run.info.experiment_id)],
            filter_string=f"source_run_id = '{run_id}' AND name = '{name}'",
        )
        with tempfile.TemporaryDirectory(prefix="mlops-native-") as tmp:
            if found:
                local = mlflow.artifacts.download_artifacts(
                    artifact_uri=found[0].artifact_location, tracking_uri=client.tracking_uri, dst_path=tmp
                )
            else:  # a model logged as plain run artifacts
                local = client.download_artifacts(run_id, name, tmp)
            return mlflow.sklearn.load_model(local)
    except (MlflowException, OSError, ImportError, ValueError) as exc:
        raise ArtifactError(f"The native model of run {run_id} cannot be loaded: {exc}") from exc


def native_predictor(
    client: Any, run: Any, spec: dict[str, Any], name: str = contracts.ARTIFACT_NATIVE_MODEL
) -> NativePredict | None:
    """The run's native model as a prediction function, or None when it cannot be loaded (not logged,
    a flavor or library missing here): the gate then relies on the parity the training run logged.
    """
    try:
        model = load_native_model(client, run, name)
    except ArtifactError as exc:
        log.warning("%s; using the logged parity", exc)
        return None
    inputs = inputs_from_spec(spec)
    classifier = spec.get("task") != "regression"

    def predict(frame: pd.DataFrame) -> np.ndarray:
        import numpy as np
        import pandas as pd

        arrays = feed(frame, inputs)  # exactly what the ONNX graph is fed, as training feeds its pipeline
        x = pd.DataFrame({i.name: arrays[i.name][:, 0] for i in inputs}, index=frame.index)
        return np.asarray(model.predict_proba(x) if classifier else model.predict(x))

    return predict


def training_sample(client: Any, run_id: str, path: str = contracts.ARTIFACT_REFERENCE) -> pd.DataFrame | None:
    """The run's reference artifact (a seeded sample of its training rows, with the target), or None;
    ``path`` names the selection model's sample of a refit run."""
    import io

    import pyarrow.parquet as pq

    try:
        content = download_run_artifact(client, run_id, path)
    except SourceNotFoundError:
        return None
    try:
        return pq.read_table(io.BytesIO(content)).to_pandas()
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        log.warning(
            "The training sample of run %s is unreadable (%s); the baseline uses the evaluation rows", run_id, exc
        )
        return None


def load_run_model(
    client: Any,
    run_id: str,
    role: Literal["candidate", "champion"],
    *,
    expected_sha256: str | None = None,
    version: str | None = None,
    native: bool = True,
    on_test_split: bool = False,
) -> ModelUnderTest:
    """The ONNX model and spec of ``run_id``.

    :param expected_sha256: the recorded sha256 (a champion's version tag); the run's
        ``mlops.onnx_sha256`` tag when omitted.
    :param on_test_split: the evaluation rows are the candidate run's own test split. A run that
        registers a refit on every row (``mlops.model_fit = refit_all``) has fitted those rows, so the
        model judged is its selection model (``onnx_selection/model.onnx``, fitted on the train split),
        whose test metrics are the refit's estimate; the registered ONNX is judged on any other rows.
    :raises SpecError: the run records no sha256 for its ONNX file (not made by the training stem), or
        its spec artifact is not JSON.
    :raises SourceNotFoundError: the run, its ONNX file or its spec artifact does not exist.
    """
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        if getattr(exc, "error_code", None) == "RESOURCE_DOES_NOT_EXIST":
            raise SourceNotFoundError(f"There is no MLflow run {run_id!r} (the {role}).") from exc
        raise
    selection = on_test_split and role == "candidate" and run.data.tags.get(contracts.TAG_MODEL_FIT) == "refit_all"
    sha_tag = contracts.TAG_SELECTION_ONNX_SHA256 if selection else contracts.TAG_ONNX_SHA256
    recorded = expected_sha256 or run.data.tags.get(sha_tag)
    if not recorded:
        raise SpecError(
            f"Run {run_id} has no {sha_tag!r} tag: it was not trained by TrainModelOperator, "
            "so there is no recorded checksum to hold its ONNX file to."
        )
    onnx_bytes = download_run_artifact(
        client, run_id, contracts.ARTIFACT_ONNX_SELECTION if selection else contracts.ARTIFACT_ONNX
    )
    try:
        spec = json.loads(download_run_artifact(client, run_id, contracts.ARTIFACT_SPEC))
    except ValueError as exc:
        raise SpecError(f"The spec artifact {contracts.ARTIFACT_SPEC!r} of run {run_id} is not JSON: {exc}") from exc
    if selection:
        return _selection_model(client, run, onnx_bytes, spec, recorded, native=native)
    return ModelUnderTest(
        training_sample=training_sample(client, run_id) if role == "candidate" else None,
        role=role,
        onnx_bytes=onnx_bytes,
        spec=spec,
        run_id=run_id,
        version=version,
        expected_sha256=recorded,
        native_predict=native_predictor(client, run, spec) if native else None,
        logged_parity=logged_parity(spec, dict(run.data.metrics)),
    )


def _selection_model(
    client: Any, run: Any, onnx_bytes: bytes, spec: dict[str, Any], recorded: str, *, native: bool
) -> ModelUnderTest:
    """A refit run's selection model as the candidate: its own native model, parity and training sample
    (the run's ``model``, parity and ``reference/`` are the refit's)."""
    run_id = str(run.info.run_id)
    judged = selection_spec(spec)
    return ModelUnderTest(
        role="candidate",
        onnx_bytes=onnx_bytes,
        spec=judged,
        run_id=run_id,
        expected_sha256=recorded,
        training_sample=training_sample(client, run_id, contracts.ARTIFACT_REFERENCE_SELECTION),
        native_predict=(
            native_predictor(client, run, judged, contracts.ARTIFACT_NATIVE_SELECTION_MODEL) if native else None
        ),
        logged_parity=logged_parity(judged, {}),
    )


def selection_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The training spec artifact as it describes the run's selection model (a ``refit_all`` run): its
    checksum and parity, and ``judged_model: selection`` so the decision says which model it judged."""
    recorded = spec.get("fit")
    fit: dict[str, Any] = recorded if isinstance(recorded, dict) else {}
    return {
        **spec,
        "onnx_sha256": fit.get("selection_onnx_sha256"),
        "parity": fit.get("selection_parity"),
        "judged_model": "selection",
    }
