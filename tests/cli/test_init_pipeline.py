"""``airflow-mlops init-pipeline``: a pipeline file and its suite from a table, in seconds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.cli import main as cli
from airflow_mlops.core.pipeline import PipelineFile
from tests.support import data


def test_a_500k_row_table_is_scaffolded_from_a_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    flights = data.flights()
    table = tmp_path / "flights.parquet"
    pd.concat([flights, flights.head(500_000 - len(flights))]).to_parquet(table)
    code = cli.main(["init-pipeline", "--data", str(table), "--target", "arr_delayed_15", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "binary on 'arr_delayed_15'" in out and "checks on 20000 of 500000 rows" in out
    assert "left out arr_delay: leaking: single-feature ROC AUC 1.000" in out
    pipeline = PipelineFile.from_yaml(tmp_path / "flights.yaml")
    assert pipeline.suite == tmp_path / "flights.suite.json" and pipeline.suite.is_file()


def test_a_bad_target_exits_2_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    table = tmp_path / "flights.parquet"
    data.flights((1,), 500).to_parquet(table)
    code = cli.main(["init-pipeline", "--data", str(table), "--target", "delay", "--out", str(tmp_path / "out")])
    assert code == 2
    assert "The target 'delay' is not a column of the table" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
