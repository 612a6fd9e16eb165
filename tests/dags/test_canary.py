"""The canary through the reference DAGs, on real flights: with ``gate.canary_batches: 2`` a candidate that
passes the gate while a champion serves becomes the ``challenger``, not the champion; ``batch_serving``
shadow-scores it on the next two months and, since it agrees with the champion and is as good on the
labelled rows, promotes it through the usual compare-and-set under the promotion lease.

The first training has no champion to shadow against and is promoted at once. A challenger that
disagrees or underperforms is dropped: ``tests/operators/test_canary.py``.
"""

from __future__ import annotations

import json
import runpy
import shutil
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.support import data

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
PIPELINE = """\
model_name: flights_canary
training:
  task: binary
  target: arr_delayed_15
  features:
    numeric: [hour, minute, sched_dep_time, sched_arr_time, distance]
    categorical: [carrier, origin, dest]
  estimator: {type: lightgbm, params: {n_estimators: 60, learning_rate: 0.1, num_leaves: 31}}
  split: {method: time, column: sched_dep_ts, train: 0.7, validation: 0.15, test: 0.15}
  seed: 42
data:
  landing: landing
  training_pattern: "flights_*.parquet"
  batch_pattern: "batch_{{ data_interval_start.strftime('%Y-%m') }}.parquet"
  watermark_column: sched_dep_ts
validation:
  suite: include/expectations/flights.json
gate:
  # The canary is under test, not the champion comparison: a second training on one more month passes it.
  policy: {baseline: {kind: prior}, compare: {tolerance: {primary: 0.1, scoring_rule: 0.1}}}
  canary_batches: 2          # the thresholds are the defaults: min_agreement 0.9, max_quality_drop 0.01
serving:
  schedule: "@monthly"
  passthrough_columns: [flight, sched_dep_ts, arr_delayed_15]   # labelled batches: quality of both models
"""


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


def land(landing: Path, name: str, month: int, rows: int = 3000) -> None:
    landing.mkdir(parents=True, exist_ok=True)
    data.flights((month,), rows).to_parquet(landing / name, index=False)


def states(run: Any) -> dict[str, Any]:
    return {ti.task_id.split(".", 1)[-1]: ti.state for ti in run.get_task_instances() if ti.map_index in (-1, 0)}


@pytest.mark.slow
def test_a_canaried_candidate_is_the_challenger_until_two_agreeing_shadow_batches_promote_it(
    airflow_db: None, mlops_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.utils.state import DagRunState, TaskInstanceState

    from airflow_mlops.core import contracts, registry
    from airflow_mlops.core.canary.record import TAG_STATUS, recorded_verdict
    from airflow_mlops.hooks.mlflow import MlflowHook

    pipelines = mlops_env / "project" / "include" / "pipelines"
    pipelines.mkdir(parents=True)
    shutil.copytree(REPO / "include" / "expectations", mlops_env / "project" / "include" / "expectations")
    (pipelines / "flights_canary.yaml").write_text(PIPELINE)
    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(pipelines))
    landing = mlops_env / "storage" / "flights_canary" / "landing"
    for month in (1, 2, 3):
        land(landing, f"flights_2013-{month:02d}.parquet", month)
    # The DAG files read the pipelines folder and the storage root when parsed: parse them now.
    module = runpy.run_path(str(DAGS / "continuous_training.py"))
    training, serving = module["dag"], runpy.run_path(str(DAGS / "batch_serving.py"))["dag"]
    conf = {"pipeline": "flights_canary"}
    client = MlflowHook().get_conn()

    first = training.test(logical_date=pendulum.datetime(2013, 4, 1, tz="UTC"), run_conf=conf)
    assert first.state == DagRunState.SUCCESS
    assert (states(first)["promote"], states(first)["name_challenger"]) == (
        TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED)  # fmt: skip
    assert registry.alias_version(client, "flights_canary", "champion") == "1"

    land(landing, "flights_2013-04.parquet", 4)
    second = training.test(logical_date=pendulum.datetime(2013, 5, 1, tz="UTC"), run_conf=conf)
    assert second.state == DagRunState.SUCCESS
    assert (states(second)["name_challenger"], states(second)["promote"]) == (
        TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED)  # fmt: skip
    assert registry.alias_version(client, "flights_canary", "champion") == "1"  # not promoted...
    assert registry.alias_version(client, "flights_canary", "challenger") == "2"  # ...but in shadow
    assert client.get_model_version("flights_canary", "2").tags[TAG_STATUS] == "challenger"

    for month in (5, 6):
        land(landing, f"batch_2013-{month:02d}.parquet", month)
    may = serving.test(logical_date=pendulum.datetime(2013, 6, 1, tz="UTC"))  # serves May
    assert may.state == DagRunState.SUCCESS
    assert (states(may)["judge_challenger"], states(may)["promote_challenger"]) == (
        TaskInstanceState.SUCCESS, TaskInstanceState.SKIPPED)  # fmt: skip
    waiting = recorded_verdict(client.get_model_version("flights_canary", "2").tags)
    assert waiting["decision"] == "wait" and waiting["batches"] == 1, waiting
    report = json.loads(
        (mlops_env / "storage" / "flights_canary" / "shadow" / "batch_2013-05" / "report.json").read_text()
    )
    assert report["challenger"]["version"] == "2" and report["champion"]["version"] == "1"
    assert report["quality"]["rows"] > 2000 and set(report["quality"]["challenger"]) >= {"roc_auc", "log_loss"}

    june = serving.test(logical_date=pendulum.datetime(2013, 7, 1, tz="UTC"))  # serves June
    assert june.state == DagRunState.SUCCESS
    assert (states(june)["judge_challenger"], states(june)["promote_challenger"]) == (
        TaskInstanceState.SUCCESS, TaskInstanceState.SUCCESS)  # fmt: skip
    tags = client.get_model_version("flights_canary", "2").tags
    verdict = recorded_verdict(tags)
    print("canary verdict:", verdict)
    assert verdict["decision"] == "promote" and verdict["batches"] == 2 and verdict["agreement"] >= 0.9
    assert verdict["labelled_rows"] > 4000 and verdict["quality_drop"] <= 0.01
    assert tags[TAG_STATUS] == "passed"
    assert registry.alias_version(client, "flights_canary", "champion") == "2"
    assert registry.alias_version(client, "flights_canary", "challenger") is None
    assert registry.alias_version(client, "flights_canary", "previous_champion") == "1"
    history = registry.promotion_history(client.get_registered_model("flights_canary").tags)
    assert [(h["from"], h["to"]) for h in history] == [(None, "1"), ("1", "2")]
    assert "batch_serving" in history[-1]["key"] and "promote_challenger" in history[-1]["key"]
    # The verdict is in the evidence bundle of the version's gate decision.
    evidence = Path(tags[contracts.TAG_GATE_EVIDENCE_URI]).parent / "canary.json"
    assert json.loads(evidence.read_text())["verdict"]["decision"] == "promote"
