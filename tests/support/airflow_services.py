"""Real Airflow 3 services for end-to-end tests: api-server, scheduler, dag-processor, triggerer, workers.

Everything runs as subprocesses of the test, on 127.0.0.1, in an isolated ``AIRFLOW_HOME`` whose
metadata database is a private PostgreSQL database (created and dropped by the caller, see
``tests/e2e/conftest.py``). Each component writes its output to ``<home>/logs/<component>.log``;
:meth:`AirflowServices.log_tails` gathers the ends of those files for assertion messages, because a
failure in a distributed run is usually explained by another process's log, not by the test's own.

The test talks to Airflow as the UI does: ``POST /auth/token`` with a SimpleAuthManager user from a
passwords file, then REST API v2 calls with the bearer token (:class:`ApiClient`).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.services import LOOPBACK, free_port, wait_for_port

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]
USERNAME = "admin"
# The test process's own Airflow/MLflow settings (tests/conftest.py) must not leak into the services.
_SCRUBBED_PREFIXES = ("AIRFLOW_", "AIRFLOW__", "MLFLOW_")
FINISHED = frozenset({"success", "failed"})


class ServiceError(AssertionError):
    """A component died or did not answer in time; the message carries every component's log tail."""


@dataclass
class ApiClient:
    """REST API v2 with a bearer token from ``POST /auth/token``, as the Airflow UI uses it."""

    base_url: str
    token: str
    describe: Callable[[], str] = field(default=lambda: "")
    # Called at every poll: a dead component fails the wait at once instead of at its timeout.
    check: Callable[[], None] = field(default=lambda: None)

    @classmethod
    def login(
        cls, base_url: str, username: str, password: str, describe: Callable[[], str], check: Callable[[], None]
    ) -> ApiClient:
        import httpx

        response = httpx.post(f"{base_url}/auth/token", json={"username": username, "password": password}, timeout=30)
        if response.status_code != 201:
            raise ServiceError(f"POST /auth/token -> {response.status_code} {response.text}\n{describe()}")
        return cls(base_url, response.json()["access_token"], describe, check)

    def request(self, method: str, path: str, *, expect: Sequence[int] = (200,), **kwargs: Any) -> Any:
        import httpx

        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=60, **kwargs)
        if response.status_code not in expect:
            raise ServiceError(
                f"{method} {path} -> {response.status_code}, expected {list(expect)}: {response.text[:2000]}\n"
                f"{self.describe()}"
            )
        return response.json() if response.content else None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params or None)

    # -- DAGs and runs ---------------------------------------------------------------------------
    def wait_for_dag(self, dag_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id`` (it appears in ``GET /dags/{id}``)."""
        last: Any = None

        def parsed() -> bool:
            nonlocal last
            last = self.request("GET", f"/api/v2/dags/{dag_id}", expect=(200, 404))
            return bool(last) and "dag_id" in last

        self._poll(parsed, timeout, lambda: f"DAG {dag_id!r} was not parsed; last answer {last}")
        errors = self.get("/api/v2/importErrors")
        if errors.get("import_errors"):
            # Not fatal for this DAG, but a broken sibling file is worth seeing in a failure message.
            print("import errors:", json.dumps(errors["import_errors"], indent=1)[:4000], file=sys.stderr)
        return dict(last)

    def unpause(self, dag_id: str) -> None:
        self.request("PATCH", f"/api/v2/dags/{dag_id}", json={"is_paused": False})

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date: str | None = None) -> str:
        """Trigger a run as the UI's "Trigger" form does; returns the run id."""
        body = {"logical_date": logical_date, "conf": dict(conf or {}), "note": "triggered by the end-to-end test"}
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns", order_by="run_after", limit=100)
        return list(answer["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=500)
        return list(answer["task_instances"])

    def links(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, str]:
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/links"
        return dict((self.get(path, map_index=map_index) or {}).get("extra_links") or {})

    def ui_url(self, dag_id: str, run_id: str, task_id: str | None = None, tab: str = "") -> str:
        """The UI page of a run or of one of its task instances (routes of Airflow 3's React UI).

        A task instance's extra links are buttons on its ``details`` tab.
        """
        from urllib.parse import quote

        url = f"{self.base_url}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"
        if task_id:
            url += f"/tasks/{quote(task_id, safe='')}"
        return f"{url}/{tab}" if tab else url

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll the run until it finishes; a failed run raises with its task states and the logs."""
        state: dict[str, Any] = {}

        def finished() -> bool:
            state.update(self.run(dag_id, run_id))
            return state["state"] in FINISHED

        self._poll(finished, timeout, lambda: f"run {dag_id}/{run_id} did not finish: {self._summary(dag_id, run_id)}")
        if state["state"] != "success":
            raise ServiceError(
                f"run {dag_id}/{run_id} ended {state['state']}: {self._summary(dag_id, run_id)}\n{self.describe()}"
            )
        return state

    def wait_for_new_run(
        self, dag_id: str, known: set[str], timeout: float = 300.0, run_type: str | None = None
    ) -> dict[str, Any]:
        """Wait for a run of ``dag_id`` not in ``known`` (optionally of ``run_type``) to appear."""
        found: list[dict[str, Any]] = []

        def appeared() -> bool:
            found[:] = [
                r
                for r in self.runs(dag_id)
                if r["dag_run_id"] not in known and (run_type is None or r["run_type"] == run_type)
            ]
            return bool(found)

        self._poll(appeared, timeout, lambda: f"no new {run_type or ''} run of {dag_id}; runs: {self.runs(dag_id)}")
        return found[0]

    def wait_until_idle(self, dag_id: str, timeout: float = 300.0) -> list[dict[str, Any]]:
        """Wait until no run of ``dag_id`` is queued or running; returns all its runs."""
        runs: list[dict[str, Any]] = []

        def idle() -> bool:
            runs[:] = self.runs(dag_id)
            return all(r["state"] in FINISHED for r in runs)

        self._poll(idle, timeout, lambda: f"{dag_id} still has unfinished runs: {runs}")
        return runs

    def _summary(self, dag_id: str, run_id: str) -> str:
        try:
            tis = self.task_instances(dag_id, run_id)
        except ServiceError as exc:
            return f"(task instances unavailable: {exc})"
        return ", ".join(f"{t['task_id']}[{t['map_index']}]={t['state']}" for t in tis)

    def _poll(self, done: Callable[[], bool], timeout: float, what: Callable[[], str]) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            self.check()
            time.sleep(2)
        raise ServiceError(f"timed out after {timeout:.0f} s: {what()}\n{self.describe()}")


@dataclass
class AirflowServices:
    """A running set of Airflow components; see :func:`airflow_services`."""

    home: Path
    env: dict[str, str]
    api_url: str
    password: str
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
            [str(BIN / "airflow"), *args], stdout=out, stderr=subprocess.STDOUT, env=self.env, cwd=self.home,
            start_new_session=True,
        )  # fmt: skip
        out.close()
        self.processes[name] = proc
        return proc

    def cli(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` CLI command in this deployment; its output, or a failure with the logs."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args], env=self.env, cwd=self.home, capture_output=True, text=True, timeout=timeout
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
            # Task supervisors and executor workers share the group; none may outlive the test.
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
) -> dict[str, str]:
    """The environment every component shares: one home, one database, one API, one JWT secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    api_url = f"http://{LOOPBACK}:{api_port}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
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
            # Seconds matter in a test: pick up new files and asset events quickly.
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
) -> Iterator[AirflowServices]:
    """Migrate the database, start the api-server and ``components``; stop them all on exit.

    ``components`` are ``airflow`` sub-commands (``scheduler``, ``dag-processor``, ``triggerer``,
    ``celery worker ...`` via :meth:`AirflowServices.start`).
    """
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    passwords_file = home / "simple_auth_manager_passwords.json"
    password = secrets.token_urlsafe(16)
    passwords_file.write_text(json.dumps({USERNAME: password}))
    api_port = free_port()
    env = service_environment(
        home, database_url=database_url, api_port=api_port, dags_folder=dags_folder, executor=executor,
        passwords_file=passwords_file, extra=extra_env,
    )  # fmt: skip
    services = AirflowServices(home=home, env=env, api_url=f"http://{LOOPBACK}:{api_port}", password=password)
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


def upstream_events(api: ApiClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"])


def wait_for_run_caused_by(
    airflow: AirflowServices, dag_id: str, known: set[str], cause: tuple[str, str, str | None], timeout: float
) -> dict[str, Any]:
    """The first new run of ``dag_id`` whose triggering asset events include ``cause`` (uri, source DAG,
    source run; a source run of None matches any run of that DAG). A run the training DAG's own ingest
    event queues (it trains nothing) is passed over: it may appear before or after the awaited one."""
    api = airflow.api
    deadline = time.monotonic() + timeout
    while True:
        for run in api.runs(dag_id):
            if run["dag_run_id"] in known:
                continue
            events = upstream_events(api, dag_id, run["dag_run_id"])
            uri, source_dag, source_run = cause
            if any(
                (e["uri"], e["source_dag_id"]) == (uri, source_dag) and source_run in (None, e["source_run_id"])
                for e in events
            ):
                return run
        assert time.monotonic() < deadline, (
            f"no {dag_id} run caused by {cause}: {api.runs(dag_id)}\n{airflow.log_tails()}"
        )
        airflow.check_alive()
        time.sleep(2)
