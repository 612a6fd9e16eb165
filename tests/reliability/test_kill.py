"""kill -9 of an ingestion task and of a scoring task in the middle of writing, then a rerun.

Each task runs its operator in a child process. The parent watches the storage root, kills the child
with SIGKILL as soon as the operator's temporary file has bytes in it (no ``finally``, no cleanup: as when
a worker dies), and checks, at every poll before and after the kill, that no reader could see a partial
or duplicated output. The rerun must then write the same bytes as a clean run into another root.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.storage import StorageRoot
from tests.support import models

REPO = Path(__file__).resolve().parents[2]

_INGEST = textwrap.dedent(
    """
    import json, sys
    import pendulum
    from airflow.sdk.execution_time.context import OutletEventAccessors
    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    args = json.loads(sys.argv[1])
    start = pendulum.datetime(2013, 2, 1, tz="UTC")
    context = {"data_interval_start": start, "data_interval_end": start.add(months=1), "logical_date": start,
               "ds": "2013-02-01", "outlet_events": OutletEventAccessors(), "dag_run": None}
    task = IngestDatasetOperator(
        task_id="ingest", pipeline="flights", source="local", path=args["landing"],
        pattern="flights_2013-*.parquet", watermark_column="sched_dep_ts", storage_root=args["root"],
        chunk_rows=args["chunk_rows"],
    )
    print(json.dumps(task.execute(context)), flush=True)
    """
)

_SCORE = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from types import SimpleNamespace
    from airflow_mlops.operators.scoring import ScoreBatchOperator

    class TI:
        map_index = -1
        def xcom_push(self, key, value):
            pass

    args = json.loads(sys.argv[1])
    context = {"logical_date": datetime(2013, 3, 1, tzinfo=UTC),
               "dag_run": SimpleNamespace(run_after=datetime(2026, 1, 2, tzinfo=UTC)), "ti": TI()}
    task = ScoreBatchOperator(
        task_id="score", input_uri=args["input"], model_name=args["name"], pipeline="flights",
        storage_root=args["root"], chunk_rows=args["chunk_rows"], passthrough_columns="flight",
    )
    print(json.dumps(task.execute(context)), flush=True)
    """
)


def _visible(root: Path) -> dict[str, int]:
    """What a reader of the root sees: every non-temporary file and its size."""
    storage = StorageRoot(str(root))
    return {uri: Path(uri).stat().st_size for uri in storage.list_files(storage.uri)} if root.exists() else {}


def _kill_mid_write(script: str, args: dict[str, Any], root: Path, temporary: str, check: Any) -> list[Path]:
    """Run ``script``; SIGKILL it once a file named ``temporary*`` under ``root`` holds bytes.

    ``check(visible)`` runs at every poll, before and after the kill, on what a reader would see.
    Returns the temporary files the killed process left behind.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", script, json.dumps(args)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            check(_visible(root))
            partial = [p for p in root.rglob(temporary + "*") if p.stat().st_size > 0] if root.exists() else []
            if partial:
                os.kill(proc.pid, signal.SIGKILL)
                break
            if proc.poll() is not None:
                pytest.fail(f"the task ended before it was caught mid-write: {proc.communicate()[1][-3000:]}")
            time.sleep(0.005)
        else:
            pytest.fail("the task never started writing")
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    check(_visible(root))
    return list(root.rglob(temporary + "*"))


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from airflow_mlops.cli import replay

    folder = tmp_path_factory.mktemp("landing")
    replay.replay([1], str(folder))
    return folder


def test_ingestion_killed_mid_write_then_rerun_gives_the_clean_bytes(landing: Path, tmp_path: Path) -> None:
    import pendulum
    from airflow.sdk.execution_time.context import OutletEventAccessors

    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    def run(root: Path) -> dict[str, Any]:
        start = pendulum.datetime(2013, 2, 1, tz="UTC")
        context = {"data_interval_start": start, "data_interval_end": start.add(months=1), "logical_date": start,
                   "ds": "2013-02-01", "outlet_events": OutletEventAccessors(), "dag_run": None}  # fmt: skip
        task = IngestDatasetOperator(
            task_id="ingest", pipeline="flights", source="local", path=str(landing), pattern="flights_2013-*.parquet",
            watermark_column="sched_dep_ts", storage_root=str(root), chunk_rows=500,
        )  # fmt: skip
        return task.execute(context)

    clean = run(tmp_path / "clean")
    clean_bytes = Path(clean["uri"]).read_bytes()

    killed = tmp_path / "killed"

    def nothing_partial(visible: dict[str, int]) -> None:
        # The snapshot appears whole or not at all: here the killed attempt never got to the rename.
        assert all(size == len(clean_bytes) for uri, size in visible.items() if uri.endswith("data.parquet")), visible

    args = {"landing": str(landing), "root": str(killed), "chunk_rows": 500}
    leftovers = _kill_mid_write(_INGEST, args, killed, ".tmp-data.parquet-", nothing_partial)
    assert _visible(killed) == {}  # neither a partial snapshot nor a receipt for it
    assert len(leftovers) == 1 and 0 < leftovers[0].stat().st_size < len(clean_bytes)

    rerun = run(killed)
    assert Path(rerun["uri"]).read_bytes() == clean_bytes  # byte-identical: no duplicate, no missing row
    assert {k: rerun[k] for k in ("rows", "sha256", "source_watermark")} == {
        k: clean[k] for k in ("rows", "sha256", "source_watermark")
    }
    table = pq.read_table(rerun["uri"], columns=["sched_dep_ts", "carrier", "flight", "origin"])
    assert table.num_rows == clean["rows"] == len(set(zip(*table.to_pydict().values(), strict=True)))
    assert sorted(Path(u).name for u in _visible(killed)) == ["data.parquet", "receipt.json"]
    assert not list(killed.rglob(".tmp-*"))  # the rerun cleared what the killed attempt left


def test_scoring_killed_mid_write_then_rerun_gives_the_clean_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime
    from types import SimpleNamespace

    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.operators.scoring import ScoreBatchOperator
    from tests.core.registry.support import fresh_store

    uri = fresh_store(tmp_path / "mlflow.db")
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    hook = MlflowHook()
    name = "kill_scoring"
    models.register(
        hook.get_conn(), models.flights_classifier("sklearn"), name, experiment_id=hook.ensure_experiment("flights")
    )
    landing = tmp_path / "in.parquet"
    models.flights_frame((2,), 12000).to_parquet(landing, index=False)

    class TI:
        map_index = -1

        def xcom_push(self, key: str, value: Any) -> None:
            pass

    def run(root: Path) -> dict[str, Any]:
        context = {"logical_date": datetime(2013, 3, 1, tzinfo=UTC),
                   "dag_run": SimpleNamespace(run_after=datetime(2026, 1, 2, tzinfo=UTC)), "ti": TI()}  # fmt: skip
        return ScoreBatchOperator(
            task_id="score", input_uri=str(landing), model_name=name, pipeline="flights", storage_root=str(root),
            chunk_rows=200, passthrough_columns="flight",
        ).execute(context)  # fmt: skip

    clean = run(tmp_path / "clean")
    clean_bytes = Path(clean["output_uri"]).read_bytes()

    killed = tmp_path / "killed"

    def nothing_partial(visible: dict[str, int]) -> None:
        assert not any(uri.endswith("predictions.parquet") for uri in visible), visible

    args = {"input": str(landing), "name": name, "root": str(killed), "chunk_rows": 200}
    leftovers = _kill_mid_write(_SCORE, args, killed, ".tmp-predictions.parquet-", nothing_partial)
    assert _visible(killed) == {} and len(leftovers) == 1

    rerun = run(killed)
    assert Path(rerun["output_uri"]).read_bytes() == clean_bytes
    assert rerun["rows_out"] == clean["rows_out"] == pq.read_metadata(rerun["output_uri"]).num_rows
    assert not list(killed.rglob(".tmp-*"))  # the rerun cleared what the killed attempt left
