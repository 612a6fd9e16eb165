"""Scaffolding a pipeline file from a table: roles of the columns, leakage, the written file and suite."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.pipeline import PipelineFile
from airflow_mlops.core.pipeline.scaffold import scaffold
from airflow_mlops.core.pipeline.screening import infer_task, screen
from airflow_mlops.core.training.spec import TrainingSpec
from tests.support import data
from tests.support.weather import TARGET, weather_visibility


@pytest.fixture(scope="module")
def weather() -> pd.DataFrame:
    return weather_visibility()


def test_the_weather_table_is_screened_into_roles(weather: pd.DataFrame) -> None:
    screening = screen(weather, TARGET)
    assert screening.task == "multiclass"
    assert screening.time_column == "time_hour"
    assert screening.leaking == ("visib",)  # the class is computed from it
    assert screening.excluded["year"].startswith("constant: 2013")
    assert set(screening.excluded) == {"year", "visib"}
    assert screening.categorical == ("origin",)
    assert "humid" in screening.numeric and TARGET not in screening.numeric
    assert screening.classes == ("clear", "fog", "haze")


def test_the_written_file_loads_with_the_pipeline_parser_and_names_its_suite(
    weather: pd.DataFrame, tmp_path: Path
) -> None:
    from airflow_mlops.core.validation.suite import load_suite

    table = tmp_path / "weather.csv"
    weather.to_csv(table, index=False)
    out = tmp_path / "project" / "include" / "pipelines"
    result = scaffold(table, TARGET, out=out, name="visibility")
    assert result.pipeline_path == out / "visibility.yaml"
    pipeline = PipelineFile.from_yaml(result.pipeline_path)
    assert pipeline.suite == out / "visibility.suite.json"  # ./visibility.suite.json, beside the file
    assert "visib" in pipeline.feature_requirements.to_dict()["forbidden"]
    assert pipeline.watermark_column == "time_hour" and pipeline.serving
    spec = TrainingSpec.from_yaml(result.pipeline_path)
    assert spec.task == "multiclass" and spec.split.method == "time" and spec.split.column == "time_hour"
    assert "visib" not in spec.features and "year" not in spec.features
    text = result.pipeline_path.read_text()
    assert "#   visib: leaking: each of its 20 values maps to one class" in text
    suite = load_suite(str(pipeline.suite))
    types = {e.expectation_type for e in suite.expectations}
    assert "expect_table_row_count_to_be_between" in types  # non-empty only: batches differ in size
    row_count = next(e for e in suite.expectations if e.expectation_type == "expect_table_row_count_to_be_between")
    assert row_count.max_value is None


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param([0, 1] * 50, "binary", id="two-values"),
        pytest.param(["a", "b", "c"] * 30, "multiclass", id="text"),
        pytest.param([1, 2, 3, 4, 5] * 20, "multiclass", id="few-integers"),
        pytest.param(list(range(100)), "regression", id="many-integers"),
        pytest.param([0.5, 1.25, 3.0] * 40, "regression", id="fractions"),
    ],
)
def test_the_task_is_inferred_from_the_target(values: list[object], expected: str) -> None:
    assert infer_task(pd.Series(values, name="y")) == expected


def test_a_target_with_one_value_is_refused() -> None:
    with pytest.raises(DataError, match="1 distinct value"):
        infer_task(pd.Series([3] * 10, name="y"))


def _synthetic(n: int = 4000) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    y = (x + rng.normal(size=n) > 0).astype(int)
    copy = y.copy()
    copy[:10] = 1 - copy[:10]  # equal to the target on 99.75% of rows
    return pd.DataFrame(
        {
            "customer": [f"c{i:06d}" for i in range(n)],  # a unique text key
            "row": np.arange(n),  # a unique integer key
            "x": x,
            "noise": rng.normal(size=n),
            "segment": rng.choice(["a", "b", "c"], n),
            "label_copy": copy,
            "score_after": y * 5.0 + rng.normal(scale=0.1, size=n),  # separates the classes (AUC ~1)
            "y": y,
        }
    )


def test_identifiers_and_near_leaks_are_left_out_with_their_reason() -> None:
    screening = screen(_synthetic(), "y")
    assert screening.task == "binary" and screening.time_column is None
    assert screening.excluded["customer"].startswith("an identifier: 4000 distinct values")
    assert screening.excluded["row"].startswith("an identifier: a distinct integer")
    assert screening.excluded["label_copy"] == "leaking: equal to the target on 99.8% of rows"
    assert screening.excluded["score_after"].startswith("leaking: single-feature ROC AUC 1.000")
    assert screening.numeric == ("x", "noise") and screening.categorical == ("segment",)


def test_a_regression_target_made_of_two_columns_flags_both() -> None:
    bike = data.bike_sharing()  # skips when the shared bike-sharing data is absent
    screening = screen(bike, "cnt")
    assert screening.task == "regression"
    assert set(screening.leaking) == {"casual", "registered"}  # casual + registered = cnt
    assert screening.excluded["instant"].startswith("an identifier")
    assert screening.time_column == "timestamp"


def test_bad_arguments_write_nothing(weather: pd.DataFrame, tmp_path: Path) -> None:
    table = tmp_path / "weather.parquet"
    weather.head(500).to_parquet(table)
    with pytest.raises(SpecError, match=r"The target 'visibilty' is not a column of the table"):
        scaffold(table, "visibilty", out=tmp_path / "out")
    with pytest.raises(SpecError, match="must be one of"):
        scaffold(table, TARGET, out=tmp_path / "out", task="ranking")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    first = scaffold(table, TARGET, out=tmp_path / "out")
    before = first.pipeline_path.read_bytes()
    with pytest.raises(SpecError, match="exists already"):
        scaffold(table, TARGET, out=tmp_path / "out", task="binary")
    assert first.pipeline_path.read_bytes() == before


def test_a_bad_name_is_refused_before_anything_is_written(weather: pd.DataFrame, tmp_path: Path) -> None:
    table = tmp_path / "weather.parquet"
    weather.head(500).to_parquet(table)
    with pytest.raises(SpecError, match=r"A pipeline name must be letters.*Got 'a/b'"):
        scaffold(table, TARGET, out=tmp_path / "out", name="a/b")
    assert not (tmp_path / "out").exists()
    named = scaffold(table, TARGET, out=tmp_path / "out" / "sky.yaml", suite=False)
    assert PipelineFile.from_yaml(named.pipeline_path).model_name == "sky" and named.suite_path is None
