"""Extra link from a validation task to its HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class ValidationReportLink(BaseOperatorLink):
    """The "Validation report" button: the address of the HTML page the task wrote.

    The operator stores the address in XCom under :attr:`key` (:meth:`persist`); when the task ends,
    Airflow 3 calls :meth:`get_link` in the worker and keeps the answer for the UI.
    """

    name = "Validation report"
    key = "validation_report_url"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        url: Any = XCom.get_value(ti_key=ti_key, key=self.key)
        return url if isinstance(url, str) else ""

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        """Store the report address for this task instance."""
        context["ti"].xcom_push(key=cls.key, value=url)
