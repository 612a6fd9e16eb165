"""Register a training run as a model version, idempotently and with no half-states.

Registration is idempotent per training run: the versions of a run are looked up first, so a retry
returns the version the first attempt made instead of adding a duplicate. Everything a version carries
(lineage tags, the ONNX sha256, the gate's evidence, the description) is sent in the one
``create_model_version`` call, which the registry stores in one transaction. The registration is then
marked complete (:data:`~airflow_mlops.core.contracts.TAG_REGISTRATION_COMPLETE`) only once the version
is ``READY`` and every tag is in place. When anything fails after the version was created, the version
is deleted if the registry still answers; if it does not, the version stays without the mark, promotion
refuses it, and the next attempt finds and completes it.

Everything here takes an ``MlflowClient``; nothing reads Airflow configuration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.registry.errors import _error_code, _mlflow_exception
from airflow_mlops.core.registry.lookup import (
    FAILED,
    PENDING,
    _safe_id,
    is_complete,
    validate_model_name,
    versions_of_run,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registration:
    """Outcome of :func:`register_version`.

    :ivar created: this call created the version (False: an earlier attempt had).
    :ivar completed: this call finished an interrupted registration.
    """

    name: str
    version: str
    run_id: str
    source: str
    status: str
    created: bool
    completed: bool
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "created": self.created,
            "completed": self.completed,
            "onnx_sha256": self.tags.get(contracts.TAG_ONNX_SHA256),
            "gate_evidence_uri": self.tags.get(contracts.TAG_GATE_EVIDENCE_URI),
        }


def version_source(run_artifact_uri: str, path: str) -> str:
    """The source to register a run's artifact folder ``path`` under: its URI in the run's artifact root
    (``mlflow-artifacts:/.../artifacts/onnx``, ``s3://...``, a local folder), as ``mlflow.register_model``
    resolves a ``runs:/`` URI. A ``runs:/`` source would leave a tracking server that proxies artifacts
    unable to serve the version's files (the MLmodel its UI reads the signature from): it resolves
    ``runs:/`` against its own backend store, where ``mlflow-artifacts:`` cannot be read.
    """
    return f"{run_artifact_uri.rstrip('/')}/{path.strip('/')}"


def register_version(
    client: Any,
    name: str,
    run_id: str,
    *,
    source: str,
    tags: Mapping[str, str],
    description: str,
    ready_timeout: float = 300.0,
    poll_interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Registration:
    """Register ``run_id`` as a version of ``name``, or finish the registration an earlier try began.

    :raises ArtifactError: the registry marked the version ``FAILED_REGISTRATION`` (it is deleted),
        or it did not become ``READY`` within ``ready_timeout`` seconds (a retry resumes the wait).
    """
    validate_model_name(name)
    _safe_id(run_id)
    tags = {str(k): str(v) for k, v in tags.items()}
    tags.pop(contracts.TAG_REGISTRATION_COMPLETE, None)
    _ensure_registered_model(client, name)

    existing = [v for v in versions_of_run(client, name, run_id) if not _discard_failed(client, v)]
    created = False
    if existing:
        target = existing[0]
        _discard_duplicates(client, existing[1:])
    else:
        target = client.create_model_version(
            name, source, run_id, tags=tags, description=description, await_creation_for=0
        )
        created = True
    try:
        if created:
            # Two attempts may race past the lookup; the oldest version of the run wins, the rest go.
            same_run = [v for v in versions_of_run(client, name, run_id) if str(v.status) != FAILED]
            if same_run and str(same_run[0].version) != str(target.version):
                _discard_duplicates(client, [target])
                target, created = same_run[0], False
        finished_before = is_complete(target)
        final = _complete(client, target, tags, description, ready_timeout, poll_interval, sleep, clock)
    except BaseException:
        if created:
            _delete_quietly(client, name, str(target.version))
        raise
    return Registration(
        name=name,
        version=str(final.version),
        run_id=run_id,
        source=str(final.source),
        status=str(final.status),
        created=created,
        completed=not created and not finished_before,
        tags=dict(final.tags or {}),
    )


def _ensure_registered_model(client: Any, name: str) -> None:
    try:
        client.create_registered_model(name)
    except _mlflow_exception() as exc:
        if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _discard_failed(client: Any, version: Any) -> bool:
    if str(version.status) != FAILED:
        return False
    log.warning(
        "Deleting version %s of %s: its registration failed (%s)", version.version, version.name, version.status_message
    )
    _delete_quietly(client, str(version.name), str(version.version))
    return True


def _discard_duplicates(client: Any, versions: list[Any]) -> None:
    for version in versions:
        if version.aliases:  # never drop a version something points at
            continue
        log.warning("Deleting duplicate version %s of %s for run %s", version.version, version.name, version.run_id)
        _delete_quietly(client, str(version.name), str(version.version))


def _delete_quietly(client: Any, name: str, version: str) -> None:
    try:
        client.delete_model_version(name, version)
    except Exception as exc:  # the registry may be the thing that failed: the next attempt cleans up
        log.warning("Could not delete version %s of %s (%s); a retry will complete or replace it", version, name, exc)


def _complete(
    client: Any,
    version: Any,
    tags: Mapping[str, str],
    description: str,
    ready_timeout: float,
    poll_interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Any:
    name, number = str(version.name), str(version.version)
    deadline = clock() + ready_timeout
    while str(version.status) == PENDING:
        if clock() >= deadline:
            raise ArtifactError(
                f"Version {number} of model {name!r} is still {PENDING} after {ready_timeout:g} s; "
                "a retry resumes the wait."
            )
        sleep(poll_interval)
        version = client.get_model_version(name, number)
    if str(version.status) == FAILED:
        _delete_quietly(client, name, number)
        raise ArtifactError(
            f"The registry failed to register version {number} of model {name!r}: {version.status_message}. "
            "It was deleted; a retry registers the run again."
        )
    present = dict(version.tags or {})
    for key, value in tags.items():
        if present.get(key) != value:
            client.set_model_version_tag(name, number, key, value)
    if (version.description or "") != description:
        client.update_model_version(name, number, description=description)
    client.set_model_version_tag(name, number, contracts.TAG_REGISTRATION_COMPLETE, "true")
    return client.get_model_version(name, number)
