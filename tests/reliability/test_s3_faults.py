"""S3 API errors and a stopped S3 server while a task writes to an S3 storage root.

A small HTTP proxy sits between the task and moto's S3 server and answers chosen requests with
``503 ServiceUnavailable`` (what S3 returns under load) instead of forwarding them. Transient errors
must be retried by the client and the write succeed; persistent ones must end in a clear, retryable
task failure with nothing half-written: no object at the final key, no partial object anywhere. A
stopped server likewise fails the task clearly, and the rerun writes the clean bytes.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pendulum
import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core.errors import ArtifactError
from tests.support import services

_HOP = {"connection", "keep-alive", "transfer-encoding", "proxy-connection", "upgrade"}
_UNAVAILABLE = (
    b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ServiceUnavailable</Code><Message>injected</Message></Error>"
)


class S3FaultProxy:
    """Forward S3 requests to ``upstream``; answer those ``fail(method, path, headers)`` picks with 503."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlparse(upstream)
        self.fail: Callable[[str, str, Any], bool] = lambda method, path, headers: False
        self.failed: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                body = self._body()
                if proxy.fail(self.command, self.path, self.headers):
                    proxy.failed.append(f"{self.command} {self.path}")
                    self.send_response(503)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(_UNAVAILABLE)))
                    self.end_headers()
                    self.wfile.write(_UNAVAILABLE)
                    return
                upstream = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | {"expect"}}
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                data = response.read()
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in _HOP | {"content-length"}:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
                upstream.close()

            def _body(self) -> bytes:
                if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():  # how part uploads come
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    while self.rfile.readline().strip():  # trailers, up to the blank line
                        pass
                    return b"".join(chunks)
                length = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(length) if length else b""

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle  # noqa: N815

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((services.LOOPBACK, 0), Handler)
        self.url = f"http://{services.LOOPBACK}:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def proxy(s3_server: services.S3Server) -> Iterator[S3FaultProxy]:
    fault = S3FaultProxy(s3_server.endpoint_url)
    yield fault
    fault.close()


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.support import models

    folder = tmp_path_factory.mktemp("s3-landing")
    models.flights_frame((2,), 4000).to_parquet(folder / "flights_2013-02.parquet", index=False)
    return folder


def _aws(monkeypatch: pytest.MonkeyPatch, conn_id: str, endpoint: str) -> None:
    conn = {"conn_type": "aws", "login": "testing", "password": "testing",
            "extra": {"endpoint_url": endpoint, "region_name": "us-east-1"}}  # fmt: skip
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def _ingest(landing: Path, storage_root: str, conn_id: str) -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    start = pendulum.datetime(2013, 2, 1, tz="UTC")
    context = {"data_interval_start": start, "data_interval_end": start.add(months=1), "logical_date": start,
               "ds": "2013-02-01", "outlet_events": OutletEventAccessors(), "dag_run": None}  # fmt: skip
    return IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=str(landing), pattern="*.parquet",
        watermark_column="sched_dep_ts", storage_root=storage_root, storage_conn_id=conn_id,
    ).execute(context)  # fmt: skip


def _objects(s3_server: services.S3Server, bucket: str) -> dict[str, int]:
    listed = s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])
    return {o["Key"]: o["Size"] for o in listed}


def _nothing_half_written(objects: dict[str, int]) -> None:
    """No artifact at a final key; under the hidden .tmp/ prefix at most empty folder markers."""
    assert [k for k in objects if "/.tmp/" not in k] == [], objects
    assert all(size == 0 for size in objects.values()), objects


def test_transient_s3_errors_are_retried_and_the_write_succeeds(  # type: ignore[no-untyped-def]
    s3_server, s3_bucket: str, proxy: S3FaultProxy, landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws(monkeypatch, "aws_faulty", proxy.url)
    budget = [2]

    def first_two_writes(method: str, path: str, headers: Any) -> bool:
        if method == "PUT" and budget[0] > 0:
            budget[0] -= 1
            return True
        return False

    proxy.fail = first_two_writes
    receipt = _ingest(landing, f"s3://{s3_bucket}/mlops", "aws_faulty")
    assert len(proxy.failed) == 2  # both refused writes were sent again by the client
    clean = _ingest(landing, str(tmp_path / "clean"), "aws_faulty")
    assert receipt["sha256"] == clean["sha256"] and receipt["rows"] == clean["rows"]
    key = receipt["uri"].split(f"s3://{s3_bucket}/", 1)[1]
    assert _objects(s3_server, s3_bucket)[key] > 0


def test_persistent_s3_errors_fail_clearly_after_retries_and_write_nothing(  # type: ignore[no-untyped-def]
    s3_server, s3_bucket: str, proxy: S3FaultProxy, landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _aws(monkeypatch, "aws_faulty", proxy.url)
    # The temporary object uploads; moving it onto the final key (a server-side copy) keeps failing.
    proxy.fail = lambda method, path, headers: method == "PUT" and "x-amz-copy-source" in headers
    root = f"s3://{s3_bucket}/mlops"
    with pytest.raises(ArtifactError) as failure:
        _ingest(landing, root, "aws_faulty")
    assert not isinstance(failure.value, AirflowFailException)  # a transient cause: Airflow retries the task
    assert isinstance(failure.value, OSError)
    message = str(failure.value)
    assert f"{root}/flights/snapshots/2013-02-01T00:00:00+00:00/data.parquet" in message, message
    assert "503" in message or "ServiceUnavailable" in message or "injected" in message, message
    assert len(proxy.failed) > 1, proxy.failed  # the client retried before giving up
    _nothing_half_written(_objects(s3_server, s3_bucket))

    proxy.fail = lambda method, path, headers: False  # the service recovers; Airflow's retry runs
    receipt = _ingest(landing, root, "aws_faulty")
    assert receipt["sha256"] == _ingest(landing, str(tmp_path / "clean"), "aws_faulty")["sha256"]
    finals = sorted(k for k in _objects(s3_server, s3_bucket) if "/.tmp/" not in k)
    assert finals == [
        "mlops/flights/snapshots/2013-02-01T00:00:00+00:00/data.parquet",
        "mlops/flights/snapshots/2013-02-01T00:00:00+00:00/receipt.json",
    ]


def test_a_stopped_s3_server_fails_the_task_clearly_and_the_rerun_writes_the_clean_bytes(
    landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = _ingest(landing, str(tmp_path / "clean"), "unused")
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(services.moto_s3(tmp_path))
        _aws(monkeypatch, "aws_private", server.endpoint_url)
        server.client().create_bucket(Bucket="private")
    # The server is stopped now (its process terminated).
    with pytest.raises(OSError) as failure:
        _ingest(landing, "s3://private/mlops", "aws_private")
    assert not isinstance(failure.value, AirflowFailException)
    assert "s3://private/mlops/flights/snapshots" in str(failure.value) or server.endpoint_url.split("//")[1] in str(
        failure.value
    ), str(failure.value)

    (tmp_path / "again").mkdir()
    with services.moto_s3(tmp_path / "again") as again:
        _aws(monkeypatch, "aws_private", again.endpoint_url)
        again.client().create_bucket(Bucket="private")
        receipt = _ingest(landing, "s3://private/mlops", "aws_private")
        assert receipt["sha256"] == clean["sha256"]
        _nothing_half_written({k: v for k, v in _objects(again, "private").items() if "/snapshots/" not in k})
