"""BacktestPolicyOperator: a thin task around the core backtest, on a small sample of the shipped flights."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.operators.backtest import BacktestPolicyOperator
from tests.support.data import flights
from tests.support.imports import REPO

PIPELINE = str(REPO / "include" / "pipelines" / "flights_delay.yaml")
SMALL = {"search": None, "estimator": {"params": {"n_estimators": 20, "num_leaves": 7}}, "reference_rows": 500}


def test_template_fields_are_constructor_arguments() -> None:
    arguments = inspect.signature(BacktestPolicyOperator.__init__).parameters
    assert all(name in arguments for name in BacktestPolicyOperator.template_fields)


def test_execute_writes_the_reports_and_returns_the_summary(tmp_path: Path) -> None:
    data = tmp_path / "flights.parquet"
    flights(months=[1], sample=3000).to_parquet(data)
    operator = BacktestPolicyOperator(
        task_id="backtest", pipeline_file=PIPELINE, data_uri=str(data), batch="rows=1000",
        output_folder=str(tmp_path / "out"), training_override=SMALL,
    )  # fmt: skip
    context: Any = {"run_id": "manual__2013-02-01"}
    receipt = operator.execute(context)
    assert receipt["pipeline"] == "flights_delay"
    assert receipt["summary"]["batches"] == 2 and receipt["bench"].endswith("batches=2")
    assert Path(receipt["reports"]["html"]).is_file()


def test_a_bad_rule_fails_without_retry(tmp_path: Path) -> None:
    operator = BacktestPolicyOperator(task_id="backtest", pipeline_file=PIPELINE, data_uri=PIPELINE, batch="yearly")
    with pytest.raises(AirflowFailException, match="monthly, weekly, daily or rows=N"):
        operator.execute({"run_id": "manual"})  # type: ignore[arg-type]
