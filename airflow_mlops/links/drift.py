"""Extra link from a drift check task to its HTML report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


def report_url(uri: str, root_uri: str, base_url: str | None = None) -> str:
    """A browser address for a report stored at ``uri`` under the storage root ``root_uri``.

    With ``base_url`` (a web server or bucket website that serves the storage root) the report's path
    relative to the root is appended to it; otherwise an S3 report opens in the AWS console and a local
    one as a ``file://`` URL.
    """
    if base_url:
        relative = uri[len(root_uri) :].lstrip("/") if uri.startswith(root_uri) else uri.rpartition("/")[2]
        return f"{base_url.rstrip('/')}/{quote(relative)}"
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"
    return "file://" + quote(uri if uri.startswith("/") else "/" + uri)


class DriftReportLink(BaseOperatorLink):
    """ "Drift report" button on a drift check task: opens the HTML report the check wrote."""

    name = "Drift report"
    key: ClassVar[str] = "mlops_drift_report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
        return str(value.get("url") or "") if isinstance(value, dict) else ""

    @classmethod
    def persist(cls, context: Context, url: str) -> None:
        """Record the report's address for this task instance (read back by :meth:`get_link`)."""
        context["ti"].xcom_push(key=cls.key, value={"url": url})
