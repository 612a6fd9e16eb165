"""Extra link from a training task to its MLflow run."""

from __future__ import annotations

from typing import Any, ClassVar

from airflow_mlops.links.base import IdsLink, mlflow_conn_id

MLFLOW_RUN_URL_KEY = "mlflow_run_url"


class MlflowTrainingRunLink(IdsLink):
    """ "MLflow run" button on a training task: the run's page in the MLflow UI.

    The operator stores ``{"experiment_id", "run_id"}`` under ``mlflow_run_url`` as soon as the run
    opens, so a failed run is one click away too.
    """

    name = "MLflow run"
    key: ClassVar[str] = MLFLOW_RUN_URL_KEY

    def url(self, operator: Any, payload: dict[str, Any]) -> str:
        from airflow_mlops.links.urls import view_url

        run_id = payload.get("run_id")
        if not run_id:
            return ""
        ids = {"experiment_id": payload.get("experiment_id") or "0", "run_id": run_id, "conn": mlflow_conn_id(operator)}
        return view_url("mlflow-run", ids)
