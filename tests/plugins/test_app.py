"""The plugin app: nothing without Airflow's authentication, reads for readers, rollback for those who may
trigger runs, reports served path-safe and sandboxed, the model view built from what the registry recorded."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from airflow_mlops.core import contracts, registry
from tests.core.registry.support import NAME
from tests.plugins.conftest import Served
from tests.plugins.support import CARD, DRIFT_REPORT, EVIDENCE

VERSION = {"name": NAME, "version": "2"}

GO_CARD = f"/mlops/go/file?key={CARD}"
PAGES = [
    "/mlops/", f"/mlops/models/{NAME}", f"/mlops/reports/{DRIFT_REPORT}", f"/mlops/models/{NAME}/rollback", GO_CARD,
    "/mlops/go/mlflow-run?experiment_id=1&run_id=abc", "/mlops/tables/flights/predictions/p/predictions.parquet",
]  # fmt: skip


@pytest.mark.parametrize("path", PAGES)
def test_anonymous_requests_are_refused(served: Served, path: str) -> None:
    answer = served.http.get(path)
    assert answer.status_code == 401 and answer.json() == {"detail": "Not authenticated"}
    forged = served.http.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert forged.status_code == 403
    assert served.http.get(path, cookies={"_token": "not-a-token"}).status_code == 403


def test_anonymous_rollback_is_refused_and_changes_nothing(served: Served) -> None:
    answer = served.http.post(f"/mlops/models/{NAME}/rollback", data={"confirm": "yes", "expected": "2", "target": "1"})
    assert answer.status_code == 401
    assert registry.alias_version(served.client, NAME, contracts.ALIAS_CHAMPION) == "2"


def test_a_signed_in_reader_sees_the_model_view_with_cookie_or_bearer(served: Served) -> None:
    index = served.http.get("/mlops/", cookies={"_token": served.tokens["viewer"]})
    assert index.status_code == 200 and f'href="/mlops/models/{NAME}"' in index.text
    page = served.http.get(f"/mlops/models/{NAME}", headers=served.as_user("viewer"))
    assert page.status_code == 200, page.text
    text = page.text
    assert "Champion: <b>version 2</b>" in text and "previous champion: version 1" in text
    # both versions, and both moves with who and from -> to, newest first
    assert '<td><span class="champion">2</span></td>' in text and '<td><span class="">1</span></td>' in text
    assert text.index("ct/retrain/promote") < text.index("ct/initial/promote")
    assert "<td>1 -> 2</td>" in text and "<td>none -> 1</td>" in text
    # the evidence of version 2 links to the plugin's report route; the drift chart is an inline SVG
    assert f'href="/mlops/reports/{EVIDENCE.replace(":", "%3A")}"' in text
    assert f'href="/mlops/reports/{CARD}"' in text
    assert "<svg" in text and "<polyline" in text and "2013-04-15" in text and "retrain" in text


def test_reports_are_served_sandboxed_with_their_content_type(served: Served) -> None:
    answer = served.http.get(f"/mlops/reports/{CARD}", headers=served.as_user("viewer"))
    assert answer.status_code == 200 and "Model card of the retrained candidate" in answer.text
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["content-security-policy"].startswith("sandbox")
    assert answer.headers["x-content-type-options"] == "nosniff"
    decision = served.http.get(f"/mlops/reports/{EVIDENCE}", headers=served.as_user("viewer"))
    assert decision.headers["content-type"] == "application/json" and decision.json()["verdict"] == "passed"


def test_report_paths_out_of_the_root_are_refused_over_http(served: Served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    headers = served.as_user("admin")
    (tmp_path / "secret.html").write_text("secret")
    link = served.root.fs_path(served.root.join("flights/leak.html"))
    import os

    os.symlink(tmp_path / "secret.html", link)
    cases = {
        "/mlops/reports/%2e%2e/secret.html": 400,  # encoded, so no client or router folds it away
        "/mlops/reports/flights/%2e%2e/%2e%2e/secret.html": 400,
        "/mlops/reports/%2Fetc%2Fpasswd.txt": 400,
        "/mlops/reports/flights/leak.html": 403,
        f"/mlops/reports/{DRIFT_REPORT.replace('report.html', 'missing.html')}": 404,
        "/mlops/reports/flights/drift/_policy/flights_delay.json": 200,
    }
    served.root.write_bytes(served.root.join("flights/snapshots/p/data.parquet"), b"PAR1")
    cases["/mlops/reports/flights/snapshots/p/data.parquet"] = 415
    got = {path: served.http.get(path, headers=headers).status_code for path in cases}
    assert got == cases
    assert "secret" not in served.http.get("/mlops/reports/flights/leak.html", headers=headers).text


def test_a_reader_may_not_roll_back(served: Served) -> None:
    headers = served.as_user("viewer")
    assert served.http.get(f"/mlops/models/{NAME}/rollback", headers=headers).status_code == 403
    form = {"confirm": "yes", "expected": "2", "target": "1"}
    assert served.http.post(f"/mlops/models/{NAME}/rollback", data=form, headers=headers).status_code == 403
    assert registry.alias_version(served.client, NAME, contracts.ALIAS_CHAMPION) == "2"


def test_rollback_asks_for_confirmation_and_records_who_decided(served: Served) -> None:
    headers = served.as_user("admin")
    confirm = served.http.get(f"/mlops/models/{NAME}/rollback", headers=headers)
    assert confirm.status_code == 200 and "from version 2 back to version 1" in confirm.text
    assert 'name="expected" value="2"' in confirm.text and "decided by <b>admin</b>" in confirm.text
    url = f"/mlops/models/{NAME}/rollback"
    unconfirmed = served.http.post(url, data={"expected": "2", "target": "1"}, headers=headers)
    assert unconfirmed.status_code == 400
    form = {"confirm": "yes", "expected": "2", "target": "1"}
    cross_site = served.http.post(url, data=form, headers={**headers, "Origin": "http://evil.test"})
    assert cross_site.status_code == 403
    assert registry.alias_version(served.client, NAME, contracts.ALIAS_CHAMPION) == "2"  # nothing moved yet
    done = served.http.post(url, data=form, headers={**headers, "Origin": "http://airflow.test"})
    assert done.status_code == 303 and done.headers["location"] == f"/mlops/models/{NAME}"
    assert registry.alias_version(served.client, NAME, contracts.ALIAS_CHAMPION) == "1"
    last = registry.promotion_history(served.client.get_registered_model(NAME).tags)[-1]
    assert (last["from"], last["to"], last["mode"], last["by"]) == ("2", "1", "rollback", "admin")
    page = served.http.get(f"/mlops/models/{NAME}", headers=headers).text
    assert "<td>admin</td><td>rollback</td><td>2 -> 1</td>" in page
    # the same form again is stale: the champion is no longer version 2, nothing changes
    stale = served.http.post(url, data=form, headers=headers)
    assert stale.status_code == 409 and "nothing changed" in stale.text
    assert registry.alias_version(served.client, NAME, contracts.ALIAS_CHAMPION) == "1"


def test_an_unknown_model_is_not_found(served: Served) -> None:
    headers = served.as_user("viewer")
    assert served.http.get("/mlops/models/no_such_model", headers=headers).status_code == 404
    assert served.http.get("/mlops/models/x' or name != '", headers=headers).status_code == 404


def test_report_links_built_with_the_plugins_address_open_through_it(served: Served) -> None:
    """With ``[mlops] report_base_url`` set to ``<api base_url>/mlops/reports/``, the validation and drift
    task links (``core.validation.report.report_url``) are the plugin's report route."""
    from airflow_mlops.core.validation.report import report_url

    uri = served.root.join("flights/drift/2013-04-15T00:00:00+00:00/report.html")
    served.root.write_bytes(uri, b"<html>drift of the 15th</html>")
    link = report_url(served.root, uri, "http://airflow.test/mlops/reports/")
    assert link == "http://airflow.test/mlops/reports/flights/drift/2013-04-15T00%3A00%3A00%2B00%3A00/report.html"
    answer = served.http.get(link, headers=served.as_user("viewer"))
    assert answer.status_code == 200 and answer.text == "<html>drift of the 15th</html>"


def test_a_link_follows_the_settings_of_the_moment_it_is_clicked(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Moving MLflow does not break old links: the address a task got when it ended is resolved per click."""
    from types import SimpleNamespace

    from airflow.sdk.execution_time.xcom import XCom

    from airflow_mlops.links.registry import MlflowModelVersionLink
    from airflow_mlops.links.training import MlflowTrainingRunLink

    stored = {"mlflow_run_url": {"experiment_id": "1", "run_id": "abc123"}, "mlflow_model_version_url": VERSION}
    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: stored.get(key))
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", "http://mlflow-old.test:5000")
    operator = SimpleNamespace()
    run_link = MlflowTrainingRunLink().get_link(operator, ti_key=object())  # type: ignore[arg-type]
    version_link = MlflowModelVersionLink().get_link(operator, ti_key=object())  # type: ignore[arg-type]
    headers = served.as_user("viewer")
    before = served.http.get(run_link, headers=headers)
    assert (
        before.status_code == 302
        and before.headers["location"] == "http://mlflow-old.test:5000/#/experiments/1/runs/abc123"
    )
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", "https://mlflow.example.org/")
    after = served.http.get(run_link, headers=headers)
    assert (
        after.status_code == 302
        and after.headers["location"] == "https://mlflow.example.org/#/experiments/1/runs/abc123"
    )
    version = served.http.get(version_link, cookies={"_token": served.tokens["viewer"]})
    assert version.headers["location"] == f"https://mlflow.example.org/#/models/{NAME}/versions/2"


def test_file_links_open_the_plugins_report_and_table_pages(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    monkeypatch.delenv("AIRFLOW__MLOPS__REPORTS_URL", raising=False)
    monkeypatch.delenv("AIRFLOW__MLOPS__REPORT_BASE_URL", raising=False)
    headers = served.as_user("viewer")
    card = served.http.get(GO_CARD, headers=headers)
    assert card.status_code == 302 and card.headers["location"] == f"/mlops/reports/{CARD}"
    assert "Model card of the retrained candidate" in served.http.get(card.headers["location"], headers=headers).text
    key = "flights/predictions/2013-07-01T00:00:00+00:00/predictions.parquet"
    table = pa.table({"flight_id": list(range(120)), "score": [i / 120 for i in range(120)]})
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer)
    served.root.write_bytes(served.root.join(key), buffer.getvalue().to_pybytes())
    moved = served.http.get(f"/mlops/go/file?key={quote(key)}", headers=headers)
    assert moved.headers["location"] == f"/mlops/tables/{quote(key)}"
    page = served.http.get(moved.headers["location"], headers=headers)
    assert page.status_code == 200 and "120 rows; the first 50 are shown" in page.text
    assert (
        "<th>flight_id</th><th>score</th>" in page.text
        and "<td>49</td>" in page.text
        and "<td>50</td>" not in page.text
    )
    # snapshots are data, not pages
    served.root.write_bytes(served.root.join("flights/snapshots/p/data.parquet"), b"PAR1")
    assert served.http.get("/mlops/tables/flights/snapshots/p/data.parquet", headers=headers).status_code == 415
    monkeypatch.setenv("AIRFLOW__MLOPS__REPORTS_URL", "https://reports.example.com/root/")
    assert served.http.get(GO_CARD, headers=headers).headers["location"] == f"https://reports.example.com/root/{CARD}"


@pytest.mark.parametrize(
    "query",
    [
        "/mlops/go/file?key=..%2Fsecret.html",
        "/mlops/go/file?key=%2Fetc%2Fpasswd.txt",
        "/mlops/go/file?key=flights/%2e%2e/%2e%2e/secret.html",
        "/mlops/go/file",
        "/mlops/go/mlflow-run?experiment_id=1&run_id=a%2Fb",
        "/mlops/go/mlflow-run?experiment_id=1&run_id=abc&next=https://evil.test",
        "/mlops/go/model-version?name=m&version=two",
        "/mlops/go/elsewhere?url=https://evil.test",
    ],
    ids=["dotdot", "absolute", "encoded-dotdot", "no-key", "run-id", "extra-param", "version", "kind"],
)
def test_malformed_link_ids_are_refused_with_a_reason(served: Served, query: str) -> None:
    answer = served.http.get(query, headers=served.as_user("viewer"))
    assert answer.status_code == 400 and "location" not in answer.headers
    assert "link" in answer.json()["detail"] or "storage key" in answer.json()["detail"], answer.json()
