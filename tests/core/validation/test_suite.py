"""Suite files: bad ones named, the GX 0.x layout read, the shipped flights suite loaded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import validation as v
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from tests.core.validation.support import REPO


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", r"is not valid JSON"),
        ('{"expectations": []}', r"has no 'name'"),
        ('{"name": "s", "expectations": []}', r"at least one expectation"),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_to_exist", "kwargs": {"column": "a"}},'
            ' {"type": "expect_magic", "kwargs": {}}]}',
            r"Expectation #1 \('expect_magic'\) of suite .* is not a valid GX",
        ),
        (
            '{"name": "s", "expectations": [{"type": "expect_column_values_to_be_between", "kwargs": {}}]}',
            r"Expectation #0 \('expect_column_values_to_be_between'\).*not a valid GX",
        ),
        ('["expect_column_to_exist"]', r"must be a JSON object. Got list"),
    ],
    ids=["not-json", "no-name", "no-expectations", "unknown-type", "missing-argument", "not-an-object"],
)
def test_bad_suite_files_are_named(tmp_path: Path, content: str, match: str, suite: Any) -> None:
    path = tmp_path / "suite.json"
    path.write_text(content)
    with pytest.raises(SpecError, match=match):
        v.load_suite(str(path))


def test_missing_suite_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"No file at '.*nope\.json'"):
        v.load_suite(str(tmp_path / "nope.json"))


def test_gx_0x_suite_layout_is_read(tmp_path: Path, suite: Any) -> None:
    legacy = {
        "expectation_suite_name": "legacy",
        "expectations": [{"expectation_type": "expect_column_to_exist", "kwargs": {"column": "a"}, "meta": {}}],
    }
    path = tmp_path / "legacy.json"
    path.write_text(json.dumps(legacy))
    loaded = v.load_suite(f"file://{path}")
    assert loaded.name == "legacy" and [e.expectation_type for e in loaded.expectations] == ["expect_column_to_exist"]


def test_shipped_flights_suite_loads_and_passes_on_a_real_month(suite: Any) -> None:
    from tests.support.data import flights

    shipped = v.load_suite(str(REPO / "include" / "expectations" / "flights.json"))
    result = v.validate_frame(flights([7], sample=3000), shipped)
    assert (result.severity, result.failed) == ("ok", 0), result.failures
