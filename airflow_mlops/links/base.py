"""What every extra link of the provider shares: XCom holds ids and storage keys, the address is resolved
when the link is clicked.

An operator calls :meth:`IdsLink.persist` with ids (an MLflow run, a model version) or a storage key (a
report's path under the storage root). Airflow 3 calls ``get_link`` in the worker when the task ends and
keeps its answer for the UI, so :meth:`IdsLink.get_link` answers with an address that holds those ids only:
the provider plugin's ``go`` route on the api-server (``<[api] base_url>/mlops/go/<kind>?<ids>``, see
:func:`airflow_mlops.links.urls.view_url`). When someone clicks it, the route builds the real address with
the deployment's settings of that moment (``[mlops] mlflow_ui_url``, ``[mlops] reports_url``, the MLflow
connection) and redirects there: moving the MLflow UI or the reports server is a settings change, and every
link of every earlier run follows it.

A link that names what the deployment's settings cannot resolve later (a file outside the storage root,
or under an operator's own ``storage_root`` or ``report_base_url``) keeps the address built when the task
ended. Payloads written before ids were stored (a URL string, or ``{"url": ...}``) are returned as they are.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey


class IdsLink(BaseOperatorLink):
    """An extra link whose XCom payload (under :attr:`key`) is a dict of ids, never an address."""

    key: ClassVar[str]

    @classmethod
    def persist(cls, context: Context, **ids: Any) -> None:
        """Record this task instance's ids; ``None`` values are dropped, and nothing is stored without any."""
        payload = {name: value for name, value in ids.items() if value not in (None, "")}
        if payload:
            context["ti"].xcom_push(key=cls.key, value=payload)

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        from airflow.sdk.execution_time.xcom import XCom

        value: Any = XCom.get_value(key=self.key, ti_key=ti_key)
        if isinstance(value, str):  # an address stored by an earlier version
            return value
        if not isinstance(value, dict):
            return ""
        if "url" in value:  # likewise, as {"url": ...}
            return str(value["url"] or "")
        return self.url(operator, value)

    @abstractmethod
    def url(self, operator: BaseOperator, payload: dict[str, Any]) -> str:
        """The address the UI shows for ``payload`` (what :meth:`persist` stored): the plugin's ``go`` route
        with its ids (:func:`~airflow_mlops.links.urls.view_url`), or ``""`` when there is none."""


class StorageLink(IdsLink):
    """A link to a file under the storage root, stored as its key (path relative to the root)."""

    @classmethod
    def persist_uri(cls, context: Context, uri: str | None, root_uri: str) -> None:
        from airflow_mlops.links.urls import storage_key

        if uri:
            cls.persist(context, **storage_key(uri, root_uri))

    def url(self, operator: BaseOperator, payload: dict[str, Any]) -> str:
        from airflow_mlops import settings
        from airflow_mlops.links.urls import storage_url, view_url

        own_root = getattr(operator, "storage_root", None)
        own_address = getattr(operator, "report_base_url", None)
        if payload.get("key") and not own_address and (not own_root or own_root == settings.storage_root()):
            return view_url("file", {"key": payload["key"]})
        return storage_url(payload, base_url=own_address, root_uri=own_root)


def mlflow_conn_id(operator: Any) -> str | None:
    """The operator's own MLflow connection id, when it has one."""
    value = getattr(operator, "mlflow_conn_id", None)
    return value if isinstance(value, str) and value else None
