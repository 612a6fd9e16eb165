from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.operators.branching import BranchOnFunctionOperator


def _route(params: dict[str, Any], group: str, **_: Any) -> list[str]:
    return [f"{group}.train"] if params.get("go") else []


def test_the_function_gets_the_context_entries_and_op_kwargs() -> None:
    task = BranchOnFunctionOperator(task_id="route", python_callable=_route, op_kwargs={"group": "flights"})
    assert task.choose_branch({"params": {"go": True}, "ti": object()}) == ["flights.train"]  # type: ignore[arg-type]
    assert task.choose_branch({"params": {}, "ti": object()}) == []  # type: ignore[arg-type]


def test_op_kwargs_win_over_context_entries_of_the_same_name() -> None:
    task = BranchOnFunctionOperator(
        task_id="route", python_callable=lambda params, **_: params["go"], op_kwargs={"params": {"go": "b"}}
    )
    assert task.choose_branch({"params": {"go": "a"}}) == "b"  # type: ignore[arg-type]


def test_a_non_callable_is_refused_when_the_dag_is_parsed() -> None:
    with pytest.raises(TypeError, match="python_callable must be callable"):
        BranchOnFunctionOperator(task_id="route", python_callable="choose")  # type: ignore[arg-type]
