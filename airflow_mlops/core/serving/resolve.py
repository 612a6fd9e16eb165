"""Registry resolution: pin the model version an alias or a version number names, with its checksum.

Every run that serves, explains, monitors or gates a registered model starts here, so every one of
them refuses the same versions for the same reasons: a version that does not exist, is not READY,
or carries no trustworthy ONNX sha256. Each refusal is a
:class:`~airflow_mlops.core.errors.ModelVersionError` naming the model, the alias or version asked
for, and what was expected.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import (
    ModelVersionError,
    ModelVersionNotFoundError,
    ModelVersionNotReadyError,
    ModelVersionUnverifiableError,
    SpecError,
)


@dataclass(frozen=True)
class ModelReference:
    """A model version pinned for a run: what was resolved and the checksum it must match."""

    name: str
    version: str
    run_id: str
    onnx_sha256: str
    alias: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "onnx_sha256": self.onnx_sha256,
        }


def _not_found(exc: Exception) -> bool:
    """Whether an ``MlflowException`` says the thing asked for does not exist (rather than the server failed)."""
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower()


def _pinned(version: str | int | None) -> bool:
    return version not in (None, "")


@dataclass(frozen=True)
class _Request:
    """What the caller asked for: a version number, or else an alias."""

    name: str
    alias: str | None
    version: str | None

    @classmethod
    def of(cls, name: str, alias: str | None, version: str | int | None) -> _Request:
        return cls(name, None, str(version)) if _pinned(version) else cls(name, alias, None)

    def __str__(self) -> str:
        """``model 'm' version 3`` or ``model 'm' alias 'champion'``."""
        return (
            f"model {self.name!r} version {self.version}"
            if self.version
            else f"model {self.name!r} alias {self.alias!r}"
        )

    def error(self, kind: type[ModelVersionError], message: str) -> ModelVersionError:
        return kind(message, model=self.name, alias=self.alias, version=self.version)


def _registered_version(client: Any, request: _Request) -> Any:
    """The registry's ``ModelVersion`` for the request; transient registry errors propagate unchanged."""
    from mlflow.exceptions import MlflowException

    try:
        if request.version:
            return client.get_model_version(request.name, request.version)
        return client.get_model_version_by_alias(request.name, request.alias)
    except MlflowException as exc:
        if not _not_found(exc):
            raise  # the server is down or refused: a retry may succeed
        what = f"version {request.version}" if request.version else f"version with alias {request.alias!r}"
        raise request.error(
            ModelVersionNotFoundError,
            f"The registered model {request.name!r} has no {what} ({exc.message}). Expected an existing registered "
            "model with that version or alias (check the name, the version number, that the alias is set).",
        ) from exc


def _verified_sha256(client: Any, found: Any, request: _Request) -> str:
    """The ONNX sha256 the version's file must match, cross-checked with its training run's tag."""
    name, version = request.name, found.version
    if not found.run_id:
        raise request.error(
            ModelVersionUnverifiableError,
            f"Model {name!r} version {version} ({request}) has no source run, so its ONNX artifact cannot be found. "
            "Expected a version registered from a training run.",
        )
    expected = dict(found.tags or {}).get(contracts.TAG_ONNX_SHA256)
    if not expected:
        raise request.error(
            ModelVersionUnverifiableError,
            f"Model {name!r} version {version} ({request}) carries no {contracts.TAG_ONNX_SHA256!r} tag, so its "
            "ONNX file cannot be verified. Register it with RegisterModelOperator (which copies the tag from the run).",
        )
    run_tag = client.get_run(found.run_id).data.tags.get(contracts.TAG_ONNX_SHA256)
    if run_tag and run_tag != expected:
        raise request.error(
            ModelVersionUnverifiableError,
            f"Model {name!r} version {version} ({request}) records ONNX sha256 {expected}, but its run "
            f"{found.run_id} records {run_tag}: one of them was changed. Refusing to use it; expected both to agree.",
        )
    return str(expected)


def resolve_model_version(
    client: Any, name: str, *, alias: str | None = None, version: str | int | None = None
) -> ModelReference:
    """Pin a model version: by ``version`` when given, else by ``alias``.

    :param client: an ``MlflowClient`` (the operator gets it from ``MlflowHook().get_conn()``).
    :raises SpecError: neither ``name`` nor an alias or version to resolve was given.
    :raises ModelVersionError: the registry's answer cannot be served; the subclass says why:
        ``ModelVersionNotFoundError`` (a ``SourceNotFoundError``): no such registered model, version or alias;
        ``ModelVersionNotReadyError`` (an ``ArtifactError``, ``retryable``): the version is not READY yet;
        ``ModelVersionUnverifiableError`` (an ``IntegrityError``): the version has no source run, carries no
        ``mlops.onnx_sha256`` tag, or its tag disagrees with the one on its training run.
    Other registry errors (server down, permission) propagate unchanged: a retry may succeed.
    """
    if not name:
        raise SpecError("The 'model_name' parameter is required.")
    if not _pinned(version) and not alias:
        raise SpecError("Give the model 'alias' to resolve or a pinned 'model_version'.")
    request = _Request.of(name, alias, version)
    found = _registered_version(client, request)
    status = str(getattr(found, "status", "READY"))
    if status not in ("READY", "ModelVersionStatus.READY"):
        raise request.error(
            ModelVersionNotReadyError,
            f"Model {name!r} version {found.version} ({request}) is {status}, not READY yet; expected a READY "
            "version (a retry may succeed).",
        )
    return ModelReference(
        name=name,
        version=str(found.version),
        run_id=str(found.run_id),
        onnx_sha256=_verified_sha256(client, found, request),
        alias=request.alias,
    )
