"""The provider's connection forms, as a real api-server serves them and a browser shows them.

The forms are declared in the provider's metadata (``connection-types`` in ``get_provider_info``), which
Airflow's UI reads without importing the hooks and without flask_appbuilder. The first test asks the
api-server's ``/ui/connections/hook_meta`` (what the UI's form is built from); the browser tests open
the "Edit Connection" dialog of each type in headless Chromium and read the labels and placeholders it
shows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.get_provider_info import CONNECTION_TYPES
from tests.e2e.conftest import Deployment
from tests.support.airflow_services import AirflowServices
from tests.support.browser import TOKEN_COOKIE, Page, chromium_binary, headless_chromium

pytestmark = pytest.mark.slow

# Only the api-server: no DAG is parsed or run here.
AIRFLOW_DEPLOYMENT = Deployment(dags_folder=Path(__file__).parent / "dags", components=())

FORMS = {entry["connection-type"]: entry for entry in CONNECTION_TYPES}
# connection type -> (standard field labels shown, label of a field that must not be shown)
SHOWN = {
    "mlflow": (["Tracking URI", "Token", "Port", "Scheme"], "Login"),
    "mlops_sql": (["Host", "Database", "User", "Password", "Port"], None),
    "mlops_webhook": (["URL or host", "Bearer token", "Scheme"], "Login"),
}


def _hook_meta(airflow: AirflowServices) -> dict[str, dict[str, Any]]:
    return {m["connection_type"]: m for m in airflow.api.get("/ui/connections/hook_meta")}


@pytest.mark.parametrize("conn_type", sorted(FORMS))
def test_hook_meta_serves_the_declared_form(airflow: AirflowServices, conn_type: str) -> None:
    meta = _hook_meta(airflow)[conn_type]
    declared = FORMS[conn_type]
    behaviour = declared["ui-field-behaviour"]
    assert meta["hook_name"] == declared["hook-name"]
    assert meta["standard_fields"] is not None, meta
    standard = {("schema" if k == "url_schema" else k): v for k, v in meta["standard_fields"].items() if v}
    for field, title in behaviour["relabeling"].items():
        assert standard[field]["title"] == title, (field, standard)
    for field, placeholder in behaviour["placeholders"].items():
        assert standard[field]["placeholder"] == placeholder, (field, standard)
    for field in behaviour["hidden-fields"]:
        assert standard[field]["hidden"] is True, (field, standard)
    extra = meta["extra_fields"] or {}
    assert {name: f["schema"]["title"] for name, f in extra.items()} == {
        name: f["label"] for name, f in declared["conn-fields"].items()
    }


def test_mlflow_hook_meta_hides_login_and_names_the_token(airflow: AirflowServices) -> None:
    standard = _hook_meta(airflow)["mlflow"]["standard_fields"]
    assert standard["login"]["hidden"] is True
    assert (standard["host"]["title"], standard["password"]["title"]) == ("Tracking URI", "Token")


def _form(page: Page) -> dict[str, Any]:
    value = page.evaluate(
        "JSON.stringify({labels: [...document.querySelectorAll('[role=dialog] label')]"
        ".map(l => l.innerText.replace('*', '').trim()),"
        " inputs: Object.fromEntries([...document.querySelectorAll('[role=dialog] input, [role=dialog] textarea')]"
        ".filter(i => i.name || i.id).map(i => [i.name || i.id, i.placeholder]))})"
    )
    return dict(json.loads(value or '{"labels": [], "inputs": {}}'))


def _open_edit_dialog(page: Page, airflow: AirflowServices, conn_id: str, wanted: str) -> dict[str, Any]:
    page.open(f"{airflow.api_url}/connections", cookies={TOKEN_COOKIE: airflow.api.token})
    page.wait_for(lambda s: conn_id in s.text, 60)
    # The row's edit button; the list holds only this module's connections, one per type.
    row = (
        f"[...document.querySelectorAll('tr')].find(r => r.innerText.includes({json.dumps(conn_id)}))"
        ".querySelector('[aria-label=\"Edit Connection\"]').click()"
    )
    page.evaluate(row)
    page.wait_for(lambda s: wanted in s.text, 30)
    return _form(page)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Any:
    binary = chromium_binary()
    if binary is None:
        pytest.skip("no Chromium binary (apt-get install chromium): the form check needs a headless browser")
    with headless_chromium(binary, tmp_path_factory.mktemp("chromium") / "chromium.log") as page:
        yield page


@pytest.mark.parametrize("conn_type", sorted(FORMS))
def test_the_edit_form_shows_the_declared_labels(
    airflow: AirflowServices, browser: Page, artifacts_dir: Path, conn_type: str
) -> None:
    conn_id = f"form_{conn_type}"
    airflow.api.request(
        "POST", "/api/v2/connections", json={"connection_id": conn_id, "conn_type": conn_type}, expect=(201, 409)
    )
    labels, hidden = SHOWN[conn_type]
    try:
        form = _open_edit_dialog(browser, airflow, conn_id, labels[0])
    finally:
        browser.screenshot(artifacts_dir / f"connection-form-{conn_type}.png")
    for label in labels:
        assert label in form["labels"], (label, form)
    if hidden:
        assert hidden not in form["labels"], form
        assert "login" not in form["inputs"], form
    declared = FORMS[conn_type]
    for field, placeholder in declared["ui-field-behaviour"]["placeholders"].items():
        assert form["inputs"].get(field) == placeholder, (field, form)
    for name, field in declared["conn-fields"].items():
        assert field["label"] in form["labels"], (name, form)
        assert f"element_{name}" in form["inputs"], (name, form)


def _type_into(page: Page, selector: str, text: str) -> None:
    """Replace the field's value as typing does (the form is React state: setting ``value`` is not enough)."""
    focused = page.evaluate(
        f"(() => {{ const i = document.querySelector({json.dumps(selector)});"
        " if (!i) return false; i.focus(); i.select(); return true; })()"
    )
    assert focused, f"no field {selector} in the dialog"
    page.call("Input.insertText", text=text)


def test_an_mlflow_connection_saved_through_the_form_reads_back(
    airflow: AirflowServices, browser: Page, artifacts_dir: Path
) -> None:
    """Tracking URI and Token typed into the "Edit Connection" dialog and saved are what Airflow keeps:
    the REST API reads the URI back and masks the token; the CLI, which reads the stored secret, shows it."""
    import time

    conn_id, uri, token = "form_mlflow_saved", "https://mlflow.example.com/team", "tok-form-123"
    airflow.api.request(
        "POST", "/api/v2/connections", json={"connection_id": conn_id, "conn_type": "mlflow"}, expect=(201, 409)
    )
    _open_edit_dialog(browser, airflow, conn_id, "Tracking URI")
    _type_into(browser, "[role=dialog] input[name=host]", uri)
    _type_into(browser, "[role=dialog] input[name=password]", token)
    browser.screenshot(artifacts_dir / "connection-form-mlflow-filled.png")
    browser.evaluate(
        "[...document.querySelectorAll('[role=dialog] button')].find(b => b.innerText.trim() === 'Save').click()"
    )
    deadline = time.monotonic() + 30
    saved = airflow.api.get(f"/api/v2/connections/{conn_id}")
    while saved.get("host") != uri and time.monotonic() < deadline:
        time.sleep(1)
        saved = airflow.api.get(f"/api/v2/connections/{conn_id}")
    browser.screenshot(artifacts_dir / "connection-form-mlflow-saved.png")
    assert (saved["conn_type"], saved["host"], saved["password"]) == ("mlflow", uri, "***"), saved
    (stored,) = json.loads(airflow.cli("connections", "get", conn_id, "-o", "json"))
    assert (stored["host"], stored["password"]) == (uri, token), stored
