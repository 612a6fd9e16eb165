"""Drift spec: validation of templated values, method and threshold resolution, Evidently's stattests."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.core.drift import spec as drift
from airflow_mlops.core.drift.spec import DriftSpec
from airflow_mlops.core.errors import SpecError
from tests.support import drift as flights_drift


# -- spec ----------------------------------------------------------------------------------------
def test_spec_coerces_templated_strings_and_fills_from_the_training_spec() -> None:
    spec = DriftSpec.from_mapping(
        {"drift_share": "0.3", "sample_size": "50000", "per_column_threshold": {"temp": "0.2"}, "html_report": "false"},
        flights_drift.training_spec(),
    )
    assert spec.drift_share == 0.3 and spec.sample_size == 50_000 and spec.html_report == "never"
    assert spec.numeric_features == tuple(flights_drift.NUMERIC) and spec.target == "arr_delayed_15"
    assert spec.classes == ("0", "1") and spec.primary_metric == "roc_auc"
    assert spec.threshold_for("temp", "numeric") == 0.2 and spec.threshold_for("humid", "numeric") is None


def test_method_and_threshold_resolve_like_evidently() -> None:
    spec = DriftSpec.from_mapping(
        {"method": "psi", "num_method": "ks", "per_column_method": {"dest": "chisquare"}, "threshold": 0.2,
         "cat_threshold": 0.3, "per_column_threshold": {"temp": 0.01}}
    )  # fmt: skip
    assert spec.method_for("temp", "numeric") == "ks"
    assert spec.method_for("carrier", "categorical") == "psi"
    assert spec.method_for("dest", "categorical") == "chisquare"
    assert spec.threshold_for("temp", "numeric") == 0.01
    assert spec.threshold_for("carrier", "categorical") == 0.3
    assert spec.threshold_for("humid", "numeric") == 0.2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"drift_share": "1.5"}, "'drift_share' parameter must be a number >= 0 and <= 1"),
        ({"method": "kolmogorov"}, "must name an Evidently stattest"),
        ({"per_column_method": {"temp": "nope"}}, "per_column_method\\['temp'\\]"),
        ({"sample_size": "ten"}, "'sample_size' parameter must be an integer >= 1"),
        ({"min_rows": 0}, "'min_rows' parameter must be an integer >= 1"),
        ({"colums": ["x"]}, "Unknown DriftSpec parameter\\(s\\) \\['colums'\\]"),
        ({"numeric_features": ["a"], "categorical_features": ["a"]}, "both numeric and categorical"),
        ({"task": "ranking"}, "must be binary, multiclass or regression"),
        ({"task": "regression", "quality_metric": "roc_auc"}, "'quality_metric' of DriftSpec must be one of"),
    ],
    ids=["share-range", "unknown-method", "per-column-method", "sample-size", "min-rows", "unknown-key",
         "both-kinds", "task", "metric-for-task"],
)  # fmt: skip
def test_bad_spec_is_refused_with_a_clear_message(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        DriftSpec.from_mapping(raw)


def test_a_method_that_does_not_fit_the_column_kind_is_refused() -> None:
    spec = DriftSpec.from_mapping({"numeric_features": ["temp"], "method": "chisquare"})
    with pytest.raises(SpecError, match="'chisquare' configured for column 'temp' does not accept numeric"):
        spec.method_for("temp", "numeric")


def test_the_stattest_table_matches_evidentlys_registry() -> None:
    from evidently.legacy.calculations.stattests.registry import _registered_stat_tests

    kinds = {"num": "numeric", "cat": "categorical"}
    registry = {
        name: frozenset(kinds[t.value] for t in types if t.value in kinds)
        for name, types in _registered_stat_tests.items()
        if any(t.value in kinds for t in types)
    }
    assert registry == drift.STATTESTS
