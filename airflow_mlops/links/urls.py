"""Browser addresses built from ids and storage keys with the deployment's settings, read when called.

* MLflow pages: ``[mlops] mlflow_ui_url`` when set, else the MLflow connection's ``ui_url`` extra, else
  its tracking URI (host), else the embedded store's ``mlflow ui`` address (:class:`MlflowHook`).
* Files under the storage root (reports, model cards, predictions): ``[mlops] reports_url`` (a web
  server or bucket website serving the root) + the file's key; without it a ``file://`` URL for a local
  root and the S3 console page for S3.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from airflow_mlops import settings


def _mlflow_hook(conn_id: str | None) -> Any:
    from airflow_mlops.hooks.mlflow import MlflowHook

    return MlflowHook(conn_id)


def mlflow_run_url(experiment_id: str, run_id: str, conn_id: str | None = None) -> str:
    """The run's page in the MLflow UI."""
    return str(_mlflow_hook(conn_id).run_url(experiment_id, run_id))


def model_version_url(name: str, version: str | int, conn_id: str | None = None) -> str:
    """The model version's page in the MLflow UI."""
    return str(_mlflow_hook(conn_id).model_version_url(name, version))


def storage_key(uri: str, root_uri: str) -> dict[str, str]:
    """What a link stores for ``uri``: its ``key`` under the storage root, or the whole ``uri`` outside it."""
    root = root_uri.rstrip("/")
    if uri.startswith(root + "/"):
        return {"key": uri[len(root) + 1 :]}
    return {"uri": uri}


def storage_url(payload: Mapping[str, Any], base_url: str | None = None, root_uri: str | None = None) -> str:
    """The address of a stored file (``{"key": ...}`` under the root, or ``{"uri": ...}``).

    :param base_url: the operator's own reports address; ``[mlops] reports_url`` when empty.
    :param root_uri: the operator's own storage root; ``[mlops] storage_root`` when empty.
    """
    base = base_url or settings.reports_url()
    root = (root_uri or settings.storage_root()).rstrip("/")
    key = str(payload.get("key") or "")
    uri = str(payload.get("uri") or (f"{root}/{key}" if key else ""))
    if not uri:
        return ""
    if base:
        relative = key or uri.rpartition("/")[2]
        return f"{base.rstrip('/')}/{quote(relative)}"
    if uri.startswith("s3://"):
        bucket, _, path = uri[len("s3://") :].partition("/")
        return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(path)}"
    path = uri.removeprefix("file://")
    return "file://" + quote(path if path.startswith("/") else "/" + path)
