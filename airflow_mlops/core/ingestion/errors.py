"""The ingestion stem's failures, beside the shared ones of :mod:`airflow_mlops.core.errors`."""

from __future__ import annotations

from airflow_mlops.core.errors import DataError, MlopsError


class EmptySourceError(DataError):
    """The source returned no rows while the spec says an empty result is a failure."""


class SourceAccessError(MlopsError, PermissionError):
    """The source refused us: wrong credentials, unknown role, missing privilege."""


class SourceUnavailableError(MlopsError, ConnectionError):
    """The source could not be reached (server down, network): transient, worth a retry."""
