"""Real Airflow 3 services for end-to-end tests: the package's local deployment, importing this checkout.

The components run as subprocesses on 127.0.0.1 in an isolated ``AIRFLOW_HOME`` whose metadata database
is a private PostgreSQL database (created and dropped by the caller, see ``tests/e2e/conftest.py``) or a
SQLite file. The test talks to Airflow as the UI does: ``POST /auth/token`` with a SimpleAuthManager user
from a passwords file, then REST API v2 calls with the bearer token
(:class:`~airflow_mlops.cli.airflow_api.ApiClient`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_mlops.cli import local_airflow
from airflow_mlops.cli.airflow_api import FINISHED, ApiClient, ServiceError, upstream_events, wait_for_run_caused_by
from airflow_mlops.cli.local_airflow import USERNAME, AirflowServices

REPO = Path(__file__).resolve().parents[2]

__all__ = [
    "FINISHED", "USERNAME", "AirflowServices", "ApiClient", "ServiceError", "airflow_services", "upstream_events",
    "wait_for_run_caused_by",
]  # fmt: skip


@contextlib.contextmanager
def airflow_services(home: Path, **kwargs: Any) -> Iterator[AirflowServices]:
    """:func:`airflow_mlops.cli.local_airflow.airflow_services` with this checkout first on the path."""
    with local_airflow.airflow_services(home, pythonpath=(str(REPO),), **kwargs) as running:
        yield running
