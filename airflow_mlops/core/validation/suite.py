"""Where a run's suite comes from: a GX suite file (JSON, e.g. shipped in ``include/``) or one inferred
from a reference snapshot; saving it under the storage root and logging it to MLflow."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.validation.gx import import_gx
from airflow_mlops.core.validation.inference import infer_suite_from_snapshot
from airflow_mlops.core.validation.json_safe import dumps, first_line, jsonable
from airflow_mlops.core.validation.spec import InferenceSpec

if TYPE_CHECKING:
    from great_expectations.core.expectation_suite import ExpectationSuite
    from mlflow import MlflowClient

    from airflow_mlops.core.storage import StorageRoot

SUITE_FILE = "expectation_suite.json"


def _read_uri(uri: str, root: StorageRoot | None) -> bytes:
    """Bytes at ``uri``: through the storage root when it lies inside it, else from the local disk."""
    if root is not None and root.contains(uri):
        return root.read_bytes(uri)
    if uri.startswith("s3://"):
        raise SpecError(f"The URI {uri!r} is on S3 but outside the storage root {getattr(root, 'uri', None)!r}.")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"No file at {uri!r}.") from exc
    except IsADirectoryError as exc:
        raise SpecError(f"Expected a file at {uri!r}, found a folder.") from exc


def suite_from_dict(data: Mapping[str, Any], source: str = "(mapping)") -> ExpectationSuite:
    """Build a GX suite from its JSON form, refusing anything GX would silently drop.

    ``ExpectationSuite(...)`` logs and skips an expectation it cannot build; a gate that quietly checks
    less than its file says is worse than one that refuses to start, so each entry is built first and the
    first bad one is named. Suites in the GX 0.x layout (``expectation_suite_name``, ``expectation_type``)
    are read too.
    """
    gx = import_gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    if not isinstance(data, Mapping):
        raise SpecError(f"The suite {source} must be a JSON object. Got {type(data).__name__} instead.")
    name = data.get("name") or data.get("expectation_suite_name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"The suite {source} has no 'name' (a non-empty string).")
    raw = data.get("expectations")
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"The suite {source} must list at least one expectation under 'expectations'.")
    configs = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise SpecError(f"Expectation #{index} of suite {source} must be an object. Got {entry!r}.")
        entry = dict(entry)
        if "type" not in entry and "expectation_type" in entry:
            entry["type"] = entry.pop("expectation_type")
        entry.pop("id", None)
        expectation_type = entry.get("type")
        try:
            config = ExpectationConfiguration(**entry)
            config.to_domain_obj()
        except Exception as exc:  # GX raises a zoo of types here (pydantic, KeyError, its own)
            raise SpecError(
                f"Expectation #{index} ({expectation_type!r}) of suite {source} is not a valid GX "
                f"{gx.__version__} expectation: {first_line(exc)}"
            ) from exc
        configs.append(config)
    meta = data.get("meta")
    suite: ExpectationSuite = gx.ExpectationSuite(
        name=name,
        expectations=configs,
        meta=dict(meta) if isinstance(meta, Mapping) else None,
        notes=data.get("notes"),
        suite_parameters=data.get("suite_parameters") or data.get("evaluation_parameters") or None,
    )
    return suite


def load_suite(uri: str, root: StorageRoot | None = None) -> ExpectationSuite:
    """Load a GX suite file: from the storage root when ``uri`` lies inside it, else a local file."""
    data = _read_uri(uri, root)
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"The suite file {uri!r} is not valid JSON: {exc}") from exc
    return suite_from_dict(parsed, source=repr(uri))


def suite_to_dict(suite: ExpectationSuite) -> dict[str, Any]:
    """The suite's GX JSON form without its random ids, so equal suites serialize to equal bytes."""
    data = cast(dict[str, Any], jsonable(suite.to_json_dict()))
    data.pop("id", None)
    for expectation in data.get("expectations", []):
        expectation.pop("id", None)
        expectation.pop("rendered_content", None)
    return data


def save_suite(root: StorageRoot, suite: ExpectationSuite, pipeline: str, partition: str) -> str:
    """Write the suite atomically to ``{root}/{pipeline}/validation/{partition}/expectation_suite.json``."""
    uri = root.layout(pipeline, contracts.KIND_VALIDATION, partition, SUITE_FILE)
    root.write_bytes(uri, dumps(suite_to_dict(suite)))
    return uri


def log_suite(client: MlflowClient, run_id: str, suite: ExpectationSuite) -> None:
    """Log the suite to an MLflow run at ``contracts.ARTIFACT_SUITE``, versioning it with the model."""
    client.log_text(run_id, dumps(suite_to_dict(suite)).decode(), contracts.ARTIFACT_SUITE)


def prepare_suite(
    root: StorageRoot,
    *,
    pipeline: str,
    partition: str,
    suite_uri: str | None = None,
    reference_uri: str | None = None,
    inference: Mapping[str, Any] | None = None,
    save: bool = True,
) -> tuple[ExpectationSuite, str]:
    """Resolve the suite for a run: load ``suite_uri``, or infer one from ``reference_uri`` and save it.

    Exactly one of the two must be given. Returns the suite and the URI it was read from or saved to.
    With ``save=False`` an inferred suite is not written yet and the URI is where :func:`save_suite`
    will put it: a caller that still has to check the snapshot then writes nothing for a bad one.
    """
    root.layout(pipeline, contracts.KIND_VALIDATION, partition)  # refuse bad names before any work
    if bool(suite_uri) == bool(reference_uri):
        raise SpecError(
            "Give exactly one of 'suite_uri' (a GX suite file) and 'reference_uri' (a snapshot to infer a suite "
            "from), or to ValidateDatasetOperator 'model_name' alone (the suite logged with a model version). "
            f"Got suite_uri={suite_uri!r}, reference_uri={reference_uri!r}."
        )
    if suite_uri:
        if inference:
            raise SpecError("The 'inference' settings apply to 'reference_uri' only; remove them or the suite_uri.")
        return load_suite(suite_uri, root), suite_uri
    spec = InferenceSpec.from_mapping(inference)
    suite = infer_suite_from_snapshot(str(reference_uri), root, spec, name=f"{pipeline}.inferred")
    if not save:
        return suite, root.layout(pipeline, contracts.KIND_VALIDATION, partition, SUITE_FILE)
    return suite, save_suite(root, suite, pipeline, partition)


# -- the suite of a model version -----------------------------------------------------------------------
def log_suite_file(client: MlflowClient, run_id: str, uri: str, root: StorageRoot | None = None) -> None:
    """Log the suite file at ``uri`` to a training run at ``contracts.ARTIFACT_SUITE``, as it is (no GX import):
    the model version registered from the run carries the suite its training snapshot passed, and serving
    validates its batches with it when the pipeline names no suite file (:func:`model_suite`).

    :raises SpecError: the file is not a JSON object (a suite file that cannot be a suite).
    """
    data = _read_uri(uri, root)
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"The suite file {uri!r} is not valid JSON: {exc}") from exc
    if not isinstance(parsed, Mapping) or not isinstance(parsed.get("expectations"), list):
        raise SpecError(f"The suite file {uri!r} must be a JSON object with 'expectations'. Got {type(parsed)}.")
    client.log_text(run_id, data.decode(), contracts.ARTIFACT_SUITE)


def model_suite(client: MlflowClient, model_name: str, version: str | None = None) -> tuple[ExpectationSuite, str]:
    """The suite logged with a model version's training run (``champion`` when ``version`` is None), and a
    ``models:/<name>/<version>`` label saying where it came from.

    :raises SourceNotFoundError: no such version or alias, or its run logged no suite (trained before
        suites were logged with the model): name a suite file in the pipeline's ``validation.suite``.
    """
    import tempfile

    from mlflow.exceptions import MlflowException

    try:
        found = (
            client.get_model_version(model_name, str(version))
            if version not in (None, "", "None")
            else client.get_model_version_by_alias(model_name, contracts.ALIAS_CHAMPION)
        )
    except MlflowException as exc:
        wanted = f"version {version}" if version not in (None, "", "None") else f"alias {contracts.ALIAS_CHAMPION!r}"
        raise SourceNotFoundError(f"The registered model {model_name!r} has no {wanted}: {exc}") from exc
    label = f"models:/{model_name}/{found.version}"
    with tempfile.TemporaryDirectory(prefix="mlops-suite-") as folder:
        try:
            path = client.download_artifacts(str(found.run_id), contracts.ARTIFACT_SUITE, folder)
        except (MlflowException, OSError) as exc:
            raise SourceNotFoundError(
                f"{label} (run {found.run_id}) has no {contracts.ARTIFACT_SUITE!r} artifact, so there is no suite "
                "to validate its batches with. Name a suite file in the pipeline's 'validation.suite', or "
                f"retrain: training logs the suite its snapshot passed. ({exc})"
            ) from exc
        return load_suite(path), label
