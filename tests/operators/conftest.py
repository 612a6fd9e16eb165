"""Fixtures shared by the operator tests."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.notifiers.test_webhook import Receiver


@pytest.fixture
def alerts(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    """A local webhook receiver behind the ``alerts`` connection (conn type ``mlops_webhook``)."""
    server = Receiver()
    monkeypatch.setenv(
        "AIRFLOW_CONN_ALERTS",
        json.dumps({"conn_type": "mlops_webhook", "host": f"http://127.0.0.1:{server.port}/alert"}),
    )
    yield server
    server.close()
