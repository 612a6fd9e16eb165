"""A new feature is one line of the pipeline file: trained, served and watched for drift with no code change.

The ML Test Score's "new features can be added quickly", measured: a copy of the project (the reference
DAG files as shipped, the flights pipeline file, its validation suite) gets one more feature by editing
one line of ``flights_delay.yaml``; the continuous-training DAG trains and promotes a model with it, and
the batch-serving DAG serves the next month with it. The wall time from the edit to the served batch is
printed (docs/training.md records it).
"""

from __future__ import annotations

import difflib
import json
import runpy
import time
from pathlib import Path

import pendulum
import pytest

from tests.support import data
from tests.support.project import copy_project, pipeline_file

FEATURES_LINE = (
    "    numeric: [hour, minute, sched_dep_time, sched_arr_time, distance, sched_dow, temp, visib, precip,"
    " wind_speed]\n"
)
# A column of the source and of the validation suite, not a feature of the shipped file. (``day`` works the
# same way, but lowers this sample's test AUC from 0.630 to 0.604, a hair above the gate's 0.6 floor.)
NEW_FEATURE = "month"
ROWS_PER_MONTH = 4000  # as the reference loop test: enough for the gate's floor (roc_auc 0.6)


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


def add_feature(pipeline_file: Path, feature: str) -> list[str]:
    """The edit a user makes: one more name in the numeric features list. Returns the changed lines."""
    before = pipeline_file.read_text()
    assert before.count(FEATURES_LINE) == 1, "the shipped numeric features line changed: update FEATURES_LINE"
    after = before.replace(FEATURES_LINE, FEATURES_LINE.replace("]\n", f", {feature}]\n"))
    pipeline_file.write_text(after)
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and not line.startswith(("+++", "---"))]


def champion_onnx_inputs(model_name: str) -> list[str]:
    import mlflow
    import onnx

    from airflow_mlops.core import contracts, registry
    from airflow_mlops.hooks.mlflow import MlflowHook

    client = MlflowHook().get_conn()
    version = registry.alias_version(client, model_name, contracts.ALIAS_CHAMPION)
    run_id = client.get_model_version(model_name, version).run_id
    path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=contracts.ARTIFACT_ONNX)
    return [i.name for i in onnx.load(path).graph.input]


@pytest.mark.slow
def test_a_new_feature_is_one_line_of_the_pipeline_file(airflow_db: None, mlops_env: Path) -> None:
    import pyarrow.parquet as pq
    from airflow.utils.state import DagRunState

    project = copy_project(mlops_env / "project")
    landing = mlops_env / "storage" / "flights_delay" / "landing"
    landing.mkdir(parents=True)
    for month in (1, 2, 3):
        frame = data.flights((month,), ROWS_PER_MONTH)
        frame.to_parquet(landing / f"flights_2013-{month:02d}.parquet", index=False)

    started = time.perf_counter()
    changed = add_feature(pipeline_file(project), NEW_FEATURE)
    assert changed == ["-" + FEATURES_LINE.rstrip("\n"), "+" + FEATURES_LINE.replace("]", f", {NEW_FEATURE}]").rstrip()]
    # The DAG files read the pipeline folder of their own project and the storage root when parsed.
    training = runpy.run_path(str(project / "dags" / "continuous_training.py"))["dag"]
    serving = runpy.run_path(str(project / "dags" / "batch_serving.py"))["dag"]
    parsed = time.perf_counter()
    trained = training.test(
        logical_date=pendulum.datetime(2013, 3, 1, tz="UTC"), run_conf={"pipeline": "flights_delay"}
    )
    assert trained.state == DagRunState.SUCCESS
    promoted = time.perf_counter()
    served = serving.test(logical_date=pendulum.datetime(2013, 4, 1, tz="UTC"))  # serves March
    assert served.state == DagRunState.SUCCESS
    done = time.perf_counter()
    seconds = done - started
    phases = f"parse {parsed - started:.1f} s, training {promoted - parsed:.1f} s, serving {done - promoted:.1f} s"
    print(f"feature velocity: {NEW_FEATURE!r} added by a one-line edit, served {seconds:.1f} s later ({phases})")

    # The model takes it as an input ...
    assert NEW_FEATURE in champion_onnx_inputs("flights_delay")
    storage = mlops_env / "storage" / "flights_delay"
    # ... scoring logs it with every served row ...
    (serving_log,) = (storage / "serving_log").glob("flights_2013-03/**/*.parquet")
    logged = pq.read_table(serving_log)
    assert NEW_FEATURE in logged.column_names and logged.num_rows > 0
    assert set(logged.column(NEW_FEATURE).to_pylist()) == {3}  # the served month
    # ... and the drift check compares it with the training reference.
    summary = json.loads((storage / "drift" / "flights_2013-03" / "labelled" / "summary.json").read_text())
    compared = {c["column"]: c for c in summary["result"]["features"]}
    assert compared[NEW_FEATURE]["status"] == "tested" and compared[NEW_FEATURE]["current_values"] > 0, compared
    # 38-106 s measured on a shared 2-core machine (docs/training.md); the bound catches a change that makes a
    # new feature cost a slow path (a rebuild, a recomputed suite), not the noise of a busy machine.
    assert seconds < 300, f"edit to served batch took {seconds:.0f} s"
