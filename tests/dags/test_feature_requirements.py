"""Feature requirements in the reference DAGs: a file that breaks them does not load, and training
refuses a spec edited to break them after the DAG was parsed."""

from __future__ import annotations

import runpy
from pathlib import Path

import pendulum
import pytest

from airflow_mlops.core.pipeline import discover
from tests.support import data
from tests.support.project import copy_project, pipeline_file

REPO = Path(__file__).resolve().parents[2]
FEATURES_LINE = (
    "    numeric: [hour, minute, sched_dep_time, sched_arr_time, distance, sched_dow, temp, visib, precip,"
    " wind_speed]\n"
)


def add_numeric_feature(path: Path, feature: str) -> None:
    text = path.read_text()
    assert text.count(FEATURES_LINE) == 1, "the shipped numeric features line changed: update FEATURES_LINE"
    path.write_text(text.replace(FEATURES_LINE, FEATURES_LINE.replace("]\n", f", {feature}]\n")))


def test_every_training_task_carries_its_pipeline_files_requirements() -> None:
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=str(REPO / "dags" / "continuous_training.py")).dags["continuous_training"]
    for pipeline in discover(REPO / "include" / "pipelines", REPO):
        train = dag.get_task(f"{pipeline.name}.train")
        assert "feature_requirements" in train.template_fields
        assert train.feature_requirements == pipeline.feature_requirements.to_dict()
        assert train.feature_requirements["forbidden"], pipeline.name  # both shipped files declare some
    flights = dag.get_task("flights_delay.train").feature_requirements
    assert flights["forbidden"]["dep_delay"] == "known only after departure" and len(flights["serving_columns"]) == 22


def test_a_dag_whose_pipeline_file_breaks_a_requirement_does_not_load(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    project = copy_project(tmp_path / "project")
    add_numeric_feature(pipeline_file(project), "dep_delay")
    bag = DagBag(dag_folder=str(project / "dags"))
    assert "continuous_training" not in bag.dags and "batch_serving" not in bag.dags
    errors = "\n".join(bag.import_errors.values())
    assert "flights_delay.yaml: 2 feature requirement(s) broken" in errors
    assert "- feature 'dep_delay' breaks forbidden: known only after departure" in errors


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


@pytest.mark.slow
def test_a_spec_edited_after_the_dag_was_parsed_is_refused_at_training(
    airflow_db: None, mlops_env: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    import mlflow
    from airflow.utils.state import DagRunState, TaskInstanceState

    from airflow_mlops.hooks.mlflow import MlflowHook

    project = copy_project(mlops_env / "project")
    landing = mlops_env / "storage" / "flights_delay" / "landing"
    landing.mkdir(parents=True)
    data.flights((1,), 1500).to_parquet(landing / "flights_2013-01.parquet", index=False)
    dag = runpy.run_path(str(project / "dags" / "continuous_training.py"))["dag"]  # parsed as shipped
    add_numeric_feature(pipeline_file(project), "arr_delay")  # then edited: the train task reads the file

    run = dag.test(logical_date=pendulum.datetime(2013, 2, 1, tz="UTC"), run_conf={"pipeline": "flights_delay"})
    assert run.state == DagRunState.FAILED
    states = {ti.task_id.split(".", 1)[-1]: ti.state for ti in run.get_task_instances()}
    assert states["validate"] == TaskInstanceState.SUCCESS and states["train"] == TaskInstanceState.FAILED
    assert states["gate"] == TaskInstanceState.UPSTREAM_FAILED and states["register"] != TaskInstanceState.SUCCESS
    output = capfd.readouterr()
    assert "- feature 'arr_delay' breaks forbidden: known only after arrival" in output.out + output.err
    MlflowHook().activate()
    experiment = mlflow.MlflowClient().get_experiment_by_name("mlops-flights_delay")
    assert experiment is None or not mlflow.MlflowClient().search_runs([experiment.experiment_id])
