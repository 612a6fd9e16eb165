"""The pipeline file's training source (files, or a SQL table or query) and its new-data rule."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.pipeline import PipelineFile
from airflow_mlops.core.pipeline.source import DataSource, RetrainOnNewData

TRAINING = {
    "task": "binary",
    "target": "arr_delayed_15",
    "features": {"numeric": ["distance"], "categorical": ["carrier"]},
}


def load(tmp_path: Path, data: dict[str, Any]) -> PipelineFile:
    path = tmp_path / "include" / "pipelines" / "trips.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"training": TRAINING, "data": data}))
    return PipelineFile.from_yaml(path)


def test_files_are_the_default_source_and_no_watch_without_the_rule(tmp_path: Path) -> None:
    pipeline = load(tmp_path, {"training_pattern": "trips_*.parquet"})
    assert pipeline.source == DataSource() and pipeline.retrain_on_new_data is None


def test_a_sql_table_with_a_new_rows_rule(tmp_path: Path) -> None:
    pipeline = load(
        tmp_path,
        {"source": "sql", "connection": "warehouse", "table": "analytics.trips", "watermark_column": "updated_at",
         "retrain_on_new_data": {"min_rows": "5000", "min_interval": "1d"}},
    )  # fmt: skip
    assert pipeline.source == DataSource("sql", "warehouse", "analytics.trips", None)
    assert pipeline.retrain_on_new_data == RetrainOnNewData(min_count=5000, min_interval=timedelta(days=1))


def test_a_sql_query_uses_the_default_connection_and_files_count_files(tmp_path: Path) -> None:
    pipeline = load(tmp_path, {"source": "sql", "query": "SELECT * FROM trips WHERE fare > 0"})
    assert pipeline.source == DataSource("sql", "mlops_sql_default", None, "SELECT * FROM trips WHERE fare > 0")
    files = load(tmp_path, {"retrain_on_new_data": {"min_files": 2, "min_interval": "6h"}})
    assert files.retrain_on_new_data == RetrainOnNewData(min_count=2, min_interval=timedelta(hours=6))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"source": "kafka"}, r"data.source must be 'files' or 'sql'. Got 'kafka'"),
        ({"source": "sql"}, r"data.source 'sql' needs exactly one of data.table or data.query"),
        ({"source": "sql", "table": "t", "query": "SELECT 1"}, r"exactly one of data.table or data.query"),
        ({"source": "sql", "query": "DELETE FROM trips RETURNING *"}, r"data.query: A source query must only read"),
        ({"table": "trips"}, r"data.table applies to data.source 'sql'; this file's source is 'files'"),
        ({"source": "sql", "table": "t", "retrain_on_new_data": {"min_rows": 10, "min_interval": "1h"}},
         r"a SQL source counts new rows past data.watermark_column; set it"),
        ({"source": "sql", "table": "t", "watermark_column": "w",
          "retrain_on_new_data": {"min_files": 1, "min_interval": "1h"}},
         r"retrain_on_new_data.min_files does not apply to a 'sql' source: it counts rows"),
        ({"retrain_on_new_data": {"min_rows": 10, "min_interval": "1h"}},
         r"min_rows does not apply to a 'files' source: it counts files"),
        ({"retrain_on_new_data": {"min_files": 1}}, r"min_interval is required"),
        ({"retrain_on_new_data": {"min_files": 1, "min_interval": "30s"}}, r"must be at least one minute"),
        ({"retrain_on_new_data": {"min_files": 0, "min_interval": "1h"}}, r"min_files must be an integer in \[1,"),
        ({"retrain_on_new_data": {"min_files": 1, "min_interval": "1h", "every": 2}}, r"unknown key\(s\) \['every'\]"),
        ({"retrain_on_new_data": "daily"}, r"retrain_on_new_data must be a mapping"),
    ],
    ids=[
        "unknown-source", "sql-without-table-or-query", "sql-with-both", "writing-query", "table-on-files",
        "sql-rule-without-watermark", "min-files-on-sql", "min-rows-on-files", "no-interval", "interval-too-short",
        "zero-files", "unknown-rule-key", "rule-not-a-mapping",
    ],
)  # fmt: skip
def test_bad_sources_and_rules_are_refused_naming_the_key(tmp_path: Path, data: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        load(tmp_path, data)
