"""The business metric (cost matrix, cost per unit of error) and the proxy correlation rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.pipeline import (
    BusinessMetric,
    LabelledBatch,
    PipelineFile,
    ProxyCheck,
    proxy_correlation,
    spearman,
)
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[3]
FLIGHTS_FILE = REPO / "include" / "pipelines" / "flights_delay.yaml"
DELAY_COST = {
    "name": "delay_cost", "per_rows": 1000, "threshold": 0.25,
    "costs": {"false_negative": 100, "false_positive": 25, "true_positive": 25},
}  # fmt: skip


def test_the_cost_matrix_counts_each_outcome_at_the_threshold() -> None:
    metric = BusinessMetric.from_mapping(DELAY_COST, "binary")
    truth = np.array([1, 1, 0, 0, 1, np.nan, 0])
    probability = np.array([0.9, 0.1, 0.3, 0.2, 0.25, 0.9, np.nan])  # the last two rows are unknown
    value = metric.evaluate(truth, probability)
    assert value.counts == {"true_positive": 2, "false_positive": 1, "false_negative": 1, "true_negative": 1}
    assert value.rows == 5 and value.value == pytest.approx((2 * 25 + 25 + 100) / 5 * 1000)


def test_the_regression_cost_weighs_under_and_over_prediction() -> None:
    metric = BusinessMetric.from_mapping({"name": "rebalancing_cost", "costs": {"under": 3, "over": 1}}, "regression")
    value = metric.evaluate(np.array([10.0, 10.0, 10.0]), np.array([7.0, 12.0, 10.0]))
    assert value.counts == {"under": 3.0, "over": 2.0}
    assert value.value == pytest.approx((3 * 3 + 2 * 1) / 3)


def test_on_real_flights_a_cost_optimal_threshold_beats_acting_on_none_or_all() -> None:
    """The delay rate of March's flights as the probability: the declared costs make acting on every flight
    cost 25 each, acting on none 100 per delayed flight; the metric must give exactly that."""
    march = flights(months=[3])
    truth = march["arr_delayed_15"].to_numpy(dtype="float64", na_value=np.nan)
    known = np.isfinite(truth)
    metric = BusinessMetric.from_mapping(DELAY_COST, "binary")
    act_on_all = metric.evaluate(truth, np.ones_like(truth)).value
    act_on_none = metric.evaluate(truth, np.zeros_like(truth)).value
    assert act_on_all == pytest.approx(25_000)
    assert act_on_none == pytest.approx(100_000 * truth[known].mean())
    assert metric.evaluate(truth, truth).value == pytest.approx(25_000 * truth[known].mean())  # a perfect model


def test_a_definition_round_trips_and_describes_itself() -> None:
    metric = BusinessMetric.from_mapping({**DELAY_COST, "unit": "USD"}, "binary")
    assert BusinessMetric.from_mapping(metric.to_dict(), "binary") == metric
    assert (metric.series_key, metric.training_key) == ("business.delay_cost", "test_delay_cost")
    assert "per 1,000 rows" in metric.describe() and "probability >= 0.25" in metric.describe()


@pytest.mark.parametrize(
    ("raw", "task", "match"),
    [
        (DELAY_COST, "multiclass", "'binary' .* and 'regression'"),
        ({**DELAY_COST, "name": "roc_auc"}, "binary", "not a metric training already logs"),
        ({**DELAY_COST, "name": "Delay Cost"}, "binary", "lower-case letters"),
        ({**DELAY_COST, "costs": {"missed": 100}}, "binary", r"must be among \['true_positive'"),
        ({**DELAY_COST, "threshold": 1.5}, "binary", "'threshold' parameter must be a number >= 0 and <= 1"),
        ({**DELAY_COST, "costs": {"false_negative": 0}}, "binary", "Every cost .* is 0"),
        ({"name": "c", "costs": {"under": -1}}, "regression", "must be >= 0"),
        ({"name": "c", "costs": {"under": 1}, "threshold": 0.5}, "regression", "applies to binary models"),
        ({**DELAY_COST, "currency": "USD"}, "binary", r"unknown key\(s\) \['currency'\]"),
        ({**DELAY_COST, "per_rows": "a thousand"}, "binary", "'per_rows' parameter must be an integer"),
        ({**DELAY_COST, "costs": {"false_negative": "a lot"}}, "binary", "'false_negative' .* must be a finite"),
    ],
    ids=[
        "multiclass",
        "reserved-name",
        "bad-name",
        "unknown-outcome",
        "threshold",
        "all-zero",
        "negative-error",
        "threshold-regression",
        "unknown-key",
        "per-rows",
        "cost-not-a-number",
    ],
)
def test_a_bad_definition_is_refused_naming_what_is_wrong(raw: dict[str, Any], task: str, match: str) -> None:
    with pytest.raises(SpecError, match=match):
        BusinessMetric.from_mapping(raw, task)


def test_spearman_ranks_ties_like_the_textbook_and_refuses_a_constant_side() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, 30).astype(float), rng.normal(size=30)
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic)
    assert spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def batches(served: list[float], cost: list[float], offline: list[float] | None = None) -> list[LabelledBatch]:
    versions = [str(int(o * 100)) for o in offline] if offline else ["1"] * len(served)
    offline_values = offline or [0.66] * len(served)
    return [
        LabelledBatch(v, 1000 + i, s, o, c)
        for i, (v, s, o, c) in enumerate(zip(versions, served, offline_values, cost, strict=True))
    ]


def judge(points: list[LabelledBatch], **check: Any) -> Any:
    return proxy_correlation(
        points, metric="roc_auc", higher_is_better=True, business="delay_cost", check=ProxyCheck(**check)
    )


def test_a_proxy_that_tracks_the_cost_is_ok_and_a_wrong_signed_one_alerts() -> None:
    tracking = judge(batches([0.70, 0.66, 0.64, 0.61, 0.58], [17_000, 18_000, 18_500, 19_000, 21_000]))
    assert tracking.severity == "ok" and tracking.details["judged"] == {"served": pytest.approx(1.0)}
    assert "offline: 1 model(s) served, 3 needed" in tracking.message
    broken = judge(batches([0.70, 0.66, 0.64, 0.61, 0.58], [26_000, 24_000, 17_000, 16_000, 15_000]))
    assert broken.severity == "alert" and broken.details["judged"]["served"] == pytest.approx(-1.0)
    assert "does not track the business metric delay_cost" in broken.message


def test_too_few_batches_are_not_judged() -> None:
    finding = judge(batches([0.70, 0.60, 0.50, 0.40], [26_000, 24_000, 17_000, 16_000]))
    assert finding.severity == "ok" and finding.details["judged"] == {}
    assert "served: 4 labelled batch(es), 5 needed" in finding.message


def test_the_training_time_proxy_is_judged_across_enough_models() -> None:
    served = [0.62, 0.63, 0.64, 0.65, 0.66, 0.67]
    cost = [20_000, 19_000, 18_000, 17_000, 16_000, 15_000]
    agreeing = judge(batches(served, cost, offline=[0.60, 0.60, 0.64, 0.64, 0.68, 0.68]))
    assert agreeing.severity == "ok" and agreeing.details["offline"]["models"] == 3
    assert agreeing.details["judged"]["offline"] > 0.9
    # The model that scored best offline served the costliest batches: the offline proxy misleads.
    misleading = judge(batches(served, cost, offline=[0.68, 0.68, 0.64, 0.64, 0.60, 0.60]))
    assert misleading.severity == "alert" and list(misleading.details["judged"]) == ["served", "offline"]
    assert "offline -0.9" in misleading.message


def test_only_the_window_counts_so_a_recent_break_is_not_hidden() -> None:
    good = batches([0.70, 0.68, 0.66, 0.64, 0.62, 0.60], [15_000, 16_000, 17_000, 18_000, 19_000, 20_000])
    bad = [LabelledBatch("1", 2000 + i, s, 0.66, c) for i, (s, c) in enumerate(
        [(0.70, 21_000), (0.68, 20_000), (0.66, 19_000), (0.64, 18_000), (0.62, 17_000)])]  # fmt: skip
    assert judge(good + bad, window=24).details["served"]["batches"] == 11
    recent = judge(good + bad, window=5)
    assert recent.severity == "alert" and [b["step"] for b in recent.details["batches"]] == list(range(2000, 2005))


def test_an_error_proxy_is_oriented_before_ranking() -> None:
    points = batches([30.0, 35.0, 40.0, 45.0, 50.0], [10.0, 11.0, 12.0, 13.0, 14.0])  # rmse up, cost up
    finding = proxy_correlation(
        points, metric="rmse", higher_is_better=False, business="rebalancing_cost", check=ProxyCheck()
    )
    assert finding.severity == "ok" and finding.details["judged"]["served"] == pytest.approx(1.0)


def test_the_shipped_pipeline_files_declare_their_business_metric() -> None:
    flights_file = PipelineFile.from_yaml(FLIGHTS_FILE)
    assert flights_file.business_metric == {
        "name": "delay_cost", "per_rows": 1000, "threshold": 0.25, "unit": "USD (illustrative)",
        "costs": {"true_positive": 25.0, "false_positive": 25.0, "false_negative": 100.0, "true_negative": 0.0},
    }  # fmt: skip
    assert flights_file.proxy_check == {"min_batches": 5, "min_correlation": 0.3, "min_models": 3, "window": 24}
    bikes = PipelineFile.from_yaml(REPO / "include" / "pipelines" / "bike_sharing.yaml")
    assert bikes.business_metric["costs"] == {"under": 3.0, "over": 1.0} and "threshold" not in bikes.business_metric


def test_a_bad_business_section_names_the_file(tmp_path: Path) -> None:
    raw = yaml.safe_load(FLIGHTS_FILE.read_text())
    raw["business"]["check"]["min_batches"] = 1
    path = tmp_path / "include" / "pipelines" / "flights_delay.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=r"flights_delay.yaml: business: The 'min_batches' parameter must be"):
        PipelineFile.from_yaml(path, project=REPO)


def test_the_drift_check_measures_a_regression_cost_on_real_bike_rentals() -> None:
    """2011's mean rentals per hour of day as the prediction for 2011 (reference) and 2012 (current): demand grew
    by half, so 2012 is under-predicted and its cost, weighted 3 per missing rental, is far above 2011's."""
    from airflow_mlops.core.drift import DriftSpec, compute_drift
    from tests.support.data import bike_sharing

    hours = bike_sharing()
    by_hour = hours[hours["yr"] == 0].groupby("hr")["cnt"].mean()
    frame = hours.assign(prediction=hours["hr"].map(by_hour))[["hr", "temp", "cnt", "prediction", "yr"]]
    reference, current = (frame[frame["yr"] == year].drop(columns="yr") for year in (0, 1))
    business = {"name": "rebalancing_cost", "costs": {"under": 3, "over": 1}}
    spec = DriftSpec.from_mapping(
        {"task": "regression", "target": "cnt", "numeric_features": ["hr", "temp"], "business_metric": business}
    )
    quality = compute_drift(reference, current, spec).quality
    assert quality is not None and quality.business is not None
    error = current["prediction"] - current["cnt"]
    expected = (3 * error.clip(upper=0).abs().sum() + error.clip(lower=0).sum()) / len(current)
    assert quality.business["value"] == pytest.approx(expected) and quality.business["rows"] == len(current)
    assert quality.business["value"] > 1.5 * quality.business["reference_value"]
    assert spec.to_dict()["business_metric"] == BusinessMetric.from_mapping(business, "regression").to_dict()


def test_a_binary_batch_without_a_probability_has_no_threshold_to_apply() -> None:
    from airflow_mlops.core.drift import DriftSpec, compute_drift

    march = flights(months=[3], sample=2000)
    labelled = march[march["arr_delayed_15"].notna()].assign(prediction=0)[["distance", "arr_delayed_15", "prediction"]]
    spec = DriftSpec.from_mapping(
        {
            "task": "binary",
            "target": "arr_delayed_15",
            "numeric_features": ["distance"],
            "classes": [0, 1],
            "business_metric": DELAY_COST,
        }
    )
    quality = compute_drift(labelled, labelled, spec).quality
    assert quality is not None and quality.current_metrics["accuracy"] is not None and quality.business is None
    with pytest.raises(SpecError, match=r"'binary' .* and 'regression'"):
        DriftSpec.from_mapping({"task": "multiclass", "business_metric": DELAY_COST})
