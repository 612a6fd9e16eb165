"""``airflow-mlops backtest`` end to end on a sample of the shipped flights, with a small training budget."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from airflow_mlops.cli import main as cli
from airflow_mlops.cli.backtest import parse_override
from airflow_mlops.core.errors import SpecError
from tests.support.data import flights
from tests.support.imports import REPO

PIPELINE = str(REPO / "include" / "pipelines" / "flights_delay.yaml")
SMALL = "{search: null, estimator: {params: {n_estimators: 30, num_leaves: 15}}, reference_rows: 1000}"


def test_backtest_prints_the_tables_writes_the_reports_and_ends_with_bench(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "history"
    data.mkdir()
    sample = flights(months=[1, 2, 3], sample=12000)
    sample[sample["month"] == 1].to_parquet(data / "flights_2013-01.parquet")
    sample[sample["month"] > 1].to_parquet(data / "flights_2013-02_03.parquet")
    out = tmp_path / "out"
    code = cli.main(
        ["backtest", PIPELINE, "--data", str(data), "--batch", "monthly", "--from", "2013-02-01", "--to",
         "2013-04-01", "--out", str(out), "--training-override", SMALL, "--quiet"]
    )  # fmt: skip
    printed = capsys.readouterr().out.strip().splitlines()
    assert code == 0
    assert re.fullmatch(
        r"BENCH backtest quality_vs_never=\S+ quality_vs_always=\S+ retrains=\d+ batches=2", printed[-1]
    )
    assert any(line.startswith("| drift policy |") for line in printed)
    document = json.loads((out / "backtest.json").read_text())
    assert [b["batch"] for b in document["batches"]] == ["2013-02", "2013-03"]
    assert document["settings"]["training_override"]["estimator"]["params"]["n_estimators"] == 30
    assert (out / "backtest.html").read_text().count("data:image/png;base64,") == 1


def test_a_bad_batch_rule_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["backtest", PIPELINE, "--data", PIPELINE, "--batch", "hourly"])
    assert exit_info.value.code == 2
    assert "monthly, weekly, daily or rows=N" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, {}), ('{"search": null}', {"search": None}), ("seed: 7", {"seed": 7})],
    ids=["none", "json", "yaml"],
)
def test_parse_override(raw: str | None, expected: dict[str, object]) -> None:
    assert parse_override(raw) == expected


def test_parse_override_refuses_a_non_mapping() -> None:
    with pytest.raises(SpecError, match="must be a JSON or YAML mapping"):
        parse_override("[1, 2]")
