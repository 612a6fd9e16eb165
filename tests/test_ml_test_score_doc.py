"""docs/ml_test_score.md claims points for automated tests: every operator, DAG task, file and test
function it names must exist, so removing one of them fails here (and the claim must be revisited)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "ml_test_score.md"
DAG_FILES = {"ct": ROOT / "dags" / "continuous_training.py", "batch": ROOT / "dags" / "batch_serving.py"}
ROW = re.compile(r"^\| ([DMIO][1-7]) \|(.*)\|\s*([0-9.]+)\s*\|(.*)\|\s*$")
TOKEN = re.compile(r"`([^`]+)`")


def rows(text: str) -> dict[str, tuple[str, float]]:
    """Each scored test of the doc: its id -> (the 'automated by' cell and the rest, points)."""
    found = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            found[match.group(1)] = (match.group(2), float(match.group(3)))
    return found


def _defined(pattern: str, folder: Path) -> bool:
    regex = re.compile(pattern, re.MULTILINE)
    return any(regex.search(path.read_text(encoding="utf-8")) for path in folder.rglob("*.py"))


def missing_references(text: str, root: Path = ROOT) -> list[str]:
    """References of the scored rows that do not exist: paths, test functions, operators, DAG tasks."""
    dags = {name: path.read_text(encoding="utf-8") for name, path in DAG_FILES.items()}
    problems = []
    for test_id, (cells, points) in rows(text).items():
        if points > 0:
            found = (_problem(token.split("::")[0], dags, root) for token in TOKEN.findall(cells))
            problems += [f"{test_id}: {problem}" for problem in found if problem]
    return problems


def _problem(reference: str, dags: dict[str, str], root: Path) -> str | None:
    """Why ``reference`` does not exist, or None when it does (or is not a kind of reference checked)."""
    if re.fullmatch(r"(ct|batch):[a-z_]+", reference):
        dag, task = reference.split(":")
        present = f'"{task}"' in dags[dag] or f"'{task}'" in dags[dag]
        return None if present else f"task {task!r} is not in {DAG_FILES[dag].name}"
    if re.fullmatch(r"[\w./-]+\.(py|yaml|json|md)|[\w.-]+(/[\w.-]+)+/?", reference):
        return None if (root / reference).exists() else f"{reference} does not exist"
    if re.fullmatch(r"test_\w+", reference):
        found = _defined(rf"^\s*(async )?def {reference}\(", root / "tests")
        return None if found else f"no test function {reference}"
    if re.fullmatch(r"[A-Z]\w+(Operator|Sensor)", reference):
        found = _defined(rf"^class {reference}\b", root / "airflow_mlops")
        return None if found else f"no class {reference} in airflow_mlops"
    return None


def test_every_reference_of_a_scored_test_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert len(rows(text)) == 28
    assert missing_references(text) == []


def test_section_totals_and_the_score_match_the_rows() -> None:
    text = DOC.read_text(encoding="utf-8")
    scored = rows(text)
    totals = {s: sum(p for k, (_, p) in scored.items() if k[0] == s) for s in "DMIO"}
    for section, name in zip("DMIO", ("Data", "Model development", "ML infrastructure", "Monitoring"), strict=True):
        assert f"| | **{name}** | | **{totals[section]:.1f}** | |" in text
    assert f"**ML Test Score (minimum)** | **6.0** | **4.0** | **{min(totals.values()):.1f}** |" in text


def test_a_removed_file_test_task_or_operator_is_reported() -> None:
    row = (
        "| D9 | x | `tests/no_such_file.py` (`test_that_was_deleted`) `NoSuchThingOperator` at `ct:no_such_task`,"
        " `ct:gate` and `tests/test_layering.py` | 1 | y |"
    )
    text = row.replace("D9", "D1")
    assert missing_references(text) == [
        "D1: tests/no_such_file.py does not exist",
        "D1: no test function test_that_was_deleted",
        "D1: no class NoSuchThingOperator in airflow_mlops",
        "D1: task 'no_such_task' is not in continuous_training.py",
    ]
