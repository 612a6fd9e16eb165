"""Extra links to the MLflow UI for registry operators."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import Context
    from airflow.sdk.types import TaskInstanceKey


class MlflowModelVersionLink(BaseOperatorLink):
    """Opens the model version a task registered, promoted or waited for in the MLflow UI.

    The operator computes the address (it knows the connection's UI URL) and stores it in XCom under
    :attr:`key`; the web server only reads it back, so rendering a link never needs the connection.
    """

    name: ClassVar[str] = "MLflow model version"
    key: ClassVar[str] = "mlflow_model_version_url"

    def get_link(self, operator: Any, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value = XCom.get_value(key=self.key, ti_key=ti_key)
        return value if isinstance(value, str) else ""

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        """Store the address for the UI; nothing is stored when the UI URL is unknown."""
        if url:
            context["ti"].xcom_push(key=cls.key, value=url)
