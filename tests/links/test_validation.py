"""The "Validation report" extra link as the API server sees it: a name and the XCom key of its address."""

from __future__ import annotations

from airflow_mlops.links.validation import ValidationReportLink
from airflow_mlops.operators.validation import ValidateDatasetOperator


def test_operator_declares_the_link_and_airflow_serializes_it() -> None:
    from airflow.serialization.serialized_objects import OperatorSerialization

    operator = ValidateDatasetOperator(task_id="validate", snapshot_uri="s.parquet", pipeline="p", suite_uri="x")
    assert [type(link) for link in operator.operator_extra_links] == [ValidationReportLink]
    # The API server only sees the serialized DAG: a link name and the XCom key the worker filled in.
    encoded = OperatorSerialization.serialize_operator(operator)
    assert encoded["_operator_extra_links"] == {"Validation report": ValidationReportLink().xcom_key}
