"""The record of checked pipeline files: an unchanged file skips its costly checks (and their imports), and
anything that could change their verdict makes them run again."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.pipeline import discover
from tests.support.project import copy_project, pipeline_file

CHECK_MODULES = ("airflow_mlops.core.training.spec_sections", "airflow_mlops.core.pipeline.business")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return copy_project(tmp_path / "project")


def pipelines(project: Path) -> Path:
    return project / "include" / "pipelines"


def test_an_unchanged_file_reads_the_same_from_the_record(project: Path, tmp_path: Path) -> None:
    checked = tmp_path / "checked"
    first = discover(pipelines(project), checked=checked)
    assert len(list(checked.glob("*.json"))) == 1  # one entry per pipeline file
    again = discover(pipelines(project), checked=checked)
    assert again == first == discover(pipelines(project))  # the record changes nothing of what is read
    assert again[0].business_metric["name"] == "delay_cost" and again[0].proxy_check["min_batches"] == 5


def test_a_parse_of_an_unchanged_file_does_not_import_the_checks_modules(project: Path, tmp_path: Path) -> None:
    """What the record is for: a fresh process (a DAG processor's parse) skips the training spec's and the
    business metric's modules once the file has passed; without the record it imports them."""
    checked = tmp_path / "checked"
    probe = (
        "import sys; from airflow_mlops.core.pipeline import discover; "
        "discover(sys.argv[1], checked=sys.argv[2] if len(sys.argv) > 2 else None); "
        f"print([m for m in {CHECK_MODULES!r} if m in sys.modules])"
    )

    def imported(*record: Path) -> str:
        args = [sys.executable, "-c", probe, str(pipelines(project)), *map(str, record)]
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()

    assert imported() == str(list(CHECK_MODULES))
    assert imported(checked) == str(list(CHECK_MODULES))  # the first parse checks, and records
    assert imported(checked) == "[]"


def test_an_edit_that_breaks_a_requirement_is_refused_after_a_recorded_parse(project: Path, tmp_path: Path) -> None:
    checked = tmp_path / "checked"
    discover(pipelines(project), checked=checked)
    path = pipeline_file(project)
    path.write_text(path.read_text().replace("forbidden:\n", "forbidden:\n    hour: known only later\n", 1))
    for _ in range(2):  # a refused file is never recorded: the error shows at every parse
        with pytest.raises(SpecError, match="feature 'hour' breaks forbidden: known only later"):
            discover(pipelines(project), checked=checked)


def test_a_suite_that_drops_a_feature_column_is_refused_after_a_recorded_parse(project: Path, tmp_path: Path) -> None:
    """The pipeline file is unchanged; its validation suite (``serving_columns: suite``) no longer names a
    feature, which the requirements check must see."""
    checked = tmp_path / "checked"
    discover(pipelines(project), checked=checked)
    suite = project / "include" / "expectations" / "flights.json"
    content = json.loads(suite.read_text())
    content["expectations"] = [e for e in content["expectations"] if "distance" not in json.dumps(e)]
    suite.write_text(json.dumps(content))
    with pytest.raises(SpecError, match="feature 'distance' breaks serving_columns"):
        discover(pipelines(project), checked=checked)


def test_a_damaged_or_unwritable_record_only_means_the_checks_run(project: Path, tmp_path: Path) -> None:
    checked = tmp_path / "checked"
    expected = discover(pipelines(project))
    discover(pipelines(project), checked=checked)
    (entry,) = checked.glob("*.json")
    entry.write_text('{"key": "')  # half-written, as a crash could leave it
    assert discover(pipelines(project), checked=checked) == expected
    assert json.loads(entry.read_text())["file"] == str(pipeline_file(project))  # rewritten whole
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    assert discover(pipelines(project), checked=blocked) == expected


def test_content_json_cannot_hold_is_checked_in_full_at_every_parse(tmp_path: Path) -> None:
    """YAML allows mapping keys JSON has no form for (dates): such a file is not recorded, and still reads."""
    folder = tmp_path / "include" / "pipelines"
    folder.mkdir(parents=True)
    training = "training: {task: binary, target: y, features: {numeric: [x]}}\n"
    (folder / "p.yaml").write_text(training + "gate: {policy: {2024-01-01: kept as written}}\n")
    checked = tmp_path / "checked"
    for _ in range(2):
        (found,) = discover(folder, checked=checked)
        assert list(found.gate_policy) == [datetime.date(2024, 1, 1)]
    assert not checked.exists()
