"""Every extra link builds its address from the ids in XCom and the deployment's settings of the moment."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.sdk.execution_time.xcom import XCom

from airflow_mlops.links.base import IdsLink
from airflow_mlops.links.drift import DriftReportLink, QualityReportLink
from airflow_mlops.links.gating import GateEvidenceLink, ModelCardLink
from airflow_mlops.links.registry import MlflowModelVersionLink
from airflow_mlops.links.scoring import PredictionsLink, ShadowReportLink
from airflow_mlops.links.training import MlflowTrainingRunLink
from airflow_mlops.links.urls import storage_key
from airflow_mlops.links.validation import ValidationReportLink

PARTITION = "2013-07-01T00:00:00+00:00"
QUOTED = "2013-07-01T00%3A00%3A00%2B00%3A00"


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """XCom as the link reads it: one task instance's values by key."""
    values: dict[str, Any] = {}
    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: values.get(key))
    return values


def _link(link: IdsLink, stored: dict[str, Any], payload: Any, **operator: Any) -> str:
    stored[link.key] = json.loads(json.dumps(payload))  # what XCom gives back
    return link.get_link(SimpleNamespace(**operator), ti_key=object())  # type: ignore[arg-type]


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
    assert _link(link, stored, payload) == f"https://mlflow.example.com/{path}"
    # Moving the UI is a settings change: the same stored ids now lead to the new address.
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_UI_URL", "https://ml.example.org")
    assert _link(link, stored, payload) == f"https://ml.example.org/{path}"
    # Without the setting: the connection's ui_url extra, then its host.
    monkeypatch.delenv("AIRFLOW__MLOPS__MLFLOW_UI_URL")
    assert _link(link, stored, payload) == f"https://from-extra.example.com/{path}"
    _mlflow_connection(monkeypatch)
    assert _link(link, stored, payload) == f"http://mlflow.internal:5000/{path}"


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
    assert _link(link, stored, {"key": key}) == f"https://reports.example.com/mlops/{quoted}"
    # The operator's own report_base_url wins over the setting.
    own = _link(link, stored, {"key": key}, report_base_url="https://own.example.com")
    assert own == f"https://own.example.com/{quoted}"
    # Without an address: the S3 console page of the object under the storage root of the moment.
    monkeypatch.delenv("AIRFLOW__MLOPS__REPORTS_URL")
    console = "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=pipelines/"
    assert _link(link, stored, {"key": key}) == console + quoted


@pytest.mark.parametrize(("link", "key"), STORAGE_LINKS, ids=STORAGE_IDS)
def test_storage_links_on_a_local_root_are_file_urls(
    link: IdsLink, key: str, stored: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", "/srv/ml ops")
    quoted = key.replace(PARTITION, QUOTED)
    assert _link(link, stored, {"key": key}) == f"file:///srv/ml%20ops/{quoted}"
    # An operator with a storage root of its own resolves its keys there.
    assert _link(link, stored, {"key": key}, storage_root="/data/root") == f"file:///data/root/{quoted}"


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
    assert _link(PredictionsLink(), stored, {"uri": "s3://b/x/p.parquet"}) == (
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
    assert _link(MlflowTrainingRunLink(), stored, payload) == expected


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
