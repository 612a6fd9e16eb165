"""Airflow-facing failures.

A deterministic verdict (data failed validation, a model was rejected) must not be retried: retrying
would give the same answer and hide the verdict behind retry noise. These subclass Airflow's
``AirflowFailException``, which fails the task without retries, and our own ``MlopsError`` so that code
outside Airflow can catch them by the package root.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core.errors import MlopsError


class MlopsVerdictFailure(AirflowFailException, MlopsError):
    """A deterministic negative verdict: fail the task, do not retry."""


class DataValidationFailed(MlopsVerdictFailure):
    """The data failed a blocking check (schema skew, empty snapshot, ...)."""


class ModelRejected(MlopsVerdictFailure):
    """The candidate model did not pass the gate."""


class ModelIntegrityFailure(MlopsVerdictFailure):
    """A model artifact does not match the checksum recorded at registration."""
