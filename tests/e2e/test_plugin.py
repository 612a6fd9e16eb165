"""The provider's plugin in a real api-server, signed in through Airflow and driven in headless Chromium.

The api-server runs with the end-to-end fixtures' SimpleAuthManager (``all_admins`` off, one ``admin`` user)
and loads the plugin from the provider's ``get_provider_info()["plugins"]`` (``lazy_discover_providers``
off; an installed wheel also loads it through its ``airflow.plugins`` entry point). The MLflow server and
the storage root are the deployment's own; the model's state is built with the registry's and the drift
policy's code: versions 1 and 2 registered, version 1 promoted, then version 2 after a retrain.

1. Anonymous requests to the view, the reports and the rollback are refused; the REST API lists the plugin.
2. Signed in, the UI's plugin page embeds the view; the view lists versions 1 and 2 and both alias moves;
   the model card link opens the real report.
3. The rollback is confirmed in the browser's form; the champion goes back to version 1, recorded as the
   signed-in user's decision.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts, registry
from airflow_mlops.core.storage import StorageRoot
from tests.core.registry.support import NAME
from tests.e2e.conftest import Deployment, MlopsStack
from tests.plugins.support import CARD, DRIFT_REPORT, drift_state, retrained_model
from tests.support.airflow_services import USERNAME, AirflowServices
from tests.support.browser import TOKEN_COOKIE, Page, chromium_binary, headless_chromium

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
AIRFLOW_DEPLOYMENT = Deployment(
    dags_folder=REPO / "tests" / "e2e" / "dags",
    components=(),  # the api-server alone serves the plugin
    extra_env={
        "AIRFLOW__CORE__LAZY_DISCOVER_PROVIDERS": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
    },
)


@pytest.fixture(scope="module")
def model(mlops_stack: MlopsStack) -> Any:
    """The MLflow client of the deployment's server, after version 2 replaced version 1 as champion."""
    from mlflow import MlflowClient

    client = MlflowClient(mlops_stack.mlflow.url, registry_uri=mlops_stack.mlflow.url)
    root = StorageRoot(str(mlops_stack.storage_root))
    retrained_model(client, root, None)
    drift_state(root)
    return client


@pytest.fixture
def browser(tmp_path: Path, airflow: AirflowServices) -> Iterator[Page]:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium): the UI check needs a headless browser")
    with headless_chromium(binary, tmp_path / "chromium.log") as page:
        page.call("Network.enable")
        page.call("Network.setCookie", name=TOKEN_COOKIE, value=airflow.api.token, url=airflow.api_url, path="/",
                  httpOnly=True, sameSite="Lax")  # fmt: skip
        yield page


def test_anonymous_requests_are_refused(airflow: AirflowServices, model: Any) -> None:
    import httpx

    base = airflow.api_url
    for path in ("/mlops/", f"/mlops/models/{NAME}", f"/mlops/reports/{DRIFT_REPORT}"):
        answer = httpx.get(base + path, timeout=30)
        assert answer.status_code == 401, (path, answer.status_code, answer.text)
    form = {"confirm": "yes", "expected": "2", "target": "1"}
    assert httpx.post(f"{base}/mlops/models/{NAME}/rollback", data=form, timeout=30).status_code == 401
    assert registry.alias_version(model, NAME, contracts.ALIAS_CHAMPION) == "2"
    signed_in = httpx.get(
        f"{base}/mlops/reports/{DRIFT_REPORT}", headers={"Authorization": f"Bearer {airflow.api.token}"}
    )
    assert signed_in.status_code == 200 and "drift report of 2013-04-08" in signed_in.text
    plugins = airflow.api.get("/api/v2/plugins")["plugins"]
    (ours,) = [p for p in plugins if p["name"] == "airflow_mlops"]
    assert ours["external_views"][0]["href"] == "/mlops/" and ours["fastapi_apps"][0]["url_prefix"] == "/mlops"
    errors = airflow.api.get("/api/v2/plugins/importErrors")["import_errors"]
    # Listed both as an entry point and in the provider info (as the OpenLineage provider does), the plugin
    # is loaded once; with lazy provider discovery off, Airflow notes the second listing as "already registered".
    real = [e for e in errors if "mlops" in f"{e['source']} {e['error']}" and "already registered" not in e["error"]]
    assert not real, errors


def _frame_text(page: Page) -> str:
    return str(page.evaluate("(() => { const f = document.querySelector('iframe');"
                             " return f && f.contentDocument && f.contentDocument.body ?"
                             " f.contentDocument.body.innerText : ''; })()") or "")  # fmt: skip


def test_the_view_lists_both_versions_and_its_report_link_opens(
    airflow: AirflowServices, model: Any, browser: Page, artifacts_dir: Path
) -> None:
    import time

    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{airflow.api_url}/")
    browser.wait_for(lambda s: "Browse" in s.text, timeout=90)
    browser.evaluate("[...document.querySelectorAll('button')].find(b => b.innerText.includes('Browse')).click()")
    menu = browser.wait_for(lambda s: any(text == "MLOps models" for text, _ in s.links), timeout=30)
    browser.screenshot(artifacts_dir / "plugin-nav-menu.png")
    entry = next(href for text, href in menu.links if text == "MLOps models")
    assert entry == f"{airflow.api_url}/plugin/mlops-models"  # the UI's page of the nav entry
    browser.call("Page.navigate", url=entry)
    deadline = time.monotonic() + 90
    while NAME not in _frame_text(browser) and time.monotonic() < deadline:
        time.sleep(1)
    browser.screenshot(artifacts_dir / "plugin-nav-page.png")
    assert NAME in _frame_text(browser), browser.state().text[:2000]

    browser.call("Page.navigate", url=f"{airflow.api_url}/mlops/models/{NAME}")
    state = browser.wait_for(lambda s: "Alias moves" in s.text, timeout=60)
    browser.screenshot(artifacts_dir / "plugin-model-page.png")
    assert "Champion: version 2; previous champion: version 1." in state.text.replace("\n", " ")
    assert "1 -> 2" in state.text and "none -> 1" in state.text
    assert "ct/retrain/promote" in state.text and "2013-04-15" in state.text
    card = next(href for text, href in state.links if text == "model card")
    assert card == f"{airflow.api_url}/mlops/reports/{CARD}"
    browser.call("Page.navigate", url=card)
    report = browser.wait_for(lambda s: "Model card" in s.text, timeout=30)
    assert "Model card of the retrained candidate" in report.text


def test_a_confirmed_rollback_records_who_decided(
    airflow: AirflowServices, model: Any, browser: Page, artifacts_dir: Path
) -> None:
    browser.call("Page.enable")
    browser.call("Page.navigate", url=f"{airflow.api_url}/mlops/models/{NAME}/rollback")
    confirm = browser.wait_for(lambda s: "I confirm this rollback" in s.text, timeout=60)
    assert "back to version 1" in confirm.text and f"decided by {USERNAME}" in confirm.text
    browser.evaluate("document.querySelector('input[name=confirm]').click(); document.querySelector('form').submit()")
    after = browser.wait_for(lambda s: "Champion: version 1" in s.text.replace("\n", " "), timeout=60)
    browser.screenshot(artifacts_dir / "plugin-after-rollback.png")
    assert "2 -> 1" in after.text
    assert registry.alias_version(model, NAME, contracts.ALIAS_CHAMPION) == "1"
    last = json.loads(model.get_registered_model(NAME).tags[contracts.TAG_PROMOTION_HISTORY])[-1]
    assert (last["from"], last["to"], last["mode"], last["by"]) == ("2", "1", "rollback", USERNAME)
