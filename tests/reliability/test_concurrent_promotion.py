"""Two continuous-training runs promote at the same moment, from two processes (two Airflow workers).

Both gates evaluated their candidate against champion version 1. The two may be two runs, or two live
tries of one task instance (a zombie try and the retry Airflow started in its place). Each process imports everything,
signals that it is ready, waits for one shared start signal, then runs ``PromoteModelOperator``. Exactly
one must win; the other must fail with ``PromotionConflict`` naming the winner; the aliases must end
consistent (champion = winner, previous_champion = 1) and the promotion lease must be gone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from tests.core.registry.support import gate_receipt, training_run
from tests.operators.registry_support import task_context

REPO = Path(__file__).resolve().parents[2]

_PROMOTE = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from airflow_mlops.operators.registry import PromoteModelOperator
    from tests.core.registry.support import gate_receipt
    from tests.operators.registry_support import task_context

    args = json.loads(sys.argv[1])
    operator = PromoteModelOperator(
        task_id="promote", model_name=args["name"], pipeline="flights", version=args["version"],
        gate_receipt=gate_receipt(args["run_id"], champion_version="1"),
    )
    context = task_context("promote", run_id=args["dag_run"])
    Path(args["ready"]).touch()
    while not Path(args["go"]).exists():
        time.sleep(0.005)
    try:
        print("RESULT", json.dumps(operator.execute(context)), flush=True)
    except Exception as exc:
        print("ERROR", type(exc).__name__, json.dumps(str(exc)), flush=True)
    """
)


@pytest.mark.parametrize("same_task_instance", [False, True], ids=["two-runs", "two-live-tries-of-one-task"])
def test_two_processes_promote_at_once_and_exactly_one_wins(mlflow_server, tmp_path: Path, monkeypatch,  # type: ignore[no-untyped-def]
                                                            same_task_instance: bool) -> None:  # fmt: skip
    """Two runs, or two live tries of one task instance (a zombie and its retry: same dag, run and task,
    so the same promotion key): the key must give neither try the other's lease."""
    from airflow_mlops.hooks.mlflow import MlflowHook
    from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator

    conn = json.dumps({"conn_type": "mlflow", "host": mlflow_server.url})
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", conn)
    client = MlflowHook().get_conn()
    name = f"two_workers_{tmp_path.name}".replace("-", "_")
    runs = [training_run(client, experiment="two-workers") for _ in range(3)]
    for run_id in runs:
        RegisterModelOperator(task_id="r", model_name=name, gate_receipt=gate_receipt(run_id)).execute(task_context())
    PromoteModelOperator(
        task_id="p", model_name=name, pipeline="flights", version="1", gate_receipt=gate_receipt(runs[0])
    ).execute(task_context())

    go = tmp_path / "go"
    procs = {}
    for version in ("2", "3"):
        args = {"name": name, "version": version, "run_id": runs[int(version) - 1], "ready": str(tmp_path / version),
                "go": str(go), "dag_run": "ct-same" if same_task_instance else f"ct-{version}"}  # fmt: skip
        procs[version] = subprocess.Popen(
            [sys.executable, "-c", _PROMOTE, json.dumps(args)], cwd=REPO, text=True, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, "AIRFLOW_CONN_MLFLOW_DEFAULT": conn},
        )  # fmt: skip
    deadline = time.monotonic() + 180
    while not all((tmp_path / v).exists() for v in procs) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()  # both start promoting now
    outcomes: dict[str, Any] = {}
    for version, proc in procs.items():
        out, err = proc.communicate(timeout=180)
        (line,) = [line for line in out.splitlines() if line.startswith(("RESULT ", "ERROR "))] or [err[-3000:]]
        outcomes[version] = line

    winners = [v for v, line in outcomes.items() if line.startswith("RESULT ")]
    losers = [line for line in outcomes.values() if line.startswith("ERROR ")]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    kind, message = losers[0].split(" ", 2)[1:]
    assert kind == "PromotionConflict", losers[0]
    assert f"points at version {winners[0]}, but this promotion expected version 1" in json.loads(message)
    assert json.loads(outcomes[winners[0]].split(" ", 1)[1])["changed"] is True
    final = {k: str(v) for k, v in client.get_registered_model(name).aliases.items()}
    assert final == {"champion": winners[0], "previous_champion": "1"}
    assert client.search_registered_models(f"name = '{name}.mlops-lock'") == []
