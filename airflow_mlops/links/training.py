"""Extra link from a training task to its MLflow run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.models.taskinstancekey import TaskInstanceKey

MLFLOW_RUN_URL_KEY = "mlflow_run_url"


class MlflowTrainingRunLink(BaseOperatorLink):
    """ "MLflow run" button on a training task: the run's page in the MLflow UI.

    The operator pushes the URL to XCom under ``mlflow_run_url`` once the run exists; the link reads
    it back, so it works for every try and needs no connection lookup when the page is opened.
    """

    name = "MLflow run"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url = XCom.get_value(ti_key=ti_key, key=MLFLOW_RUN_URL_KEY)
        return str(url) if url else ""
