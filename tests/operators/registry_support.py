"""A task context good enough to call execute() directly: XCom pushes and outlet events are recorded."""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.core.registry.support import fresh_store


@dataclass
class RecordingTI:
    dag_id: str = "flights_ct"
    run_id: str = "manual__2013-04-01T00:00:00+00:00"
    task_id: str = "task"
    map_index: int = -1
    try_number: int = 1
    pushed: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def task_context(task_id: str = "task", run_id: str = "manual__2013-04-01T00:00:00+00:00") -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = RecordingTI(task_id=task_id, run_id=run_id)
    return {"ti": ti, "task_instance": ti, "outlet_events": OutletEventAccessors(), "run_id": run_id,
            "ds_nodash": "20130401", "logical_date": None}  # fmt: skip


def prepare_embedded_store(mlops_env: Path) -> None:
    """Copy a migrated MLflow store where the mlops_env settings point, sparing seconds of migrations."""
    fresh_store(mlops_env / "mlflow.db")


class TcpProxy:
    """A loopback TCP forwarder that can be cut and restored: the registry "goes away" and comes back.

    Cutting closes the listening socket and every open connection, so clients see refused and reset
    connections exactly as when the server dies, while the server itself (and its store) lives on.
    """

    def __init__(self, target_port: int) -> None:
        from tests.support.services import free_port

        self.target_port = target_port
        self.port = free_port()
        self._listener: Any = None
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self.restore()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() so the port really closes
        self._listener.close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: Any) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: Any, sink: Any) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def embedded_registry_client(mlops_env: Path) -> Any:
    """An MLflow client on the deployment's embedded store, prepared for registry tests."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    prepare_embedded_store(mlops_env)
    return MlflowHook().get_conn()


def register_gated_version(client: Any, name: str) -> str:
    """Register a passed-gate version of a fresh training run the way RegisterModelOperator does; its number."""
    from airflow_mlops.core import registry
    from tests.core.registry.support import gate_receipt, training_run

    run_id = training_run(client)
    tags = registry.registration_tags(dict(client.get_run(run_id).data.tags), run_id, gate_receipt(run_id))
    version = registry.register_version(client, name, run_id, source=f"runs:/{run_id}/onnx", tags=tags, description="")
    return str(version.version)
