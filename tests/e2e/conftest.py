"""Fixtures of the end-to-end tests: one Airflow deployment per test module, stopped and dropped after it.

A module sets ``AIRFLOW_DEPLOYMENT`` (a :class:`Deployment`) to choose its DAGs folder, executor and
extra components; the ``airflow`` fixture reads it. The metadata database is a private database in
the local PostgreSQL; MLflow is a tracking server of the module's own (a production deployment's
shape, and no model names shared with other tests); the storage root is a local folder.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import services
from tests.support.airflow_services import AirflowServices, airflow_services

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@dataclass(frozen=True)
class Deployment:
    """What a test module needs from its Airflow deployment."""

    dags_folder: Path
    executor: str = "LocalExecutor"
    components: tuple[str, ...] = ("scheduler", "dag-processor", "triggerer")
    extra_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MlopsStack:
    """The provider's deployment around Airflow: storage root and MLflow server."""

    workdir: Path
    storage_root: Path
    mlflow: services.MlflowServer
    reports_url: str  # a web server on the storage root, as a deployment puts in front of its reports

    def env(self) -> dict[str, str]:
        host, _, port = self.mlflow.url.removeprefix("http://").partition(":")
        connection = {"conn_type": "mlflow", "host": host, "port": int(port), "schema": "http"}
        return {
            "AIRFLOW__MLOPS__STORAGE_ROOT": str(self.storage_root),
            "AIRFLOW_CONN_MLFLOW_DEFAULT": json.dumps(connection),
            "AIRFLOW__MLOPS__REPORTS_URL": self.reports_url,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }


@pytest.fixture(scope="module")
def mlops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlopsStack]:
    workdir = tmp_path_factory.mktemp("mlops-stack")
    storage = workdir / "storage"
    storage.mkdir()
    with services.mlflow_server(workdir) as mlflow, _static_files(storage) as reports_url:
        yield MlopsStack(workdir=workdir, storage_root=storage, mlflow=mlflow, reports_url=reports_url)


@contextlib.contextmanager
def _static_files(folder: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving ``folder``; its base URL."""
    import functools
    import http.server
    import threading

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def airflow_database(postgres_server: services.PostgresServer) -> Iterator[str]:
    """A private metadata database, dropped (connections and all) after the module."""
    with postgres_server.database() as url:
        yield url


@pytest.fixture(scope="module")
def airflow_extra_env() -> dict[str, str]:
    """Extra environment of every component; a module overrides this to hand its DAGs their inputs."""
    return {}


@pytest.fixture(scope="module")
def airflow(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    airflow_database: str,
    mlops_stack: MlopsStack,
    airflow_extra_env: dict[str, str],
) -> Iterator[AirflowServices]:
    """Airflow 3 services (api-server, scheduler, dag-processor, triggerer, ...) for this module."""
    deployment: Deployment = request.module.AIRFLOW_DEPLOYMENT
    home = tmp_path_factory.mktemp("airflow-home")
    extra = {**mlops_stack.env(), **deployment.extra_env, **airflow_extra_env}
    with airflow_services(
        home, database_url=airflow_database, dags_folder=deployment.dags_folder, executor=deployment.executor,
        components=deployment.components, extra_env=extra,
    ) as running:  # fmt: skip
        yield running


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests keep what a person may want to look at afterwards (screenshots); gitignored."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
