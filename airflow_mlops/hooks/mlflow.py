"""MLflow hook: the only place an MLflow connection is read."""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_mlops import settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Extras we understand. Anything else in the connection's extra is ignored, never forwarded.
ALLOWED_EXTRAS = ("registry_uri", "ui_url", "path")
# Where ``mlflow ui`` serves the embedded store by default.
EMBEDDED_UI_URL = "http://127.0.0.1:5000"


class MlflowHook(BaseHook):
    """Talk to an MLflow tracking server and model registry.

    Connection type ``mlflow``: ``host`` is the server (``mlflow.example.com`` or a full
    ``https://...`` URL), ``schema`` the URL scheme (``http`` by default), ``port`` the port,
    ``password`` an optional bearer token. Allowlisted extras: ``registry_uri``, ``ui_url`` (the
    address people open in a browser, for extra links) and ``path`` (a URL prefix).

    When the connection does not exist the hook uses the embedded store from the ``[mlops]``
    settings: SQLite metadata and local artifacts under ``$AIRFLOW_HOME/mlops``.

    :param mlflow_conn_id: connection id; ``[mlops] mlflow_conn_id`` (``mlflow_default``) when omitted.
    """

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str | None = None) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id or settings.mlflow_conn_id()

    @cached_property
    def _settings(self) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            uri = settings.mlflow_tracking_uri()
            return {"tracking_uri": uri, "registry_uri": uri, "token": None, "ui_url": EMBEDDED_UI_URL}
        extra = conn.extra_dejson or {}
        allowed = {k: extra[k] for k in ALLOWED_EXTRAS if extra.get(k)}
        host = (conn.host or "").rstrip("/")
        if "://" in host:
            base = host
        else:
            scheme = conn.schema or "http"
            base = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        tracking_uri = base + ("/" + str(allowed["path"]).strip("/") if allowed.get("path") else "")
        return {
            "tracking_uri": tracking_uri,
            "registry_uri": allowed.get("registry_uri") or tracking_uri,
            "token": conn.password or None,
            "ui_url": allowed.get("ui_url") or tracking_uri,
        }

    @property
    def tracking_uri(self) -> str:
        return str(self._settings["tracking_uri"])

    @property
    def registry_uri(self) -> str:
        return str(self._settings["registry_uri"])

    @property
    def ui_url(self) -> str:
        """Browser address of the MLflow UI (for links): ``[mlops] mlflow_ui_url``, else the connection's
        ``ui_url`` extra, else its tracking URI; may differ from the tracking URI."""
        return settings.mlflow_ui_url() or str(self._settings["ui_url"] or "")

    @property
    def is_embedded(self) -> bool:
        return not self.tracking_uri.startswith(("http://", "https://", "databricks"))

    def _activate_token(self) -> None:
        from airflow_mlops.core.mlflow_auth import set_token

        set_token(self._settings["token"])

    def get_conn(self) -> MlflowClient:
        """An ``MlflowClient`` bound to this connection's tracking and registry URIs."""
        from mlflow import MlflowClient

        self._activate_token()
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.registry_uri)

    def activate(self) -> None:
        """Point MLflow's fluent API (``mlflow.start_run`` ...) at this connection, in this process."""
        import mlflow

        self._activate_token()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.registry_uri)

    def ensure_experiment(self, name: str) -> str:
        """Return the id of experiment ``name``, creating it when missing.

        In the embedded store new experiments get their artifact location under the
        ``[mlops] mlflow_artifact_root`` setting instead of MLflow's default ``./mlruns`` relative to
        whatever folder the worker happens to run in.
        """
        client = self.get_conn()
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return str(experiment.experiment_id)
        location = None
        if self.is_embedded:
            location = os.path.join(settings.mlflow_artifact_root(), name)
        from mlflow.exceptions import MlflowException

        try:
            return str(client.create_experiment(name, artifact_location=location))
        except MlflowException:
            # Created concurrently by another task: the name is unique, so read it back.
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return str(experiment.experiment_id)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return f"{self.ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}" if self.ui_url else ""

    def model_version_url(self, name: str, version: str | int) -> str:
        return f"{self.ui_url.rstrip('/')}/#/models/{name}/versions/{version}" if self.ui_url else ""

    def test_connection(self) -> tuple[bool, str]:
        try:
            client = self.get_conn()
            client.search_experiments(max_results=1)
        except Exception as exc:  # test_connection reports, never raises
            return False, f"MLflow at {self.tracking_uri} is not reachable: {exc}"
        return True, f"MLflow at {self.tracking_uri} answered."
