"""The "Validation report" extra link reads the address the operator stored in XCom."""

from __future__ import annotations

from typing import Any

import pytest
from airflow.sdk.execution_time.xcom import XCom

from airflow_mlops.links.validation import ValidationReportLink
from airflow_mlops.operators.validation import ValidateDatasetOperator


class Key:
    dag_id, task_id, run_id, map_index = "dag", "validate", "run", -1


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[tuple[str, str], Any]:
    values: dict[tuple[str, str], Any] = {}

    def get_value(*, ti_key: Any, key: str) -> Any:
        return values.get((ti_key.task_id, key))

    monkeypatch.setattr(XCom, "get_value", get_value)
    return values


def test_link_returns_the_stored_report_address(stored: dict[tuple[str, str], Any]) -> None:
    operator = ValidateDatasetOperator(task_id="validate", snapshot_uri="s.parquet", pipeline="p", suite_uri="x")
    stored[("validate", ValidationReportLink.key)] = "file:///root/p/validation/2013-07-01/report.html"
    assert ValidationReportLink().get_link(operator, ti_key=Key()) == "file:///root/p/validation/2013-07-01/report.html"


def test_link_is_empty_before_a_report_exists(stored: dict[tuple[str, str], Any]) -> None:
    operator = ValidateDatasetOperator(task_id="validate", snapshot_uri="s.parquet", pipeline="p", suite_uri="x")
    assert ValidationReportLink().get_link(operator, ti_key=Key()) == ""


def test_persist_pushes_under_the_key_the_link_reads() -> None:
    pushed: list[tuple[str, Any]] = []

    class TI:
        def xcom_push(self, key: str, value: Any) -> None:
            pushed.append((key, value))

    ValidationReportLink.persist({"ti": TI()}, "https://example.com/report.html")  # type: ignore[arg-type]
    assert pushed == [(ValidationReportLink.key, "https://example.com/report.html")]


def test_operator_declares_the_link_and_airflow_serializes_it() -> None:
    from airflow.serialization.serialized_objects import OperatorSerialization

    operator = ValidateDatasetOperator(task_id="validate", snapshot_uri="s.parquet", pipeline="p", suite_uri="x")
    assert [type(link) for link in operator.operator_extra_links] == [ValidationReportLink]
    # The API server only sees the serialized DAG: a link name and the XCom key the worker filled in.
    encoded = OperatorSerialization.serialize_operator(operator)
    assert encoded["_operator_extra_links"] == {"Validation report": ValidationReportLink().xcom_key}
