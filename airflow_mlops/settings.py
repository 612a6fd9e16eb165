"""Deployment-wide defaults: the provider's ``[mlops]`` config section, read at one boundary.

Each value can be set in ``airflow.cfg`` or as ``AIRFLOW__MLOPS__<OPTION>``. The embedded defaults put
everything under ``$AIRFLOW_HOME/mlops`` so one machine with no services runs the whole loop.
"""

from __future__ import annotations

import os

SECTION = "mlops"


def _get(option: str, default: str) -> str:
    from airflow.sdk.configuration import conf

    value = conf.get(SECTION, option, fallback=None)
    return str(value) if value not in (None, "") else default


def state_dir() -> str:
    """Folder for embedded state (local MLflow store, default storage root)."""
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "mlops")


def storage_root() -> str:
    """Root URI of every artifact: a local folder or ``s3://bucket/prefix``."""
    return _get("storage_root", os.path.join(state_dir(), "storage"))


def pipelines_folder(default: str) -> str:
    """Folder of the pipeline files the reference DAGs read, given as ``default`` by each DAG file (its own
    project's ``include/pipelines``). Relative paths inside a pipeline file (``validation.suite``) are relative
    to the folder's grandparent, as they are to the project folder for ``include/pipelines``."""
    return _get("pipelines_folder", default)


def checked_pipelines_folder() -> str | None:
    """Folder where the reference DAGs record the pipeline files that passed their costly checks, so that a
    parse of an unchanged file skips them (core/pipeline/record.py); ``off`` checks every file in full at
    every parse."""
    folder = _get("checked_pipelines_folder", os.path.join(state_dir(), "checked_pipelines"))
    return None if folder.strip().lower() == "off" else folder


def storage_conn_id() -> str:
    """Airflow connection (type ``aws``) used when the storage root is on S3."""
    return _get("storage_conn_id", "aws_default")


def mlflow_conn_id() -> str:
    """Airflow connection (type ``mlflow``) of the tracking server; absent means the embedded store."""
    return _get("mlflow_conn_id", "mlflow_default")


def mlflow_tracking_uri() -> str:
    """Tracking URI used when no MLflow connection exists: an embedded SQLite store."""
    return _get("mlflow_tracking_uri", "sqlite:///" + os.path.join(state_dir(), "mlflow.db"))


def mlflow_artifact_root() -> str:
    """Artifact root for experiments created in the embedded store."""
    return _get("mlflow_artifact_root", os.path.join(state_dir(), "mlartifacts"))


def reports_url() -> str:
    """Browser address that serves the storage root (a web server, a bucket website); empty means none.

    The Airflow UI shows only http(s) extra links, so without it the report links of a local storage
    root (``file://``) are listed by the REST API but not shown on the task page. ``report_base_url``,
    its earlier name, is read when it is not set.
    """
    return _get("reports_url", _get("report_base_url", ""))


def mlflow_ui_url() -> str:
    """Base URL people open to see MLflow, for extra links; empty means the MLflow connection's address."""
    return _get("mlflow_ui_url", "")
