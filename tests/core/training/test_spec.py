from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.training.spec import LIGHTGBM_DEFAULTS, TrainingSpec

REPO = Path(__file__).resolve().parents[3]
PIPELINES = REPO / "include" / "pipelines"

BASE: dict[str, Any] = {
    "task": "binary",
    "target": "arr_delayed_15",
    "features": {"numeric": ["distance", "hour"], "categorical": ["carrier"]},
}


def spec_with(**changes: Any) -> dict[str, Any]:
    return {**BASE, **changes}


@pytest.mark.parametrize("name", ["flights_delay.yaml", "bike_sharing.yaml"])
def test_shipped_specs_load_and_round_trip(name: str) -> None:
    spec = TrainingSpec.from_yaml(PIPELINES / name)
    assert TrainingSpec.from_mapping(spec.to_dict()) == spec
    assert spec.split.method == "time"


def test_flights_spec_uses_pre_departure_features_only() -> None:
    spec = TrainingSpec.from_yaml(PIPELINES / "flights_delay.yaml")
    assert spec.task == "binary" and spec.target == "arr_delayed_15"
    assert not {"dep_time", "dep_delay", "arr_time", "arr_delay", "air_time"} & set(spec.features)
    assert spec.split.column == "sched_dep_ts"


def test_bike_spec_leaves_out_the_parts_of_the_target() -> None:
    spec = TrainingSpec.from_yaml(PIPELINES / "bike_sharing.yaml")
    assert spec.task == "regression" and spec.target == "cnt"
    assert not {"casual", "registered"} & set(spec.features)
    assert spec.search is not None and spec.search.metric == "rmse"


def test_defaults_and_string_coercion() -> None:
    spec = TrainingSpec.from_mapping(
        spec_with(seed="7", split={"method": "random", "train": "0.6", "validation": "0.2", "test": "0.2"})
    )
    assert spec.seed == 7 and spec.split.train == 0.6
    assert spec.estimator.is_lightgbm
    assert spec.effective_early_stopping_rounds == 50
    assert spec.estimator_params({"num_leaves": 7})["num_leaves"] == 7
    assert spec.estimator_params()["n_jobs"] == LIGHTGBM_DEFAULTS["n_jobs"]
    assert spec.primary_metric == "roc_auc"


def test_top_level_feature_lists_and_training_section_are_accepted() -> None:
    flat = {"task": "regression", "target": "cnt", "numeric_features": ["temp"], "categorical_features": []}
    assert TrainingSpec.from_mapping({"training": flat, "gate": {"ignored": True}}).numeric_features == ("temp",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (spec_with(task="classification"), r"'task' field of TrainingSpec must be one of"),
        (spec_with(colour="red"), r"Unknown field\(s\) \['colour'\]"),
        ({"task": "binary", "features": BASE["features"]}, r"needs the field 'target'"),
        (spec_with(features={"numeric": [], "categorical": []}), "at least one feature"),
        (spec_with(features={"numeric": ["a", "a"]}), r"lists column\(s\) \['a'\] more than once"),
        (spec_with(features={"numeric": ["a"], "categorical": ["a"]}), "both numeric and categorical"),
        (spec_with(features={"numeric": ["arr_delayed_15", "hour"]}), "also listed as a feature: that is leakage"),
        (spec_with(split={"train": 0.8, "validation": 0.15, "test": 0.15}), "must sum to 1"),
        (spec_with(split={"train": 1.2}), r"'split.train' field of TrainingSpec must be a fraction"),
        (spec_with(split={"method": "time"}), r"'split.column' field of TrainingSpec must be a non-empty string"),
        (spec_with(split={"method": "random", "column": "t"}), "applies to method 'time' only"),
        (spec_with(split={"method": "rolling"}), "must be 'random' or 'time'"),
        (spec_with(estimator={"type": "sklearn.linear_model.NoSuchModel"}), "must name a scikit-learn compatible"),
        (spec_with(estimator={"type": "no_such_package.Model"}), "cannot be imported"),
        (spec_with(estimator={"type": "sklearn.linear_model.Ridge"}), "which is not a classifier"),
        (spec_with(estimator={"params": {"num_leafs": 3}}), r"does not accept parameter\(s\) \['num_leafs'\]"),
        (
            spec_with(estimator={"type": "sklearn.linear_model.LogisticRegression"}, early_stopping_rounds=10),
            "supported for LightGBM only",
        ),
        (spec_with(search={"trials": 2, "space": {"num_leaves": [7]}, "metric": "rmse"}), "'search.metric'"),
        (spec_with(search={"trials": 500, "space": {"num_leaves": [7]}}), r"'search.trials'.*<= 50"),
        (spec_with(search={"trials": 2, "space": {"num_leaves": 7}}), "must be a non-empty list"),
        (spec_with(class_weight="heavy"), "'balanced' or a mapping"),
        (spec_with(class_weight={"1": -2}), "must be a positive number"),
        (spec_with(task="regression", class_weight="balanced"), "applies to classifiers only"),
        (spec_with(categories={"max": 0}), r"'categories.max'.*integer >= 1"),
        (spec_with(parity_tolerance=0.5), r"'parity_tolerance'.*\(0, 0.01\]"),
        (spec_with(seed="abc"), r"'seed' field of TrainingSpec must be a number. Got 'abc'"),
        (spec_with(leakage_check="maybe"), "must be true or false"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_bad_specs_name_the_field_and_the_expectation(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        TrainingSpec.from_mapping(raw)


def test_yaml_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        TrainingSpec.from_yaml(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: [binary\n")
    with pytest.raises(SpecError, match=r"broken.yaml.*not valid YAML"):
        TrainingSpec.from_yaml(broken)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("training:\n  task: binary\n  target: y\n  features: {numeric: [x]}\n  seeds: 3\n")
    with pytest.raises(SpecError, match=r"Unknown field\(s\) \['seeds'\].*wrong.yaml"):
        TrainingSpec.from_yaml(wrong)


def test_sklearn_estimators_by_import_path() -> None:
    spec = TrainingSpec.from_mapping(
        spec_with(estimator={"type": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5}})
    )
    assert not spec.estimator.is_lightgbm and spec.effective_early_stopping_rounds == 0
    assert spec.estimator_params() == {"C": 0.5}


# -- refit, window, recency weights --------------------------------------------------------------------
TIME_SPLIT = {"method": "time", "column": "sched_dep_ts"}


def test_refit_defaults_to_all_for_a_time_split_and_train_for_a_random_one() -> None:
    assert TrainingSpec.from_mapping(spec_with(split=TIME_SPLIT)).refit == "all"
    assert TrainingSpec.from_mapping(spec_with()).refit == "train"
    assert TrainingSpec.from_mapping(spec_with(split=TIME_SPLIT, refit="TRAIN")).refit == "train"
    assert TrainingSpec.from_mapping(spec_with(refit="all")).refit == "all"


def test_window_and_half_life_parse_and_round_trip() -> None:
    by_days = TrainingSpec.from_mapping(spec_with(split=TIME_SPLIT, window="90d", recency_weight_half_life="2w"))
    assert by_days.window == "90d" and by_days.window_days == 90.0 and by_days.window_rows is None
    assert by_days.recency_weight_half_life == 14.0
    assert TrainingSpec.from_mapping(by_days.to_dict()) == by_days
    by_rows = TrainingSpec.from_mapping(spec_with(split=TIME_SPLIT, window="5000", recency_weight_half_life="30"))
    assert by_rows.window == 5000 and by_rows.window_rows == 5000 and by_rows.window_days is None
    assert by_rows.recency_weight_half_life == 30.0
    assert TrainingSpec.from_mapping(spec_with(split=TIME_SPLIT, window="12h")).window_days == 0.5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"refit": "everything"}, r"'refit' field .* must be 'all' .* or 'train' .* Got 'everything'"),
        ({"window": 0}, r"'window' field .* positive whole number of rows .* '90d'.* Got 0 instead"),
        ({"window": 2.5}, r"'window' field .* Got 2.5 instead"),
        ({"window": "ninety days"}, r"'window' field .* Got 'ninety days' instead"),
        ({"window": "0d"}, r"'window' field .* Got '0d' instead"),
        ({"window": True}, r"'window' field .* Got True instead"),
        ({"recency_weight_half_life": 0}, r"'recency_weight_half_life' field .* positive number of days .* Got 0"),
        ({"recency_weight_half_life": "soon"}, r"'recency_weight_half_life' field .* must be a number. Got 'soon'"),
    ],
)
def test_refit_window_and_half_life_are_validated(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        TrainingSpec.from_mapping(spec_with(split=TIME_SPLIT, **changes))


@pytest.mark.parametrize("field", ["window", "recency_weight_half_life"])
def test_window_and_half_life_need_a_time_split(field: str) -> None:
    with pytest.raises(SpecError, match=rf"'{field}' field .* reads the time column .* method is 'random'"):
        TrainingSpec.from_mapping(spec_with(**{field: 10}))
