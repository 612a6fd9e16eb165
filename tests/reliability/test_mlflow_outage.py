"""The MLflow tracking server process stops in the middle of a registration and of a promotion.

A private ``mlflow server`` runs on a fixed loopback port with a SQLite store; the test stops the
process (SIGTERM, then waits for it) at the exact call where it hurts most, and later starts it again
on the same port and store, as a restarted deployment would. Each interrupted task must fail in a way
Airflow retries (not ``AirflowFailException``); the retry must finish the job without a duplicate
version, and the champion alias must not move before the promotion that moves it succeeds.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core import contracts, registry
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.registry import ModelNotPromotable, PromoteModelOperator, RegisterModelOperator
from tests.core.registry.support import gate_receipt, training_run
from tests.operators.registry_support import task_context
from tests.support import services


class RestartableMlflow:
    """``mlflow server`` on one port and one store, which the test can stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = services.free_port()
        self.url = f"http://{services.LOOPBACK}:{self.port}"
        self.starts = 0
        self._stack: contextlib.ExitStack | None = None

    def start(self) -> None:
        self.starts += 1
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        cmd = [
            str(services.BIN / "mlflow"), "server", "--host", services.LOOPBACK, "--port", str(self.port),
            "--workers", "1", "--backend-store-uri", f"sqlite:///{self.workdir / 'mlflow.db'}",
            "--artifacts-destination", str(self.workdir / "mlartifacts"), "--serve-artifacts",
        ]  # fmt: skip
        stack = contextlib.ExitStack()
        stack.enter_context(services._process(cmd, self.port, self.workdir / f"mlflow-{self.starts}.log", env=env))
        self._stack = stack

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()  # terminates the process and waits for it to exit
            self._stack = None


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RestartableMlflow]:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # fail in seconds, not after minutes of backoff
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    mlflow = RestartableMlflow(tmp_path)
    mlflow.start()
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": mlflow.url}))
    yield mlflow
    mlflow.stop()


def _stop_before(monkeypatch: pytest.MonkeyPatch, server: RestartableMlflow, method: str, after: bool = False) -> None:
    """Make ``MlflowClient.<method>`` stop the server just before (or just after) doing its work."""
    from mlflow import MlflowClient

    real = getattr(MlflowClient, method)

    def cut(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not after:
            server.stop()
            return real(self, *args, **kwargs)
        result = real(self, *args, **kwargs)
        server.stop()
        return result

    monkeypatch.setattr(MlflowClient, method, cut)


def test_tracking_server_stopped_during_registration_and_promotion(
    server: RestartableMlflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = MlflowHook().get_conn()
    name = "outage_flights"
    champion_run, candidate_run = training_run(client, experiment=name), training_run(client, experiment=name)
    common = {"model_name": name, "pipeline": "flights"}
    RegisterModelOperator(task_id="r", model_name=name, gate_receipt=gate_receipt(champion_run)).execute(task_context())
    PromoteModelOperator(task_id="p", version="1", gate_receipt=gate_receipt(champion_run), **common).execute(
        task_context()
    )

    def state() -> tuple[list[str], dict[str, str]]:
        versions = sorted(str(v.version) for v in client.search_model_versions(f"name = '{name}'"))
        return versions, {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}

    # Registration: the server dies right after it created the version, before it was tagged complete.
    register = RegisterModelOperator(task_id="r", model_name=name, gate_receipt=gate_receipt(candidate_run))
    with monkeypatch.context() as patch:
        _stop_before(patch, server, "create_model_version", after=True)
        with pytest.raises(Exception) as failure:
            register.execute(task_context(run_id="register"))
    assert not isinstance(failure.value, AirflowFailException), repr(failure.value)  # Airflow retries it
    server.start()
    assert state() == (["1", "2"], {"champion": "1"})
    (half,) = [v for v in client.search_model_versions(f"name = '{name}'") if str(v.version) == "2"]
    assert contracts.TAG_REGISTRATION_COMPLETE not in half.tags  # visibly unfinished, so not promotable:
    promote = PromoteModelOperator(
        task_id="p", version="2", gate_receipt=gate_receipt(candidate_run, champion_version="1"), lock_ttl=2.0,
        **common,
    )  # fmt: skip
    with pytest.raises(ModelNotPromotable, match="registration did not finish"):
        promote.execute(task_context(run_id="early"))
    retry = register.execute(task_context(run_id="register"))  # Airflow's retry of the same task
    assert (retry["version"], retry["created"], retry["completed"]) == ("2", False, True)
    assert state() == (["1", "2"], {"champion": "1"})  # no duplicate version, champion untouched

    # Promotion: the lease is taken, then the server dies before the alias moves; the lease stays behind.
    with monkeypatch.context() as patch:
        _stop_before(patch, server, "set_registered_model_alias")
        with pytest.raises(Exception) as failure:
            promote.execute(task_context(run_id="promote"))
    assert not isinstance(failure.value, AirflowFailException), repr(failure.value)
    server.start()
    assert state() == (["1", "2"], {"champion": "1"})  # the alias did not move
    lease = client.get_registered_model(name + registry.LOCK_SUFFIX)  # left by the try that lost the server
    assert lease.tags[registry.TAG_LOCK_OWNER].startswith("flights_ct/promote/task/")
    promoted = promote.execute(task_context(run_id="promote"))  # the retry takes it once it has expired
    assert promoted["changed"] and promoted["version"] == "2"
    assert state() == (["1", "2"], {"champion": "2", "previous_champion": "1"})
    assert client.search_registered_models(f"name = '{name}{registry.LOCK_SUFFIX}'") == []
    assert server.starts == 3
