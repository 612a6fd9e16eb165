"""``[mlops] pipelines_folder`` outside the project: the reference DAGs find the files a deployment keeps there,
their suites beside them, and an empty folder still loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core.pipeline.scaffold import scaffold
from tests.support.weather import TARGET, weather_visibility

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"


def bag(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__MLOPS__PIPELINES_FOLDER", str(folder))
    dags = DagBag(dag_folder=str(DAGS))
    assert dags.import_errors == {}
    return dags


def test_an_empty_pipelines_folder_loads_both_dags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pipelines").mkdir()
    dags = bag(tmp_path / "pipelines", monkeypatch)
    assert {t.task_id for t in dags.dags["continuous_training"].tasks} == {"choose_pipelines"}
    assert {t.task_id for t in dags.dags["batch_serving"].tasks} == {"choose_pipelines"}


def test_files_outside_the_project_are_served_with_their_own_or_their_models_suite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = tmp_path / "weather.parquet"
    weather_visibility().to_parquet(table)
    folder = tmp_path / "etc" / "mlops" / "pipelines"  # a deployment's folder, no include/ anywhere
    scaffold(table, TARGET, out=folder, name="visibility")
    scaffold(table, TARGET, out=folder, name="visibility_bare", suite=False)
    dags = bag(folder, monkeypatch)

    training = dags.dags["continuous_training"]
    assert training.get_task("visibility.validate").suite_uri == str(folder / "visibility.suite.json")
    bare = training.get_task("visibility_bare.validate")
    assert bare.suite_uri is None and bare.reference_uri is not None  # inferred from the snapshot
    assert training.get_task("visibility_bare.train").suite_uri == (
        "{{ ti.xcom_pull(task_ids='visibility_bare.validate')['suite_uri'] }}"  # logged with the model
    )

    serving = dags.dags["batch_serving"]
    with_suite = serving.get_task("visibility.validate").partial_kwargs
    assert with_suite["suite_uri"] == str(folder / "visibility.suite.json") and with_suite["model_name"] is None
    validate = serving.get_task("visibility_bare.validate")
    assert validate.partial_kwargs["suite_uri"] is None
    assert validate.partial_kwargs["model_name"] == "visibility_bare"  # the champion's suite
    assert "visibility_bare.resolve_champion" in validate.upstream_task_ids
