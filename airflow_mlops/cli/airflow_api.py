"""REST API v2 of an Airflow 3 deployment, as its UI uses it: ``POST /auth/token``, then bearer calls.

Used by the main job (``scripts/demo.py``), which drives the reference DAGs on a real scheduler as a user
would, and by the end-to-end tests.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.errors import MlopsError

FINISHED = frozenset({"success", "failed"})


class ServiceError(MlopsError, RuntimeError):
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

        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
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

    def trigger(
        self,
        dag_id: str,
        conf: Mapping[str, Any] | None = None,
        logical_date: str | None = None,
        note: str = "",
        run_id: str | None = None,
    ) -> str:
        """Trigger a run as the UI's "Trigger" form does; returns the run id."""
        body = {"logical_date": logical_date, "conf": dict(conf or {}), "note": note or "triggered through REST API v2"}
        if run_id is not None:
            body["dag_run_id"] = run_id
        run = self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)
        return str(run["dag_run_id"])

    def set_run_state(self, dag_id: str, run_id: str, state: str) -> None:
        """Mark a run ``failed`` or ``success``, as the UI's buttons do.

        The scheduler may be writing the same run at that moment; the metadata database then refuses one
        of the two writers and the API answers 500, as it would to a user clicking in the UI, who clicks
        again.
        """
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"
        for attempt in range(5):
            try:
                self.request("PATCH", path, json={"state": state})
                return
            except ServiceError as exc:
                if "-> 500" not in str(exc) or attempt == 4:
                    raise
                time.sleep(1)

    def clear_run(self, dag_id: str, run_id: str) -> None:
        """Run an existing run again from the start (the UI's "Clear"), keeping its id and logical date."""
        self.request("POST", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/clear", json={"dry_run": False})

    def run_with_logical_date(self, dag_id: str, logical_date: str) -> dict[str, Any] | None:
        """The run of ``dag_id`` for ``logical_date`` (ISO 8601), if there is one: at most one can exist."""
        answer = self.get(
            f"/api/v2/dags/{dag_id}/dagRuns", logical_date_gte=logical_date, logical_date_lte=logical_date, limit=1
        )
        return next(iter(answer["dag_runs"]), None)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns", order_by="run_after", limit=100)
        return list(answer["dag_runs"])

    def run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return dict(self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}"))

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        answer = self.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=500)
        return list(answer["task_instances"])

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> list[str]:
        """The lines (their ``event`` text) of a task try's log, as the UI reads them from the api-server."""
        path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/{try_number}"
        answer = self.request("GET", path, params={"full_content": "true"}, headers={"Accept": "application/json"})
        lines = (answer or {}).get("content") or []
        return [str(line["event"]) for line in lines if isinstance(line, dict) and line.get("event")]

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


def upstream_events(api: ApiClient, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/upstreamAssetEvents")["asset_events"])


def wait_for_run_caused_by(
    api: ApiClient, dag_id: str, known: set[str], cause: tuple[str, str, str | None], timeout: float
) -> dict[str, Any]:
    """The first new run of ``dag_id`` whose triggering asset events include ``cause`` (uri, source DAG,
    source run; a source run of None matches any run of that DAG). A run the training DAG's own ingest
    event queues (it trains nothing) is passed over: it may appear before or after the awaited one."""
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
        if time.monotonic() >= deadline:
            raise ServiceError(f"no {dag_id} run caused by {cause}: {api.runs(dag_id)}\n{api.describe()}")
        api.check()
        time.sleep(2)
