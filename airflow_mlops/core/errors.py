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
