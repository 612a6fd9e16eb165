"""The one exception root of airflow-mlops.

Every error the package raises on purpose derives from :class:`MlopsError` and, where a caller would
naturally catch a built-in, from that built-in too (``SpecError`` is a ``ValueError``). Messages say
what was given and what was expected, naming the file, column or parameter.
"""

from __future__ import annotations


class MlopsError(Exception):
    """Root of every error raised on purpose by airflow-mlops."""


class SpecError(MlopsError, ValueError):
    """A specification or parameter is malformed: wrong type, out of range, unknown name."""


class DataError(MlopsError, ValueError):
    """Input data does not match what was expected: missing column, uncoercible type, corrupt file."""


class SourceNotFoundError(MlopsError, FileNotFoundError):
    """A source (path, key, table) that should exist does not."""


class ArtifactError(MlopsError, OSError):
    """An artifact could not be written, read or verified (storage, checksum, registry files)."""


class IntegrityError(ArtifactError):
    """An artifact's content does not match its recorded checksum: refuse to use it."""


class ModelVersionError(MlopsError):
    """A registered model, asked for by alias or version, does not resolve to a version that can be served.

    Everything :func:`airflow_mlops.core.serving.resolve_model_version` raises about the registry's
    answer is one of these, so a caller maps a single class. ``model``, ``alias`` and ``version`` say
    what was asked for; ``retryable`` says whether asking again later may succeed. Each subclass also
    derives from the error a caller of the older API caught.
    """

    retryable = False

    def __init__(self, message: str, *, model: str, alias: str | None = None, version: str | None = None) -> None:
        super().__init__(message)
        self.model, self.alias, self.version = model, alias, version


class ModelVersionNotFoundError(ModelVersionError, SourceNotFoundError):
    """No such registered model, version or alias."""


class ModelVersionNotReadyError(ModelVersionError, ArtifactError):
    """The version exists but is still being created: asking again later may succeed."""

    retryable = True


class ModelVersionUnverifiableError(ModelVersionError, IntegrityError):
    """The version has no source run or no trustworthy ONNX sha256 to check its file against."""
