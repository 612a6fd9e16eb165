from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from airflow_mlops.hooks.mlflow import MlflowHook


def test_embedded_store_when_no_connection(mlops_env: Path) -> None:
    hook = MlflowHook()
    assert hook.tracking_uri == f"sqlite:///{mlops_env / 'mlflow.db'}"
    assert hook.is_embedded
    experiment_id = hook.ensure_experiment("demo")
    assert hook.ensure_experiment("demo") == experiment_id
    location = hook.get_conn().get_experiment(experiment_id).artifact_location
    assert location.endswith(str(mlops_env / "mlartifacts" / "demo"))
    assert hook.test_connection()[0] is True


def test_connection_fields_and_allowlisted_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {
        "conn_type": "mlflow", "host": "mlflow.internal", "schema": "https", "port": 8443,
        "password": "s3cr3t-token",
        "extra": {"ui_url": "https://mlflow.example.com", "AWS_SECRET_ACCESS_KEY": "leak-me"},
    }  # fmt: skip
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_PROD", json.dumps(conn))
    hook = MlflowHook("mlflow_prod")
    assert hook.tracking_uri == "https://mlflow.internal:8443"
    assert hook.registry_uri == hook.tracking_uri
    assert hook.ui_url == "https://mlflow.example.com"
    assert "leak-me" not in json.dumps(hook._settings)
    assert hook.run_url("1", "abc") == "https://mlflow.example.com/#/experiments/1/runs/abc"


def test_against_a_real_tracking_server(mlflow_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}))
    hook = MlflowHook()
    assert hook.tracking_uri == mlflow_server.url and not hook.is_embedded
    assert hook.test_connection() == (True, f"MLflow at {mlflow_server.url} answered.")
    experiment_id = hook.ensure_experiment("hook-test")
    assert hook.get_conn().get_experiment_by_name("hook-test").experiment_id == experiment_id


class _Recorder(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        body = b'{"experiments": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET  # noqa: N815

    def log_message(self, *args: object) -> None:
        pass


def test_token_is_sent_as_header_and_never_put_in_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        conn = {"conn_type": "mlflow", "host": f"http://127.0.0.1:{server.server_port}", "password": "tok-123456"}
        monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_AUTH", json.dumps(conn))
        ok, message = MlflowHook("mlflow_auth").test_connection()
        assert ok, message
    finally:
        server.shutdown()
        from airflow_mlops.core.mlflow_auth import set_token

        set_token(None)
    assert _Recorder.seen and _Recorder.seen[-1].get("Authorization") == "Bearer tok-123456"
    outside_connections = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    assert "tok-123456" not in json.dumps(outside_connections)


def test_unreachable_server_reports_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.services import free_port

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    conn = {"conn_type": "mlflow", "host": f"http://127.0.0.1:{free_port()}"}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DOWN", json.dumps(conn))
    ok, message = MlflowHook("mlflow_down").test_connection()
    assert ok is False and "not reachable" in message
