"""An injection attempt in a templated value stays a value, on a database every machine has (SQLite).

``tests/core/test_ingestion.py`` proves the same against PostgreSQL (skipped where none runs). Here the
attempt comes through the operator, in the DAG run's configuration: formatted into the SQL text,
``' OR '1'='1`` would match every row; bound, it matches no carrier, so the task finds no rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pendulum
import pytest

from airflow_mlops.core.ingestion import EmptySourceError
from tests.support import models

ATTEMPTS = ["' OR '1'='1", "UA' OR 1=1 --", "x'; DROP TABLE flights; --"]


@pytest.mark.parametrize("carrier", ATTEMPTS, ids=["or-true", "comment", "drop-table"])
def test_a_templated_injection_attempt_is_bound_as_a_value(
    carrier: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    source = tmp_path / "source.db"
    frame = models.flights_frame((1,), 500)[["carrier", "flight", "origin", "dest"]]
    with sqlite3.connect(source) as conn:
        frame.to_sql("flights", conn, index=False)
    monkeypatch.setenv("AIRFLOW_CONN_INJECTION_SQL", f"sqlite:///{source}")
    start = pendulum.datetime(2013, 2, 1, tz="UTC")
    context = {
        "data_interval_start": start, "data_interval_end": start.add(months=1), "logical_date": start,
        "outlet_events": OutletEventAccessors(), "dag_run": SimpleNamespace(conf={"carrier": carrier}),
    }  # fmt: skip
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="sql", sql_conn_id="injection_sql",
        query="SELECT * FROM flights WHERE carrier = {{ dag_run.conf['carrier'] }}", storage_root=str(tmp_path / "s"),
    )  # fmt: skip
    with pytest.raises(EmptySourceError):
        task.execute(context)
    assert not (tmp_path / "s").exists()
    with sqlite3.connect(source) as conn:
        assert conn.execute("SELECT count(*) FROM flights").fetchone() == (len(frame),)

    context["dag_run"] = SimpleNamespace(conf={"carrier": "UA"})  # the same query with an honest value
    receipt = task.execute(context)
    assert receipt["rows"] == int((frame["carrier"] == "UA").sum()) > 0
