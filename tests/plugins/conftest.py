"""The plugin app as the api-server mounts it, behind a real SimpleAuthManager (all_admins off), with
tokens signed by that manager: an ``admin`` (may roll back) and a ``viewer`` (may only read)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core.storage import StorageRoot
from tests.core.registry.support import client_for
from tests.plugins.support import drift_state, retrained_model


@dataclass
class Served:
    http: Any  # a starlette TestClient on an app that mounts the plugin at /mlops
    root: StorageRoot
    client: Any  # the MLflow client the app reads
    tokens: dict[str, str]  # user name -> JWT

    def as_user(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@pytest.fixture(scope="module")
def airflow_db() -> None:
    """The session's Airflow metadata database (SQLite under the test AIRFLOW_HOME): token checks read its
    revoked-token table."""
    from airflow.utils.db import initdb

    initdb()


@pytest.fixture
def auth_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, airflow_db: None) -> Iterator[Any]:
    from airflow.api_fastapi import app as api_app

    monkeypatch.setenv(
        "AIRFLOW__CORE__AUTH_MANAGER", "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
    )
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin,viewer:viewer")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "False")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "passwords.json"))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
    saved = api_app._AuthManagerState.instance
    api_app._AuthManagerState.instance = None
    try:
        yield api_app.init_auth_manager()
    finally:
        api_app._AuthManagerState.instance = saved


@pytest.fixture
def served(tmp_path: Path, auth_manager: Any) -> Iterator[Served]:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_mlops.plugins import app as plugin_app

    root = StorageRoot(str(tmp_path / "storage"))
    client = client_for(tmp_path)
    retrained_model(client, root, tmp_path / "mlartifacts")
    drift_state(root)
    app = plugin_app.create_app()
    app.dependency_overrides[plugin_app.storage_root] = lambda: root
    app.dependency_overrides[plugin_app.mlflow_client] = lambda: client
    server = FastAPI()
    server.mount("/mlops", app)
    tokens = {
        name: auth_manager.generate_jwt(SimpleAuthManagerUser(username=name, role=name)) for name in ("admin", "viewer")
    }
    with TestClient(server, base_url="http://airflow.test", follow_redirects=False) as http:
        yield Served(http, root, client, tokens)
