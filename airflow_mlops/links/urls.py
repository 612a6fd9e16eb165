"""Browser addresses built from ids and storage keys with the deployment's settings, read when called.

An extra link shows :func:`view_url`: the plugin's ``go`` route on the api-server
(``<[api] base_url>/mlops/go/<kind>?<ids>``), which holds ids only. When it is clicked, the route calls
:func:`resolve` with those ids and the settings of that moment, and redirects to the address below.

* MLflow pages: ``[mlops] mlflow_ui_url`` when set, else the MLflow connection's ``ui_url`` extra, else
  its tracking URI (host), else the embedded store's ``mlflow ui`` address (:class:`MlflowHook`).
* Files under the storage root (reports, model cards, predictions): ``[mlops] reports_url`` (a web
  server or bucket website serving the root) + the file's key; without it the plugin's own report route
  (predictions: its table preview), behind Airflow's sign-in.
  A file outside the root, or under an operator's own root or address, keeps the address built when the
  task ended (:func:`storage_url`): a ``file://`` URL for a local root, the S3 console page for S3.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode, urljoin

from airflow_mlops import settings
from airflow_mlops.core.errors import SpecError

PLUGIN_PREFIX = "/mlops"  # where the api-server mounts the provider plugin's app (plugins.mlops)
GO_ROUTE = "go"  # under the plugin's URL prefix
# Tables shown as a page (their first rows): batch scoring's output; other Parquet files (snapshots) are data.
TABLE_NAMES = ("predictions.parquet",)
# kind -> the ids its address is built from (all required); ``conn`` (an MLflow connection id) is optional
LINK_IDS = {"mlflow-run": ("experiment_id", "run_id"), "model-version": ("name", "version"), "file": ("key",)}
OPTIONAL_IDS = {"mlflow-run": ("conn",), "model-version": ("conn",), "file": ()}
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_CONN_ID = re.compile(r"[A-Za-z0-9_.-]{1,250}")


class LinkRefused(SpecError):
    """The ids of a ``go`` request are missing, malformed or name a path outside the storage root (HTTP 400)."""


class NoAddress(SpecError):
    """The deployment has no browser address for what the link names (no MLflow UI) (HTTP 404)."""


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


def is_table(key: str) -> bool:
    """Whether ``key`` names a table the plugin shows as a page (:data:`TABLE_NAMES`)."""
    return key.rpartition("/")[2] in TABLE_NAMES


def api_base_url() -> str:
    """``[api] base_url`` without its trailing ``/``: an address (``https://airflow.example.com/airflow``), a
    path (``/airflow``), or empty at the root of the api-server's own origin."""
    from airflow.sdk.configuration import conf

    return str(conf.get("api", "base_url", fallback="") or "").rstrip("/")


def view_url(kind: str, ids: Mapping[str, Any]) -> str:
    """What an extra link shows: the plugin's ``go`` route with ``ids``, resolved when clicked."""
    query = urlencode({name: str(value) for name, value in ids.items() if value not in (None, "")})
    return urljoin(api_base_url() + "/", f"{PLUGIN_PREFIX.strip('/')}/{GO_ROUTE}/{kind}?{query}")


def _ids(kind: str, query: Mapping[str, str]) -> dict[str, str]:
    if kind not in LINK_IDS:
        raise LinkRefused(f"Unknown link kind {kind!r}; expected one of {', '.join(LINK_IDS)}.")
    allowed = (*LINK_IDS[kind], *OPTIONAL_IDS[kind])
    unexpected = sorted(set(query) - set(allowed))
    missing = [name for name in LINK_IDS[kind] if not query.get(name)]
    if unexpected or missing:
        optional = ", ".join(OPTIONAL_IDS[kind]) or "nothing"
        raise LinkRefused(
            f"A {kind!r} link takes {', '.join(LINK_IDS[kind])}, and optionally {optional}; "
            f"missing: {', '.join(missing) or 'none'}; unexpected: {', '.join(unexpected) or 'none'}."
        )
    return {name: str(query[name]) for name in allowed if query.get(name)}


_SAFE_ID = "letters, digits, '_' or '-' (at most 64)"
_VERSION = re.compile(r"[0-9]{1,9}")


def _checked(name: str, value: str, pattern: re.Pattern[str], expected: str) -> str:
    if not pattern.fullmatch(value):
        raise LinkRefused(f"The {name} of a link must be {expected}. Got {value!r} instead.")
    return value


def _mlflow_target(kind: str, ids: dict[str, str]) -> str:
    from airflow_mlops.core.registry import validate_model_name

    conn_id = _checked("conn", ids["conn"], _CONN_ID, "an Airflow connection id") if "conn" in ids else None
    if kind == "mlflow-run":
        experiment_id = _checked("experiment_id", ids["experiment_id"], _ID, _SAFE_ID)
        return mlflow_run_url(experiment_id, _checked("run_id", ids["run_id"], _ID, _SAFE_ID), conn_id)
    try:
        name = validate_model_name(ids["name"])
    except SpecError as exc:
        raise LinkRefused(str(exc)) from exc
    version = _checked("version", ids["version"], _VERSION, "a version number")
    return model_version_url(quote(name, safe=""), version, conn_id)


def resolve(kind: str, query: Mapping[str, str], plugin_base: str) -> str:
    """The address a ``go`` request redirects to, with the deployment's settings of this moment.

    :param query: the request's ids (:data:`LINK_IDS`); each is checked, a storage key as a report path is.
    :param plugin_base: the path the plugin is mounted at: without ``[mlops] reports_url``, files open through
        its report route (``<plugin_base>/reports/<key>``), predictions through its table preview.
    :raises LinkRefused: an unknown kind, missing, unexpected or malformed ids, a key leaving the root.
    :raises NoAddress: no MLflow UI address is configured.
    """
    ids = _ids(kind, query)
    if kind == "file":
        from airflow_mlops.core.storage import validate_key

        try:
            key = validate_key(ids["key"], "storage key")
        except SpecError as exc:
            raise LinkRefused(str(exc)) from exc
        base = settings.reports_url() or f"{plugin_base}/{'tables' if is_table(key) else 'reports'}"
        return f"{base.rstrip('/')}/{quote(key)}"
    target = _mlflow_target(kind, ids)
    if not target:
        raise NoAddress("No MLflow UI address is configured: set [mlops] mlflow_ui_url or the connection's ui_url.")
    return target
