"""docker-compose.yaml checked statically: no Docker engine runs here, so we prove that what the file
says is consistent with the package (connection ids and types, settings, services it refers to)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_mlops.get_provider_info import CONFIG
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.hooks.storage import StorageHook

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "triggerer", "celery worker"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "docker-compose.yaml").read_text()))


def _airflow_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("image") == "airflow-mlops:local"}


def _host(url: str) -> str:
    match = re.match(r"^[a-z0-9+]+://(?:[^@/]*@)?([^:/]+)", url)
    assert match, url
    return match.group(1)


def test_every_airflow_component_is_there(compose: dict[str, Any]) -> None:
    commands = {s.get("command") for s in _airflow_services(compose).values() if isinstance(s.get("command"), str)}
    assert commands >= AIRFLOW_COMMANDS
    assert {"postgres", "redis", "mlflow", "minio"} <= set(compose["services"])


def test_references_between_services_resolve(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    env = next(iter(_airflow_services(compose).values()))["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__BROKER_URL",
        "AIRFLOW__CELERY__RESULT_BACKEND",
    ):
        assert _host(env[key]) in services, key
    assert _host(env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]) in services


def test_airflow_services_share_settings_and_mounts(compose: dict[str, Any]) -> None:
    services = _airflow_services(compose)
    assert len(services) >= 6
    environments = [s["environment"] for s in services.values()]
    for env in environments:
        mlops = {k: v for k, v in env.items() if k.startswith("AIRFLOW__MLOPS__")}
        assert mlops == {k: v for k, v in environments[0].items() if k.startswith("AIRFLOW__MLOPS__")}
    for service in services.values():
        assert "./dags:/opt/airflow/dags" in service["volumes"]
        assert "./include:/opt/airflow/include" in service["volumes"]


def test_mlops_settings_are_declared_options(compose: dict[str, Any]) -> None:
    env = next(iter(_airflow_services(compose).values()))["environment"]
    options = {k.removeprefix("AIRFLOW__MLOPS__").lower() for k in env if k.startswith("AIRFLOW__MLOPS__")}
    assert options and options <= set(CONFIG["mlops"]["options"])


def test_connections_match_the_hooks(compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    services = compose["services"]
    env = next(iter(_airflow_services(compose).values()))["environment"]
    for key, value in env.items():
        if key.startswith("AIRFLOW_CONN_"):
            monkeypatch.setenv(key, value)
    for key, value in env.items():
        if key.startswith("AIRFLOW__MLOPS__"):
            monkeypatch.setenv(key, value)

    storage_conn = json.loads(env[f"AIRFLOW_CONN_{env['AIRFLOW__MLOPS__STORAGE_CONN_ID'].upper()}"])
    assert storage_conn["conn_type"] == StorageHook.conn_type
    assert _host(storage_conn["extra"]["endpoint_url"]) in services
    bucket = env["AIRFLOW__MLOPS__STORAGE_ROOT"].removeprefix("s3://").split("/")[0]
    assert f"local/{bucket}" in services["minio-init"]["entrypoint"], "the storage bucket is never created"

    mlflow_conn = json.loads(env[f"AIRFLOW_CONN_{env['AIRFLOW__MLOPS__MLFLOW_CONN_ID'].upper()}"])
    assert mlflow_conn["conn_type"] == MlflowHook.conn_type
    hook = MlflowHook()
    assert hook.tracking_uri == "http://mlflow:5000" and not hook.is_embedded
    assert "--port 5000" in services["mlflow"]["command"]
    assert hook.ui_url.startswith("http://127.0.0.1:")


def test_mlflow_server_uses_postgres_and_s3_artifacts(compose: dict[str, Any]) -> None:
    mlflow = compose["services"]["mlflow"]
    command = mlflow["command"]
    backend = re.search(r"--backend-store-uri (\S+)", command)
    assert backend and _host(backend.group(1)) == "postgres"
    assert "--artifacts-destination s3://mlflow-artifacts" in command
    assert "local/mlflow-artifacts" in compose["services"]["minio-init"]["entrypoint"]
    assert _host(mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"]) in compose["services"]
    init_sql = (REPO / "include/docker/postgres-init.sql").read_text()
    assert "CREATE DATABASE mlflow" in init_sql


def test_published_ports_are_loopback_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"


def test_image_pins_the_locked_airflow_version(compose: dict[str, Any]) -> None:
    dockerfile = compose["x-airflow-image"]["build"]["dockerfile_inline"]
    lock = (REPO / "uv.lock").read_text()
    locked = re.search(r'name = "apache-airflow"\nversion = "([^"]+)"', lock)
    assert locked
    assert f"apache/airflow:{locked.group(1)}-python3.11" in dockerfile
    assert f'"apache-airflow=={locked.group(1)}"' in dockerfile
    assert "/opt/airflow-mlops" in dockerfile
