"""WebhookNotifier and WebhookHook against a real HTTP server on 127.0.0.1 started by the test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.hooks.webhook import WebhookHook
from airflow_mlops.notifiers.webhook import ALERT_CONTEXT_KEY, WebhookNotifier
from tests.support.imports import heavy_imports

TOKEN = "s3cr3t-token-value"


class Receiver:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    server = Receiver()
    conn = {"conn_type": "mlops_webhook", "host": "127.0.0.1", "schema": "http", "port": server.port,
            "password": TOKEN, "extra": {"endpoint": "/hooks/alerts", "headers": {"X-Leak": "no"}}}  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_ALERTS", json.dumps(conn))
    yield server
    server.close()


def task_context(**extra: Any) -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="batch_serving", task_id="check_staleness", run_id="scheduled__2013-06-01",
                         map_index=-1, try_number=1)  # fmt: skip
    return {"ti": ti, "run_id": ti.run_id, **extra}


def test_posts_the_finding_as_json_with_the_token_only_in_the_header(receiver: Receiver) -> None:
    finding = {"check": "staleness", "severity": "alert", "message": "Stale model: 40 days", "details": {"age": 960}}
    WebhookNotifier(webhook_conn_id="alerts")(task_context(**{ALERT_CONTEXT_KEY: finding}))
    (request,) = receiver.requests
    assert request["path"] == "/hooks/alerts"
    assert request["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert "X-Leak" not in request["headers"]  # extras are allowlisted, never forwarded
    payload = json.loads(request["body"])
    assert payload["severity"] == "alert" and payload["check"] == "staleness"
    assert payload["text"] == "Stale model: 40 days" and payload["details"] == {"age": 960}
    assert (payload["dag_id"], payload["task_id"], payload["run_id"]) == (
        "batch_serving", "check_staleness", "scheduled__2013-06-01",
    )  # fmt: skip
    assert TOKEN not in request["body"].decode()


def test_as_a_failure_callback_it_reports_the_exception_and_renders_its_message(receiver: Receiver) -> None:
    notifier = WebhookNotifier(webhook_conn_id="alerts", message="{{ ti.task_id }} failed")
    notifier(task_context(exception=ValueError("boom")))
    payload = json.loads(receiver.requests[0]["body"])
    assert payload["text"] == "check_staleness failed" and payload["severity"] == "alert"


def test_a_failed_delivery_is_logged_not_raised_unless_asked(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver.status = 500
    WebhookNotifier(webhook_conn_id="alerts")(task_context())
    logged = "".join(capsys.readouterr())  # Airflow's structured log goes to stdout
    assert "HTTP 500" in logged and TOKEN not in logged and "/hooks/alerts" not in logged
    with pytest.raises(ConnectionError, match="HTTP 500"):
        WebhookNotifier(webhook_conn_id="alerts", raise_on_error=True)(task_context())


def test_a_missing_connection_is_logged_unless_asked_to_raise(capsys: pytest.CaptureFixture[str]) -> None:
    from airflow.sdk.exceptions import AirflowNotFoundException

    WebhookNotifier(webhook_conn_id="nowhere")(task_context())
    assert "nowhere" in "".join(capsys.readouterr())
    with pytest.raises(AirflowNotFoundException):
        WebhookNotifier(webhook_conn_id="nowhere", raise_on_error=True)(task_context())


def test_an_optional_missing_connection_logs_no_error_per_alert(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alerts not set up is not an error: the reference DAGs' notifiers stay quiet per finding, and a
    connection that exists but fails is still reported."""
    capsys.readouterr()
    for _ in range(3):
        WebhookNotifier(webhook_conn_id="nowhere", optional=True)(task_context())
    logged = "".join(capsys.readouterr())
    assert "nowhere" not in logged and "not delivered" not in logged
    receiver.status = 500
    WebhookNotifier(webhook_conn_id="alerts", optional=True)(task_context())
    assert "not delivered" in "".join(capsys.readouterr())


def test_the_alert_setup_is_said_once_per_missing_connection(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from airflow_mlops.notifiers.webhook import log_alert_setup

    with caplog.at_level(logging.INFO, logger="airflow_mlops.notifiers.webhook"):
        missing = log_alert_setup(["nowhere", "alerts", "nowhere"])
    assert missing == ["nowhere"]
    lines = [r for r in caplog.records if r.name == "airflow_mlops.notifiers.webhook"]
    assert [(r.levelname, "'nowhere'" in r.getMessage()) for r in lines] == [("INFO", True)]


def test_unreachable_endpoint_and_test_connection(receiver: Receiver) -> None:
    hook = WebhookHook("alerts")
    assert hook.test_connection() == (True, "The webhook answered HTTP 200.")
    receiver.close()
    ok, message = WebhookHook("alerts").test_connection()
    assert not ok and "unreachable" in message


def test_a_connection_without_host_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY", json.dumps({"conn_type": "mlops_webhook"}))
    with pytest.raises(ValueError, match="'empty' has no host"):
        WebhookHook("empty").post({})


def test_the_notifier_module_imports_no_heavy_library() -> None:
    assert heavy_imports(["airflow_mlops.notifiers.webhook", "airflow_mlops.hooks.webhook"]) == {}
