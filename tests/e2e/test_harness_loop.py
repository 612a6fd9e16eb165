"""The provider's operators on real Airflow services: an ingest run's asset event starts training.

This is the harness's own loop (``tests/e2e/dags``): the test triggers ingestion through REST API v2,
the dataset asset event schedules the training DAG, and the gate, registration and promotion move the
``champion`` alias on the MLflow server. Then the training run's task pages are opened in headless
Chromium, signed in as the UI user, and their extra links are looked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import Deployment, MlopsStack
from tests.support.airflow_services import AirflowServices
from tests.support.browser import TOKEN_COOKIE, chromium_binary, headless_chromium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

AIRFLOW_DEPLOYMENT = Deployment(dags_folder=Path(__file__).parent / "dags")
MODEL = "e2e_flights_delay"
TRAINING = "mlops_e2e_training"


@pytest.fixture(scope="module")
def airflow_extra_env(mlops_stack: MlopsStack) -> dict[str, str]:
    from tests.support.data import flights

    source = mlops_stack.workdir / "landing" / "flights.parquet"
    source.parent.mkdir()
    flights(months=[1, 2], sample=6000).to_parquet(source, index=False)
    return {"MLOPS_E2E_SOURCE": str(source), "MLOPS_E2E_REPORTS_URL": mlops_stack.reports_url}


def champion(mlops_stack: MlopsStack, model: str = MODEL) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient(mlops_stack.mlflow.url).get_model_version_by_alias(model, "champion").version)
    except MlflowException:
        return None


@dataclass(frozen=True)
class Loop:
    champion_before: str | None
    training_run: dict


@pytest.fixture(scope="module")
def loop(airflow: AirflowServices, mlops_stack: MlopsStack) -> Loop:
    """Trigger ingestion as a user would; wait for the training run its asset event schedules."""
    api = airflow.api
    for dag_id in ("mlops_e2e_ingest", TRAINING):
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
    before = champion(mlops_stack)
    ingest_run = api.trigger("mlops_e2e_ingest")
    api.wait_for_run("mlops_e2e_ingest", ingest_run)
    training = api.wait_for_new_run(TRAINING, set(), timeout=120)
    api.wait_for_run(TRAINING, training["dag_run_id"], timeout=400)
    return Loop(before, training)


def test_ingest_event_triggers_training_that_moves_the_champion(
    airflow: AirflowServices, mlops_stack: MlopsStack, loop: Loop
) -> None:
    run = loop.training_run
    assert (run["run_type"], run["triggered_by"]) == ("asset_triggered", "asset"), run
    assert loop.champion_before is None
    assert champion(mlops_stack) == "1", airflow.log_tails()


def test_rest_api_lists_the_extra_links(airflow: AirflowServices, mlops_stack: MlopsStack, loop: Loop) -> None:
    run_id = loop.training_run["dag_run_id"]
    links = airflow.api.links(TRAINING, run_id, "train")
    assert links["MLflow run"].startswith(f"{mlops_stack.mlflow.url}/#/experiments/"), links
    links = airflow.api.links(TRAINING, run_id, "validate")
    assert links["Validation report"].startswith(f"{mlops_stack.reports_url}/e2e_flights/validation/"), links
    report = httpx.get(links["Validation report"], timeout=30)
    assert report.status_code == 200 and "<html" in report.text.lower(), (report.status_code, report.text[:500])
    links = airflow.api.links(TRAINING, run_id, "promote")
    assert links["MLflow model version"] == f"{mlops_stack.mlflow.url}/#/models/{MODEL}/versions/1", links


def test_task_pages_show_the_extra_links_in_a_browser(
    airflow: AirflowServices, mlops_stack: MlopsStack, loop: Loop, artifacts_dir: Path, tmp_path: Path
) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium): the UI check needs a headless browser")
    run_id = loop.training_run["dag_run_id"]
    expected = {"train": "MLflow run", "validate": "Validation report", "promote": "MLflow model version"}
    with headless_chromium(binary, tmp_path / "chromium.log") as page:
        for task_id, link_name in expected.items():
            url = airflow.api.ui_url(TRAINING, run_id, task_id, tab="details")
            page.open(url, cookies={TOKEN_COOKIE: airflow.api.token})
            target = airflow.api.links(TRAINING, run_id, task_id)[link_name]
            try:
                state = page.wait_for(lambda s, name=link_name: any(text == name for text, _ in s.links), 90)
            finally:
                page.screenshot(artifacts_dir / f"harness-{task_id}.png")
            assert (link_name, target) in state.links, state.links
