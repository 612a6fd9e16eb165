"""The decision is a leaf of result types: the model card and the evidence read it without importing the
gate's orchestration, and it serialises to JSON-safe values."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pytest

from airflow_mlops.core.gating import Check

GATING = Path(__file__).resolve().parents[3] / "airflow_mlops" / "core" / "gating"


def gating_imports(module: str) -> set[str]:
    """The sibling modules of ``core.gating`` that ``module`` imports anywhere (top, functions,
    ``TYPE_CHECKING``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse((GATING / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("airflow_mlops.core.gating."):
                found.add(node.module.rsplit(".", 1)[1])
            elif node.module == "airflow_mlops.core.gating":
                found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize(
    ("module", "allowed"),
    [("decision", set()), ("card", {"decision", "metrics"}), ("evidence", {"card", "decision"})],
    ids=["decision", "card", "evidence"],
)
def test_result_types_import_no_orchestration(module: str, allowed: set[str]) -> None:
    assert gating_imports(module) <= allowed


def test_a_check_is_json_safe() -> None:
    check = Check("floor:roc_auc", "failed", math.nan, 0.6, "candidate roc_auc n/a must be >= 0.6")
    assert not check.passed and Check("x", "skipped", None, None, "").passed
    assert json.loads(json.dumps(check.to_dict()))["observed"] is None
