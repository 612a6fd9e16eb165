"""Webhook notifier: post a JSON alert to the URL of an ``mlops_webhook`` connection.

Use it where Airflow takes a notifier (``on_failure_callback=WebhookNotifier(...)`` on a task or DAG),
and pass it to the monitoring operators' ``notifiers``: they call it with the check's finding in the
context under ``mlops_alert`` whenever a check warns or alerts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from airflow.sdk import Context

log = logging.getLogger(__name__)
ALERT_CONTEXT_KEY = "mlops_alert"
MAX_DETAIL_CHARS = 20_000  # chat webhooks refuse large bodies; details beyond this are cut


def _task_identity(context: Context) -> dict[str, Any]:
    ti = context.get("ti") or context.get("task_instance")
    dag = context.get("dag")
    identity = {
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None),
        "task_id": getattr(ti, "task_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id"),
        "map_index": getattr(ti, "map_index", None),
        "try_number": getattr(ti, "try_number", None),
    }
    logical_date = context.get("logical_date")
    identity["logical_date"] = logical_date.isoformat() if hasattr(logical_date, "isoformat") else None
    return identity


def alert_payload(context: Context, message: str | None = None, severity: str | None = None) -> dict[str, Any]:
    """The JSON document posted for ``context``: the monitoring finding when there is one, else the
    task's failure (exception type and message), with where it happened. Holds no connection data."""
    import json

    finding = dict(context.get(ALERT_CONTEXT_KEY) or {})  # type: ignore[call-overload]
    error = context.get("exception")
    payload: dict[str, Any] = {
        "source": "airflow-mlops",
        "severity": severity or finding.get("severity") or ("alert" if error else "info"),
        "check": finding.get("check"),
        "text": message or finding.get("message") or (f"{type(error).__name__}: {error}" if error else "notification"),
        "sent_at": datetime.now(UTC).isoformat(),
        **_task_identity(context),
    }
    details = finding.get("details")
    if details is not None:
        text = json.dumps(details, default=str)
        payload["details"] = details if len(text) <= MAX_DETAIL_CHARS else {"truncated": text[:MAX_DETAIL_CHARS]}
    return payload


class WebhookNotifier(BaseNotifier):
    """Post a JSON alert to a webhook.

    The payload has ``source``, ``severity``, ``check``, ``text``, ``details``, ``sent_at`` and where it
    happened (``dag_id``, ``task_id``, ``run_id``, ``map_index``, ``try_number``, ``logical_date``).

    :param webhook_conn_id: the ``mlops_webhook`` connection (URL, optional bearer token). (templated)
    :param message: the text; the monitoring finding's message, or the failure, when omitted. (templated)
    :param severity: overrides the severity (``warn``, ``alert``, ...). (templated)
    :param raise_on_error: raise when the post fails (default: log it and go on, so that an alert
        endpoint that is down never fails the pipeline it reports on).
    :param optional: the connection may not exist: alerts are not set up, which is not an error. Nothing is
        logged per alert then (the finding is in its task's log); the reference DAGs say so once per run
        (:func:`log_alert_setup`). A connection that exists but fails is still an error.
    """

    template_fields: Sequence[str] = ("webhook_conn_id", "message", "severity")

    def __init__(
        self,
        *,
        webhook_conn_id: str = "mlops_webhook_default",
        message: str | None = None,
        severity: str | None = None,
        raise_on_error: bool = False,
        optional: bool = False,
    ) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id
        self.message = message
        self.severity = severity
        self.raise_on_error = raise_on_error
        self.optional = optional

    def notify(self, context: Context) -> None:
        from airflow.sdk.exceptions import AirflowNotFoundException

        from airflow_mlops.hooks.webhook import WebhookHook

        payload = alert_payload(context, self.message, self.severity)
        try:
            status = WebhookHook(self.webhook_conn_id).post(payload)
        except (ConnectionError, ValueError, AirflowNotFoundException) as exc:
            if self.raise_on_error:
                raise
            if self.optional and isinstance(exc, AirflowNotFoundException):
                self.log.debug(
                    "No webhook connection %r: alert not sent (alerts are not set up).", self.webhook_conn_id
                )
                return
            self.log.error("Webhook alert not delivered through connection %r: %s", self.webhook_conn_id, exc)
            return
        self.log.info(
            "Webhook alert (%s) delivered through %r: HTTP %s", payload["severity"], self.webhook_conn_id, status
        )


def log_alert_setup(conn_ids: Iterable[str]) -> list[str]:
    """Say once (one info line each) which alert connections do not exist, so that their checks' findings are
    only logged; the missing ids. The reference DAGs call it in their first task, once per run, and give
    their notifiers ``optional=True`` so that each finding does not log the same thing again as an error."""
    from airflow_mlops.hooks.webhook import WebhookHook

    missing = [conn_id for conn_id in dict.fromkeys(conn_ids) if not WebhookHook.exists(conn_id)]
    for conn_id in missing:
        log.info(
            "No alert connection %r: the checks' findings are logged in their tasks and not sent. Create an "
            "'mlops_webhook' connection of that id to receive them (docs/monitoring.md).",
            conn_id,
        )
    return missing
