"""Webhook hook: the only place a webhook connection is read; posts one JSON document per call."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.sdk import BaseHook

DEFAULT_TIMEOUT = 10.0
# Extras we understand; anything else in the connection's extra is ignored, never forwarded.
ALLOWED_EXTRAS = ("endpoint", "timeout")


class WebhookHook(BaseHook):
    """Post JSON alerts to an HTTP(S) endpoint (Slack/Teams/Mattermost incoming webhooks, an alert
    manager, a chat bot).

    Connection type ``mlops_webhook``: ``host`` is the server or a full URL, ``schema`` the scheme
    (``https`` by default), ``port`` the port, ``password`` an optional bearer token sent in the
    ``Authorization`` header (never in the payload or the logs). Allowlisted extras: ``endpoint`` (the
    path, when ``host`` is not a full URL) and ``timeout`` (seconds, 10 by default).

    :param webhook_conn_id: connection id, ``mlops_webhook_default`` when omitted.
    """

    conn_name_attr = "webhook_conn_id"
    default_conn_name = "mlops_webhook_default"
    conn_type = "mlops_webhook"
    hook_name = "MLOps webhook"

    def __init__(self, webhook_conn_id: str | None = None) -> None:
        super().__init__()
        self.webhook_conn_id = webhook_conn_id or self.default_conn_name

    @classmethod
    def exists(cls, webhook_conn_id: str) -> bool:
        """Whether the connection is defined (alerts are set up); never raises for a missing one."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            cls.get_connection(webhook_conn_id)
        except AirflowNotFoundException:
            return False
        return True

    @cached_property
    def _settings(self) -> dict[str, Any]:
        conn = self.get_connection(self.webhook_conn_id)
        extra = {k: v for k, v in (conn.extra_dejson or {}).items() if k in ALLOWED_EXTRAS}
        host = (conn.host or "").strip()
        if not host:
            raise ValueError(f"The webhook connection {self.webhook_conn_id!r} has no host: set its URL in 'host'.")
        if "://" in host:
            url = host
        else:
            scheme = conn.schema or "https"
            url = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        endpoint = str(extra.get("endpoint") or "")
        if endpoint:
            url = url.rstrip("/") + "/" + endpoint.lstrip("/")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError(f"The webhook connection {self.webhook_conn_id!r} must be http(s). Got scheme of {url!r}.")
        if conn.password:
            self.mask_secret(conn.password)
        return {"url": url, "token": conn.password or None, "timeout": float(extra.get("timeout") or DEFAULT_TIMEOUT)}

    @staticmethod
    def mask_secret(secret: str) -> None:
        from airflow.sdk.log import mask_secret

        mask_secret(secret)

    @property
    def url(self) -> str:
        return str(self._settings["url"])

    def get_conn(self) -> str:
        """The endpoint URL (the hook holds no client: each post is one request)."""
        return self.url

    def post(self, payload: dict[str, Any]) -> int:
        """POST ``payload`` as JSON; return the HTTP status.

        :raises ConnectionError: the endpoint is unreachable or answered with an error status.
        """
        body = json.dumps(payload, default=str, sort_keys=True).encode("utf-8")
        headers = {"Content-Type": "application/json", "User-Agent": "airflow-mlops"}
        if self._settings["token"]:
            headers["Authorization"] = f"Bearer {self._settings['token']}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._settings["timeout"]) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            raise ConnectionError(f"The webhook {self._redacted} answered HTTP {exc.code}.") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(f"The webhook {self._redacted} is unreachable: {exc}") from None

    @property
    def _redacted(self) -> str:
        """The URL without its path and query, which often carry the webhook's secret."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}/..."

    def test_connection(self) -> tuple[bool, str]:
        try:
            status = self.post({"text": "airflow-mlops connection test", "test": True})
        except Exception as exc:  # test_connection reports, never raises
            return False, str(exc)
        return True, f"The webhook answered HTTP {status}."
