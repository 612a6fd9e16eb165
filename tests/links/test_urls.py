"""Every extra link shows the plugin's ``go`` address with the ids from XCom; following it builds the real
address with the deployment's settings of the moment (``links.urls.resolve``, what the plugin's route calls)."""

from __future__ import annotations

import json
import re
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from airflow.sdk.execution_time.xcom import XCom

from airflow_mlops.links.base import IdsLink
from airflow_mlops.links.drift import DriftReportLink, QualityReportLink
from airflow_mlops.links.gating import GateEvidenceLink, ModelCardLink
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.links.scoring import PredictionsLink, ShadowReportLink
from airflow_mlops.links.training import MlflowTrainingRunLink
from airflow_mlops.links.urls import LinkRefused, resolve, storage_key
from airflow_mlops.links.validation import ValidationReportLink

GO = "/mlops/go/"
PARTITION = "2013-07-01T00:00:00+00:00"
QUOTED = "2013-07-01T00%3A00%3A00%2B00%3A00"


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """XCom as the link reads it: one task instance's values by key."""
    values: dict[str, Any] = {}
    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: values.get(key))
    return values


def _shown(link: IdsLink, stored: dict[str, Any], payload: Any, **operator: Any) -> str:
    """What the worker computes when the task ends, and the UI shows."""
    stored[link.key] = json.loads(json.dumps(payload))  # what XCom gives back
    return link.get_link(SimpleNamespace(**operator), ti_key=object())  # type: ignore[arg-type]


def _follow(shown: str) -> str:
    """Where a click on ``shown`` leads now: the plugin's ``go`` route resolves it; any other address is final."""
    parts = urlsplit(shown)
    if not parts.path.startswith(GO):
        return shown
    return resolve(parts.path.removeprefix(GO), dict(parse_qsl(parts.query)), "/mlops")


def _link(link: IdsLink, stored: dict[str, Any], payload: Any, **operator: Any) -> str:
    return _follow(_shown(link, stored, payload, **operator))


def _mlflow_connection(monkeypatch: pytest.MonkeyPatch, **fields: Any) -> None:
    connection = {"conn_type": "mlflow", "host": "mlflow.internal", "port": 5000, "schema": "http", **fields}
    monkeypatch.setenv("AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps(connection))


RUN = {"experiment_id": "3", "run_id": "abc"}
VERSION = {"name": "flights_delay", "version": "2"}


@pytest.mark.parametrize(
    ("link", "payload", "path"),
    [
        (MlflowTrainingRunLink(), RUN, "#/experiments/3/runs/abc"),
        (MlflowModelVersionLink(), VERSION, "#/models/flights_delay/versions/2"),
    ],
    ids=["run", "model-version"],
)
def test_mlflow_links_use_the_configured_ui_address_first(
    link: IdsLink, payload: dict[str, str], path: str, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    _mlflow_connection(monkeypatch, extra={"ui_url": "https://from-extra.example.com"})
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", "https://mlflow.example.com/")
    shown = _shown(link, stored, payload)  # once, when the task ends
    assert shown.startswith(GO) and "example" not in shown, shown  # ids only: no address in it
    assert _follow(shown) == f"https://mlflow.example.com/{path}"
    # Moving the UI is a settings change: the link the task got now leads to the new address.
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", "https://ml.example.org")
    assert _follow(shown) == f"https://ml.example.org/{path}"
    # Without the setting: the connection's ui_url extra, then its host.
    monkeypatch.delenv("AIRFLOW__MLOPS__MLFLOW_UI_URL")
    assert _follow(shown) == f"https://from-extra.example.com/{path}"
    _mlflow_connection(monkeypatch)
    assert _follow(shown) == f"http://mlflow.internal:5000/{path}"


def test_mlflow_links_follow_the_operators_own_connection(
    stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_TEAM_MLFLOW", json.dumps({"conn_type": "mlflow", "host": "https://team.example.com"})
    )
    _mlflow_connection(monkeypatch)
    url = _link(MlflowModelVersionLink(), stored, VERSION, mlflow_conn_id="team_mlflow")
    assert url == "https://team.example.com/#/models/flights_delay/versions/2"


def test_the_embedded_store_links_to_the_local_mlflow_ui(stored: dict[str, Any], mlops_env: Any) -> None:
    assert _link(MlflowTrainingRunLink(), stored, RUN) == "http://127.0.0.1:5000/#/experiments/3/runs/abc"


STORAGE_LINKS = [
    (ValidationReportLink(), f"flights/validation/{PARTITION}/report.html"),
    (DriftReportLink(), f"flights/drift/{PARTITION}/report.html"),
    (QualityReportLink(), f"flights/drift/{PARTITION}/quality.html"),
    (ModelCardLink(), f"flights/evidence/{PARTITION}/gate/abc/model_card.html"),
    (GateEvidenceLink(), f"flights/evidence/{PARTITION}/gate/abc/decision.json"),
    (PredictionsLink(), f"flights/predictions/{PARTITION}/predictions.parquet"),
    (ShadowReportLink(), f"flights/shadow/{PARTITION}/report.json"),
]
STORAGE_IDS = ["validation", "drift", "quality", "model-card", "evidence", "predictions", "shadow"]


@pytest.mark.parametrize(("link", "key"), STORAGE_LINKS, ids=STORAGE_IDS)
def test_storage_links_use_the_reports_address(
    link: IdsLink, key: str, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", "s3://bucket/pipelines")
    monkeypatch.setenv("AIRFLOW__MLOPS__REPORTS_URL", "https://reports.example.com/mlops/")
    quoted = key.replace(PARTITION, QUOTED)
    shown = _shown(link, stored, {"key": key})
    assert shown == f"{GO}file?key={quote(key, safe='')}"
    assert _follow(shown) == f"https://reports.example.com/mlops/{quoted}"
    # The operator's own report_base_url wins over the setting (and is kept as it was when the task ended).
    own = _link(link, stored, {"key": key}, report_base_url="https://own.example.com")
    assert own == f"https://own.example.com/{quoted}"
    # Without an address: the plugin's own routes, behind Airflow's sign-in; predictions as a table preview.
    monkeypatch.delenv("AIRFLOW__MLOPS__REPORTS_URL")
    route = "tables" if key.endswith(".parquet") else "reports"
    assert _follow(shown) == f"/mlops/{route}/{quoted}"


@pytest.mark.parametrize(("link", "key"), STORAGE_LINKS, ids=STORAGE_IDS)
def test_storage_links_under_an_operators_own_root_keep_a_file_url(
    link: IdsLink, key: str, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deployment cannot resolve a key under a root it does not know: the address of the task's end."""
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", "/srv/ml ops")
    quoted = key.replace(PARTITION, QUOTED)
    assert _shown(link, stored, {"key": key}, storage_root="/data/root") == f"file:///data/root/{quoted}"
    assert _shown(link, stored, {"key": key}, storage_root="/srv/ml ops").startswith(GO)


def test_the_earlier_setting_name_still_gives_the_reports_address(
    stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__REPORT_BASE_URL", "http://127.0.0.1:8765/")
    assert (
        _link(DriftReportLink(), stored, {"key": "p/drift/x/report.html"})
        == "http://127.0.0.1:8765/p/drift/x/report.html"
    )


@pytest.mark.parametrize(
    ("uri", "root", "expected"),
    [
        ("/srv/mlops/p/drift/x/report.html", "/srv/mlops", {"key": "p/drift/x/report.html"}),
        ("s3://b/root/p/report.html", "s3://b/root/", {"key": "p/report.html"}),
        ("s3://other/report.html", "s3://b/root", {"uri": "s3://other/report.html"}),
        ("/srv/mlops-old/report.html", "/srv/mlops", {"uri": "/srv/mlops-old/report.html"}),
    ],
    ids=["local", "s3", "outside", "sibling-prefix"],
)
def test_storage_key(uri: str, root: str, expected: dict[str, str]) -> None:
    assert storage_key(uri, root) == expected


def test_a_file_outside_the_root_keeps_its_whole_uri(stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", "/srv/mlops")
    assert _shown(PredictionsLink(), stored, {"uri": "s3://b/x/p.parquet"}) == (
        "https://s3.console.aws.amazon.com/s3/object/b?prefix=x/p.parquet"
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            "http://old.example.com:5000/#/experiments/1/runs/abc",
            "http://old.example.com:5000/#/experiments/1/runs/abc",
        ),
        ({"url": "file:///srv/report.html"}, "file:///srv/report.html"),
        ({"url": ""}, ""),
        (None, ""),
        ({"experiment_id": "1"}, ""),
    ],
    ids=["url-string", "url-dict", "empty-url", "nothing", "no-run-id"],
)
def test_payloads_of_earlier_versions_are_still_read(payload: Any, expected: str, stored: dict[str, Any]) -> None:
    assert _shown(MlflowTrainingRunLink(), stored, payload) == expected


def test_persist_stores_ids_only_and_nothing_when_there_is_none() -> None:
    pushed: list[tuple[str, Any]] = []
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.append((key, value)))
    MlflowModelVersionLink.persist({"ti": ti}, name="m", version="3")  # type: ignore[arg-type]
    ModelCardLink.persist_uri({"ti": ti}, "/srv/mlops/p/evidence/x/model_card.html", "/srv/mlops")  # type: ignore[arg-type]
    ShadowReportLink.persist_uri({"ti": ti}, None, "/srv/mlops")  # type: ignore[arg-type]
    assert pushed == [
        ("mlflow_model_version_url", {"name": "m", "version": "3"}),
        ("mlops_model_card", {"key": "p/evidence/x/model_card.html"}),
    ]


@pytest.mark.parametrize(
    ("module", "cls", "names"),
    [
        ("gating", "EvaluateModelGateOperator", ["Model card", "Gate evidence"]),
        ("scoring", "ScoreBatchOperator", ["Predictions", "Shadow report"]),
        ("drift", "CheckDriftOperator", ["Drift report", "Quality report"]),
        ("training", "TrainModelOperator", ["MLflow run"]),
        ("registry", "PromoteModelOperator", ["MLflow model version"]),
    ],
    ids=["gate", "score", "drift", "train", "promote"],
)
def test_operators_declare_their_links(module: str, cls: str, names: list[str]) -> None:
    import importlib

    operator = getattr(importlib.import_module(f"airflow_mlops.operators.{module}"), cls)
    assert [link.name for link in operator.operator_extra_links] == names


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        ("", "/mlops/go/mlflow-run?experiment_id=3&run_id=abc"),
        ("http://localhost:8080", "http://localhost:8080/mlops/go/mlflow-run?experiment_id=3&run_id=abc"),
        ("https://example.com/airflow/", "https://example.com/airflow/mlops/go/mlflow-run?experiment_id=3&run_id=abc"),
        ("/airflow", "/airflow/mlops/go/mlflow-run?experiment_id=3&run_id=abc"),
    ],
    ids=["root", "address", "sub-path", "path"],
)
def test_links_point_at_the_api_servers_base_url(
    base_url: str, expected: str, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", base_url)
    assert _shown(MlflowTrainingRunLink(), stored, RUN) == expected
    with_conn = _shown(MlflowModelVersionLink(), stored, VERSION, mlflow_conn_id="team_mlflow")
    assert with_conn.endswith("/mlops/go/model-version?name=flights_delay&version=2&conn=team_mlflow")


@pytest.mark.parametrize(
    ("kind", "query", "says"),
    [
        ("nothing", {"key": "a.html"}, "Unknown link kind 'nothing'"),
        ("mlflow-run", {"run_id": "abc"}, "missing: experiment_id"),
        ("mlflow-run", {"experiment_id": "1", "run_id": "abc", "url": "https://evil.test"}, "unexpected: url"),
        ("mlflow-run", {"experiment_id": "1", "run_id": "abc/../x"}, "The run_id of a link must be"),
        ("mlflow-run", {"experiment_id": "1", "run_id": "abc", "conn": "a b"}, "The conn of a link must be"),
        ("model-version", {"name": "m", "version": "2; drop"}, "The version of a link must be a version number"),
        ("model-version", {"name": "m'", "version": "2"}, "without quotes"),
        ("file", {"key": "../etc/passwd.html"}, "no '..'"),
        ("file", {"key": "/etc/passwd.html"}, "must be relative to the storage root"),
        ("file", {"key": "p/.hidden/report.html"}, "no leading dot"),
        ("file", {"key": "p//report.html"}, "must be relative to the storage root"),
    ],
    ids=["kind", "missing", "unexpected", "run-id", "conn", "version", "name", "dotdot", "absolute", "hidden", "empty"],
)
def test_malformed_ids_are_refused(kind: str, query: dict[str, str], says: str) -> None:
    with pytest.raises(LinkRefused, match=re.escape(says)):
        resolve(kind, query, "/mlops")
