"""A local Airflow 3 deployment as subprocesses: api-server, scheduler, dag-processor, triggerer.

Everything runs on 127.0.0.1 in one ``AIRFLOW_HOME``; each component writes its output to
``<home>/logs/<component>.log``, and :meth:`AirflowServices.log_tails` gathers the ends of those files
for error messages, because a failure in a distributed run is usually explained by another process's
log. The main job (``scripts/demo.py``) runs the reference DAGs on it with the embedded SQLite database;
the end-to-end tests run it on a private PostgreSQL database.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops.cli.airflow_api import ApiClient, ServiceError

LOOPBACK = "127.0.0.1"
BIN = Path(sys.executable).parent
USERNAME = "admin"
# The caller's own Airflow/MLflow settings must not leak into the services: they get exactly ``extra``.
_SCRUBBED_PREFIXES = ("AIRFLOW_", "AIRFLOW__", "MLFLOW_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((LOOPBACK, port)) != 0


def wait_for_port(port: int, process: subprocess.Popen[bytes] | None = None, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listened on {LOOPBACK}:{port} within {timeout:.0f} s")


@dataclass
class AirflowServices:
    """A running set of Airflow components; see :func:`airflow_services`."""

    home: Path
    env: dict[str, str]
    api_url: str
    password: str
    # The components' working directory: the project folder, where relative paths such as a feature
    # join's include/ source resolve (the home when None).
    workdir: Path | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    _client: ApiClient | None = None
    _stopped: bool = False

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Start ``airflow <args>`` as component ``name`` in its own process group."""
        out = open(self.log_path(name), "ab")  # noqa: SIM115 - owned by the child for its whole life
        proc = subprocess.Popen(
            [str(BIN / "airflow"), *args], stdout=out, stderr=subprocess.STDOUT, env=self.env,
            cwd=self.workdir or self.home,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self.processes[name] = proc
        return proc

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` CLI command in this deployment; its output, or a failure with the logs."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.env,
            cwd=self.workdir or self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            output = f"{done.stdout}\n{done.stderr}"[-6000:]
            raise ServiceError(f"airflow {' '.join(args)} exited {done.returncode}:\n{output}")
        return done.stdout

    def check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise ServiceError(f"Airflow components exited: {dead}\n{self.log_tails()}")

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, for assertion messages."""
        parts = []
        for name in sorted(self.processes):
            path = self.log_path(name)
            text = path.read_text(errors="replace").splitlines()[-lines:] if path.exists() else ["(no log)"]
            state = self.processes[name].poll()
            parts.append(f"----- {name} ({'running' if state is None else f'exited {state}'}): {path}")
            parts.extend(text)
        return "\n".join(parts)

    def log_text(self, name: str) -> str:
        path = self.log_path(name)
        return path.read_text(errors="replace") if path.exists() else ""

    @property
    def api(self) -> ApiClient:
        if self._client is None:
            self._client = ApiClient.login(self.api_url, USERNAME, self.password, self.log_tails, self.check_alive)
        return self._client

    def stop(self) -> None:
        """Stop every component: SIGTERM to each process group, SIGKILL to what is left after a grace period.

        Idempotent: a second call does not signal process ids that may have been reused since.
        """
        if self._stopped:
            return
        self._stopped = True
        for proc in self.processes.values():
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for proc in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in self.processes.values():
            # Task supervisors and executor workers share the group; none may outlive the deployment.
            _signal_group(proc, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def service_environment(
    home: Path,
    *,
    database_url: str,
    api_port: int,
    dags_folder: Path,
    executor: str,
    passwords_file: Path,
    extra: Mapping[str, str] | None = None,
    pythonpath: Sequence[str] = (),
) -> dict[str, str]:
    """The environment every component shares: one home, one database, one API, one JWT secret.

    :param pythonpath: folders put before the caller's ``PYTHONPATH`` (a checkout the DAGs import from).
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    api_url = f"http://{LOOPBACK}:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(filter(None, [*pythonpath, os.environ.get("PYTHONPATH")])),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": executor,
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api_url}/execution/",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USERNAME}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords_file),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": database_url,
            "AIRFLOW__API__HOST": LOOPBACK,
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": api_url,
            "AIRFLOW__API__WORKERS": "1",
            # Every component signs and checks tokens (UI, task workloads): one secret for all of them.
            "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
            "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
            # Log servers of scheduler/worker and triggerer: free ports, so parallel deployments don't clash.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            # Seconds matter on a laptop and in a test: pick up new files and asset events quickly.
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
        }
    )
    env.update(extra or {})
    return env


@contextlib.contextmanager
def airflow_services(
    home: Path,
    *,
    database_url: str,
    dags_folder: Path,
    executor: str = "LocalExecutor",
    components: Sequence[str] = ("scheduler", "dag-processor", "triggerer"),
    extra_env: Mapping[str, str] | None = None,
    startup_timeout: float = 180.0,
    api_port: int | None = None,
    pythonpath: Sequence[str] = (),
    workdir: Path | None = None,
) -> Iterator[AirflowServices]:
    """Migrate the database, start the api-server and ``components``; stop them all on exit.

    ``components`` are ``airflow`` sub-commands (``scheduler``, ``dag-processor``, ``triggerer``,
    ``celery worker ...`` via :meth:`AirflowServices.start`).

    :param api_port: the api-server's port; a free one when None.
    :param workdir: the components' working directory (the project folder); ``home`` when None.
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    passwords_file = home / "simple_auth_manager_passwords.json"
    password = secrets.token_urlsafe(16)
    passwords_file.write_text(json.dumps({USERNAME: password}))
    api_port = api_port or free_port()
    env = service_environment(
        home, database_url=database_url, api_port=api_port, dags_folder=dags_folder, executor=executor,
        passwords_file=passwords_file, extra=extra_env, pythonpath=pythonpath,
    )  # fmt: skip
    services = AirflowServices(
        home=home, env=env, api_url=f"http://{LOOPBACK}:{api_port}", password=password, workdir=workdir
    )
    try:
        services.cli("db", "migrate", timeout=600)
        api = services.start("api-server", "api-server", "-H", LOOPBACK, "-p", str(api_port), "-w", "1")
        for component in components:
            services.start(component.replace(" ", "-"), *component.split())
        try:
            wait_for_port(api_port, api, timeout=startup_timeout)
        except (RuntimeError, TimeoutError) as exc:
            raise ServiceError(f"api-server did not start: {exc}\n{services.log_tails()}") from exc
        _wait_healthy(services, startup_timeout)
        yield services
    finally:
        services.stop()


def _wait_healthy(services: AirflowServices, timeout: float) -> None:
    """Wait for the api-server to answer and the scheduler and triggerer heartbeats to be healthy."""
    import httpx

    wanted = {
        name for name in ("scheduler", "triggerer", "dag_processor") if name.replace("_", "-") in services.processes
    }
    deadline = time.monotonic() + timeout
    health: Any = None
    while time.monotonic() < deadline:
        services.check_alive()
        with contextlib.suppress(httpx.HTTPError, ValueError):
            health = httpx.get(f"{services.api_url}/api/v2/monitor/health", timeout=10).json()
            if all((health.get(name) or {}).get("status") == "healthy" for name in wanted):
                return
        time.sleep(1)
    raise ServiceError(f"components not healthy within {timeout:.0f} s: {health}\n{services.log_tails()}")
