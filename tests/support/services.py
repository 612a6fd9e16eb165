"""Real services for tests and benchmarks, all on 127.0.0.1, each started and stopped by its user.

- PostgreSQL: the machine's server on 127.0.0.1:5432 when it accepts us; otherwise a private server
  started from the local ``initdb``/``postgres`` binaries in a temporary folder; otherwise ``None``
  (the caller skips with that stated reason).
- S3: ``moto_server`` (moto's S3 API) on a free loopback port.
- MLflow: ``mlflow server`` with a SQLite backend on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from airflow_mlops.cli.local_airflow import LOOPBACK, free_port, wait_for_port

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def _process(cmd: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_for_port(port, proc)
            yield
        except BaseException:
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- S3 (moto) -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str = "testing"
    secret_key: str = "testing"
    region: str = "us-east-1"

    def client(self):  # type: ignore[no-untyped-def]
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )

    def airflow_conn_uri(self) -> str:
        """An ``aws`` connection (JSON form) pointing at this server."""
        import json

        return json.dumps(
            {
                "conn_type": "aws",
                "login": self.access_key,
                "password": self.secret_key,
                "extra": {"endpoint_url": self.endpoint_url, "region_name": self.region},
            }
        )


@contextlib.contextmanager
def moto_s3(workdir: Path) -> Iterator[S3Server]:
    port = free_port()
    cmd = [str(BIN / "moto_server"), "-H", LOOPBACK, "-p", str(port)]
    with _process(cmd, port, workdir / "moto.log"):
        yield S3Server(endpoint_url=f"http://{LOOPBACK}:{port}")


# -- MLflow tracking server ------------------------------------------------------------------------
@dataclass(frozen=True)
class MlflowServer:
    url: str
    backend_uri: str
    artifact_root: str


@contextlib.contextmanager
def mlflow_server(workdir: Path) -> Iterator[MlflowServer]:
    port = free_port()
    backend = f"sqlite:///{workdir / 'mlflow.db'}"
    artifacts = str(workdir / "mlartifacts")
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    cmd = [
        str(BIN / "mlflow"), "server", "--host", LOOPBACK, "--port", str(port), "--workers", "1",
        "--backend-store-uri", backend, "--artifacts-destination", artifacts, "--serve-artifacts",
    ]  # fmt: skip
    with _process(cmd, port, workdir / "mlflow.log", env=env):
        yield MlflowServer(url=f"http://{LOOPBACK}:{port}", backend_uri=backend, artifact_root=artifacts)


# -- PostgreSQL ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        return f"{driver}://{self.user}@{self.host}:{self.port}/{database}"

    @contextlib.contextmanager
    def database(self) -> Iterator[str]:
        """Create a fresh database, yield its SQLAlchemy URL, drop it afterwards."""
        import psycopg2

        name = f"mlops_test_{uuid.uuid4().hex[:12]}"
        admin = psycopg2.connect(host=self.host, port=self.port, user=self.user, dbname="postgres")
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
            yield self.url(name)
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


def _accepts(host: str, port: int, user: str) -> bool:
    try:
        import psycopg2

        psycopg2.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=3).close()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer | None]:
    """The machine's PostgreSQL when it lets us in, else a private one, else None."""
    for user in (os.environ.get("PGUSER") or "postgres", "root"):
        if _accepts(LOOPBACK, 5432, user):
            yield PostgresServer(LOOPBACK, 5432, user)
            return
    initdb, server = shutil.which("initdb"), shutil.which("postgres")
    if not (initdb and server) or os.geteuid() == 0:
        # PostgreSQL refuses to run as root; without a reachable server we have nothing to offer.
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="mlops-pg-") as tmp:
        data = Path(tmp) / "data"
        user = "postgres"
        subprocess.run([initdb, "-D", str(data), "-U", user, "-A", "trust"], check=True, capture_output=True)
        port = free_port()
        cmd = [server, "-D", str(data), "-h", LOOPBACK, "-p", str(port), "-k", tmp]
        with _process(cmd, port, Path(tmp) / "postgres.log"):
            yield PostgresServer(LOOPBACK, port, user)
