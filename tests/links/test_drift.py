"""The "Drift report" extra link: what the check persists and what the button opens."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.links.drift import DriftReportLink, report_url
from airflow_mlops.operators.drift import CheckDriftOperator


@pytest.mark.parametrize(
    ("uri", "base_url", "expected"),
    [
        ("/srv/mlops/flights/drift/2013-04-01/report.html", None, "file:///srv/mlops/flights/drift/2013-04-01/report.html"),
        ("/srv/ml ops/report.html", None, "file:///srv/ml%20ops/report.html"),
        ("s3://bucket/pipelines/flights/drift/2013-04/report.html", None,
         "https://s3.console.aws.amazon.com/s3/object/bucket?prefix=pipelines/flights/drift/2013-04/report.html"),
        ("s3://bucket/pipelines/flights/drift/2013-04-01T00:00:00+00:00/report.html", "https://reports.example.com/",
         "https://reports.example.com/flights/drift/2013-04-01T00%3A00%3A00%2B00%3A00/report.html"),
    ],
    ids=["local", "local-space", "s3-console", "base-url"],
)  # fmt: skip
def test_report_url(uri: str, base_url: str | None, expected: str) -> None:
    root = "s3://bucket/pipelines" if uri.startswith("s3://") else "/srv"
    assert report_url(uri, root, base_url) == expected


def test_persisted_url_is_what_the_link_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    stored: dict[str, Any] = {}

    class TaskInstance:
        def xcom_push(self, key: str, value: Any) -> None:
            stored[key] = value

    DriftReportLink.persist({"ti": TaskInstance()}, "file:///srv/report.html")  # type: ignore[arg-type]
    assert stored == {"mlops_drift_report": {"url": "file:///srv/report.html"}}

    from airflow.sdk.execution_time import xcom

    asked: list[str] = []

    def get_value(*, ti_key: Any, key: str) -> Any:
        asked.append(key)
        return stored.get(key)

    monkeypatch.setattr(xcom.XCom, "get_value", get_value)
    operator = CheckDriftOperator(task_id="check", pipeline="flights", current_uri="x", model_name="m")
    link = DriftReportLink()
    assert link.name == "Drift report" and link in operator.operator_extra_links
    assert link.get_link(operator, ti_key=object()) == "file:///srv/report.html"  # type: ignore[arg-type]
    stored.clear()
    assert link.get_link(operator, ti_key=object()) == ""  # type: ignore[arg-type]
    assert asked == ["mlops_drift_report", "mlops_drift_report"]
