"""The whole loop of the reference DAGs on real Airflow services, driven as a user drives it.

Services: api-server, scheduler, dag-processor and triggerer with LocalExecutor, a private PostgreSQL
metadata database, an MLflow tracking server, and a local storage root. The test acts through REST
API v2 with a bearer token, as the UI does:

1. January-March land; ``continuous_training`` is triggered from its form (pipeline ``flights_delay``):
   it trains, gates, registers and promotes version 1 as ``champion``.
2. June lands (its delay surge drifts the label); ``batch_serving`` is triggered for June's interval:
   it scores the month's partition with the champion and its drift check emits ``x-mlops://flights_delay/drift``.
3. That event, not the test, starts a ``continuous_training`` run (run type ``asset_triggered``), which
   retrains on every landed month and moves ``champion`` to version 2.
4. The task pages of that run are opened in headless Chromium, signed in, and their extra links are
   looked for; every extra link of the run's tasks and of the serving run's (training run, gate evidence
   and model card, registered version, predictions, drift and quality reports) is then opened in the same
   browser: through the plugin's ``go`` route it must land on a real page. Screenshots: ``test-artifacts/``.

The storage root has no web server of its own here (``[mlops] reports_url`` empty): file links open
through the plugin, behind Airflow's sign-in.

Months land as samples (6000 flights each) to keep training short; June's label drift is far above
sampling noise at that size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, MlopsStack
from tests.support.airflow_services import (
    AirflowServices,
    ApiClient,
    upstream_events,
    wait_for_run_caused_by,
)
from tests.support.browser import TOKEN_COOKIE, chromium_binary, headless_chromium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
# No reports address: file links resolve to the plugin's own report and table pages.
AIRFLOW_DEPLOYMENT = Deployment(dags_folder=REPO / "dags", extra_env={"AIRFLOW__MLOPS__REPORTS_URL": ""})
PIPELINE = MODEL = "flights_delay"
TRAINING, SERVING = "continuous_training", "batch_serving"
DRIFT_URI = f"x-mlops://{PIPELINE}/drift"
SAMPLE = 6000


def land(storage_root: Path, month: int) -> None:
    """Write one month where the pipeline's landing folder is, as ``airflow_mlops.cli.replay`` does."""
    from tests.support.data import flights

    landing = storage_root / PIPELINE / "landing"
    landing.mkdir(parents=True, exist_ok=True)
    partial = landing / f".flights_2013-{month:02d}.parquet.tmp"
    flights((month,), SAMPLE).to_parquet(partial, index=False)
    partial.rename(landing / f"flights_2013-{month:02d}.parquet")


def champion(mlops_stack: MlopsStack) -> str | None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(mlops_stack.mlflow.url, registry_uri=mlops_stack.mlflow.url)
    try:
        return str(client.get_model_version_by_alias(MODEL, "champion").version)
    except MlflowException:
        return None


def fail_scheduled_runs(api: ApiClient, dag_id: str, timeout: float = 60.0) -> None:
    """Mark the run the scheduler creates on unpausing (the latest real month) failed, as a user would.

    With ``max_active_runs=1`` it would otherwise wait hours for data that never lands, ahead of the
    replayed month the test triggers.
    """
    run = api.wait_for_new_run(dag_id, set(), timeout=timeout, run_type="scheduled")
    api.set_run_state(dag_id, run["dag_run_id"], "failed")


@dataclass(frozen=True)
class Loop:
    first_champion: str | None
    serving_run: str
    retrain_run: dict[str, Any]
    retrain_events: list[dict[str, Any]]


@pytest.fixture(scope="module")
def loop(airflow: AirflowServices, mlops_stack: MlopsStack) -> Loop:
    api = airflow.api
    for dag_id in (TRAINING, SERVING):
        api.wait_for_dag(dag_id)
        api.unpause(dag_id)
    fail_scheduled_runs(api, SERVING)

    for month in (1, 2, 3):
        land(mlops_stack.storage_root, month)
    first = api.trigger(TRAINING, conf={"pipeline": PIPELINE})
    api.wait_for_run(TRAINING, first, timeout=400)
    first_champion = champion(mlops_stack)
    # Its own ingest event may queue one more run (which sees the event is its own and trains nothing):
    # let it finish, so that the only new run later is the one the drift event starts.
    known = {run["dag_run_id"] for run in api.wait_until_idle(TRAINING, timeout=180)}

    land(mlops_stack.storage_root, 6)
    serving = api.trigger(SERVING, conf={"pipeline": PIPELINE}, logical_date="2013-07-01T00:00:00Z")
    api.wait_for_run(SERVING, serving, timeout=400)
    retrain = wait_for_run_caused_by(airflow.api, TRAINING, known, (DRIFT_URI, SERVING, serving), timeout=180)
    api.wait_for_run(TRAINING, retrain["dag_run_id"], timeout=400)
    events = upstream_events(api, TRAINING, retrain["dag_run_id"])
    return Loop(first_champion, serving, api.run(TRAINING, retrain["dag_run_id"]), events)


def test_a_drift_event_starts_the_retraining_run(airflow: AirflowServices, loop: Loop) -> None:
    run = loop.retrain_run
    assert (run["run_type"], run["triggered_by"]) == ("asset_triggered", "asset"), f"{run}\n{airflow.log_tails()}"
    sources = {(e["uri"], e["source_dag_id"], e["source_run_id"]) for e in loop.retrain_events}
    assert (DRIFT_URI, SERVING, loop.serving_run) in sources, f"{loop.retrain_events}\n{airflow.log_tails()}"


def test_the_retraining_moves_the_champion(airflow: AirflowServices, mlops_stack: MlopsStack, loop: Loop) -> None:
    assert loop.first_champion == "1", airflow.log_tails()
    tis = airflow.api.task_instances(TRAINING, loop.retrain_run["dag_run_id"])
    states = {ti["task_id"]: ti["state"] for ti in tis}
    # A gate rejection skips promotion (on_reject: skip) and the run still succeeds: say which it was.
    assert states.get(f"{PIPELINE}.promote") == "success", f"{states}\n{airflow.log_tails()}"
    assert champion(mlops_stack) == "2", airflow.log_tails()


def test_task_logs_are_in_airflow(airflow: AirflowServices, loop: Loop) -> None:
    """Run by a scheduler, a task's log is where the UI reads it (not only in a terminal)."""
    run_id = loop.retrain_run["dag_run_id"]
    events = airflow.api.task_log(TRAINING, run_id, f"{PIPELINE}.train")
    assert any(event.startswith(f"Trained {PIPELINE} on ") for event in events), events[-20:]


# (task id, run of the loop, map index) -> extra link names, MLflow's or a report's
MLFLOW_LINKS = {f"{PIPELINE}.train": "MLflow run", f"{PIPELINE}.promote": "MLflow model version"}
REPORT_LINKS = {f"{PIPELINE}.validate": "Validation report"}


def _go(airflow: AirflowServices, link: str) -> str:
    """Where an extra link leads now: the plugin's ``go`` route answers a signed-in request with a redirect."""
    import httpx

    assert link.startswith(f"{airflow.api_url}/mlops/go/"), link  # ids only, resolved when clicked
    answer = httpx.get(link, headers={"Authorization": f"Bearer {airflow.api.token}"}, timeout=30)
    assert answer.status_code == 302, (link, answer.status_code, answer.text)
    assert httpx.get(link, timeout=30).status_code == 401  # not without signing in
    return str(answer.headers["location"])


def test_rest_api_lists_the_extra_links(airflow: AirflowServices, mlops_stack: MlopsStack, loop: Loop) -> None:
    import httpx

    run_id = loop.retrain_run["dag_run_id"]
    for task_id, name in MLFLOW_LINKS.items():
        links = airflow.api.links(TRAINING, run_id, task_id)
        assert _go(airflow, links.get(name, "")).startswith(f"{mlops_stack.mlflow.url}/#/"), (task_id, links)
    for task_id, name in REPORT_LINKS.items():
        links = airflow.api.links(TRAINING, run_id, task_id)
        assert _go(airflow, links.get(name, "")).endswith(".html"), (task_id, links)
    drift = airflow.api.links(SERVING, loop.serving_run, f"{PIPELINE}.check_drift", map_index=0)
    for link in (links[name], drift.get("Drift report", "")):  # the links lead to the reports themselves
        target = _go(airflow, link)
        assert target.startswith("/mlops/reports/"), target  # the plugin's route, under the api-server
        headers = {"Authorization": f"Bearer {airflow.api.token}"}
        answer = httpx.get(airflow.api_url + target, headers=headers, timeout=30)
        assert answer.status_code == 200 and b"<html" in answer.content[:4096].lower(), target


def _browse(
    airflow: AirflowServices,
    artifacts_dir: Path,
    tmp_path: Path,
    run_id: str,
    expected: dict[str, str],
    timeout: float = 90.0,
) -> None:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium): the UI check needs a headless browser")
    api = airflow.api
    with headless_chromium(binary, tmp_path / "chromium.log") as page:
        for task_id, name in expected.items():
            page.open(api.ui_url(TRAINING, run_id, task_id, tab="details"), cookies={TOKEN_COOKIE: api.token})
            target = api.links(TRAINING, run_id, task_id)[name]
            try:
                state = page.wait_for(lambda s, name=name: any(text == name for text, _ in s.links), timeout)
            finally:
                page.screenshot(artifacts_dir / f"loop-{task_id}.png")
            assert (name, target) in state.links, state.links


def test_task_pages_show_the_mlflow_links_in_a_browser(
    airflow: AirflowServices, loop: Loop, artifacts_dir: Path, tmp_path: Path
) -> None:
    _browse(airflow, artifacts_dir, tmp_path, loop.retrain_run["dag_run_id"], MLFLOW_LINKS)


def test_task_pages_show_the_report_links_in_a_browser(
    airflow: AirflowServices, loop: Loop, artifacts_dir: Path, tmp_path: Path
) -> None:
    # The MLflow links show that the page renders its links within seconds; no need to wait long here.
    _browse(airflow, artifacts_dir, tmp_path, loop.retrain_run["dag_run_id"], REPORT_LINKS, timeout=20)


# (DAG, which run, task, map index) -> {extra link: text the page it opens shows once rendered}; the MLflow
# UI renders its pages with scripts, so its text is what shows the page is real.
def _every_link(loop: Loop, mlops_stack: MlopsStack) -> list[tuple[str, str, str, int, dict[str, str]]]:
    retrain, serving = loop.retrain_run["dag_run_id"], loop.serving_run
    version = {"MLflow model version": "Version {version}"}
    return [
        (TRAINING, retrain, f"{PIPELINE}.train", -1, {"MLflow run": "{run_id}"}),
        (TRAINING, retrain, f"{PIPELINE}.validate", -1, {"Validation report": "Great Expectations"}),
        (TRAINING, retrain, f"{PIPELINE}.gate", -1, {"Model card": "Model card: gate", "Gate evidence": '"verdict"'}),
        (TRAINING, retrain, f"{PIPELINE}.register", -1, version),
        (TRAINING, retrain, f"{PIPELINE}.promote", -1, version),
        (SERVING, serving, f"{PIPELINE}.score", 0, {"Predictions": "rows; the first", "Shadow report": "challenger"}),
        (
            SERVING,
            serving,
            f"{PIPELINE}.check_drift",
            0,
            {"Drift report": "Drift report", "Quality report": "Model quality"},
        ),
    ]


_PAGE = (
    "JSON.stringify({url: location.href, ready: document.readyState,"
    " status: (performance.getEntriesByType('navigation')[0] || {}).responseStatus || 0,"
    " text: document.body ? document.body.innerText : ''})"
)


def _opened(page: Any, link: str, expected: str, timeout: float = 90.0) -> dict[str, Any]:
    """Navigate to ``link`` and wait until the page it redirects to shows ``expected``."""
    import json
    import time

    page.call("Page.navigate", url=link)
    deadline = time.monotonic() + timeout
    while True:
        seen = json.loads(page.evaluate(_PAGE) or "{}")
        landed = seen.get("url") not in (None, "", link, "about:blank") and seen.get("ready") == "complete"
        if landed and expected in seen["text"]:
            return dict(seen)
        if time.monotonic() > deadline:
            raise AssertionError(f"{link} never showed {expected!r}: at {seen.get('url')} ({seen.get('status')}):\n"
                                 f"{str(seen.get('text'))[:2000]}")  # fmt: skip
        time.sleep(1)


def test_every_extra_link_opens_its_page(
    airflow: AirflowServices, mlops_stack: MlopsStack, loop: Loop, artifacts_dir: Path, tmp_path: Path
) -> None:
    """Signed in, each link of a real task opens through the plugin's ``go`` route onto a real page: MLflow's
    run and version pages, the plugin's report and predictions pages (HTTP 200, the expected content)."""
    from urllib.parse import parse_qsl, urlsplit

    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium): the link check needs a headless browser")
    opened: dict[tuple[str, str], str] = {}
    with headless_chromium(binary, tmp_path / "chromium.log") as page:
        page.call("Network.enable")
        page.call("Page.enable")
        page.call("Network.setCookie", name=TOKEN_COOKIE, value=airflow.api.token, url=airflow.api_url, path="/",
                  httpOnly=True, sameSite="Lax")  # fmt: skip
        for dag_id, run_id, task_id, map_index, expected in _every_link(loop, mlops_stack):
            links = airflow.api.links(dag_id, run_id, task_id, map_index=map_index)
            if "Shadow report" in expected and "Shadow report" not in links:
                expected = {k: v for k, v in expected.items() if k != "Shadow report"}  # no challenger this month
            assert set(expected) <= set(links), (task_id, links)
            for name, text in expected.items():
                link = links[name]
                assert link.startswith(f"{airflow.api_url}/mlops/go/"), (task_id, name, link)
                ids = dict(parse_qsl(urlsplit(link).query))
                seen = _opened(page, link, text.format(**ids))
                page.screenshot(artifacts_dir / f"link-{task_id}-{name.replace(' ', '-').lower()}.png")
                if seen["url"].startswith(airflow.api_url):  # the plugin's pages: the document's own status
                    assert seen["status"] == 200, (task_id, name, seen["url"], seen["status"])
                opened[(task_id, name)] = seen["url"]
    mlflow = {key: url for key, url in opened.items() if url.startswith(mlops_stack.mlflow.url)}
    assert set(mlflow) == {(f"{PIPELINE}.{t}", n) for t, n in
                           [("train", "MLflow run"), ("register", "MLflow model version"),
                            ("promote", "MLflow model version")]}, opened  # fmt: skip
