"""Extra link to the MLflow UI for registry operators."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_mlops.links.base import IdsLink, mlflow_conn_id


class MlflowModelVersionLink(IdsLink):
    """Opens the model version a task registered, promoted or waited for in the MLflow UI.

    The operator stores ``{"name", "version"}`` under :attr:`key`.
    """

    name: ClassVar[str] = "MLflow model version"
    key: ClassVar[str] = "mlflow_model_version_url"

    def url(self, operator: Any, payload: dict[str, Any]) -> str:
        from airflow_mlops.links.urls import view_url

        if not payload.get("name") or payload.get("version") in (None, ""):
            return ""
        ids = {"name": payload["name"], "version": payload["version"], "conn": mlflow_conn_id(operator)}
        return view_url("model-version", ids)
