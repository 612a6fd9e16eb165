"""Test-wide setup: an isolated Airflow home before anything imports airflow, and real services."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_SESSION_HOME = Path(tempfile.mkdtemp(prefix="mlops-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_SESSION_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "dags")
for key in [k for k in os.environ if k.startswith(("AIRFLOW_CONN_", "AIRFLOW__MLOPS__", "MLFLOW_"))]:
    del os.environ[key]

from tests.support import services  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _forget_mlflow_globals() -> Iterator[None]:
    """A task process activates MLflow once (``MlflowHook.activate``) and exits; tests share one process,
    so the URIs one test activated must not become the next test's defaults. MLflow keeps them twice:
    in module globals, and in ``MLFLOW_TRACKING_URI`` / ``MLFLOW_REGISTRY_URI`` for subprocesses, which
    ``set_*_uri(None)`` leaves behind."""
    saved = {key: os.environ.get(key) for key in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    yield
    import sys

    if "mlflow" in sys.modules:
        import mlflow

        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None restores MLflow's own resolution
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture
def mlops_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the [mlops] settings at a fresh embedded deployment under tmp_path."""
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    return tmp_path


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    """One embedded MLflow store for the module (creating one costs seconds): its client and the id of
    its ``flights`` experiment; tests use their own model names."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    base = tmp_path_factory.mktemp("registry")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{base / 'mlflow.db'}")
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(base / "mlartifacts"))
        hook = MlflowHook()
        yield hook.get_conn(), hook.ensure_experiment("flights")


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.S3Server]:
    with services.moto_s3(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture
def s3_bucket(s3_server: services.S3Server) -> str:
    """A fresh, empty bucket on the moto S3 server."""
    import uuid

    name = f"mlops-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[services.MlflowServer]:
    with services.mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[services.PostgresServer]:
    with services.postgres() as server:
        if server is None:
            pytest.skip(
                "no PostgreSQL: nothing accepts connections on 127.0.0.1:5432 and no private server can be "
                "started (initdb/postgres binaries missing, or running as root)"
            )
        yield server


@pytest.fixture
def postgres_url(postgres_server: services.PostgresServer) -> Iterator[str]:
    """SQLAlchemy URL of a fresh database, dropped after the test."""
    with postgres_server.database() as url:
        yield url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Files with end-to-end tests (marked ``slow``) run first, the real-Airflow ones first of all.

    ``scripts/test.sh`` runs the suite on two pytest-xdist workers, one test file per unit of work: a
    file that starts Airflow's scheduler takes minutes, and started first it runs beside the quick files
    instead of after them. The sort is stable, so tests keep their order inside a file.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}

    def weight(item: pytest.Item) -> tuple[bool, bool]:
        real_airflow = item.path.parent.name in {"e2e", "reliability"}
        return item.path not in slow_files, not real_airflow

    items.sort(key=weight)
