"""A business outcome measured after serving (core.pipeline.outcome): the delay minutes a model's warnings
would have caught beyond chance, on real flights, and an outcome section that names what is wrong with it."""

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
    Outcome,
    PipelineFile,
    ProxyCheck,
    proxy_correlation,
)
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[3]
FLIGHTS_FILE = REPO / "include" / "pipelines" / "flights_delay.yaml"
DELAY_COST = BusinessMetric.from_mapping(
    {"name": "delay_cost", "threshold": 0.25, "costs": {"false_negative": 100, "false_positive": 25}}, "binary"
)
MINUTES = {"name": "delay_minutes_caught", "column": "arr_delay", "floor": 0, "unit": "minutes", "per_rows": 1000}


def test_the_minutes_caught_beyond_chance_on_real_flights() -> None:
    outcome = Outcome.from_mapping(MINUTES, DELAY_COST)
    may = flights(months=[5], sample=4000)
    may = may[may["arr_delay"].notna()]
    minutes = np.clip(may["arr_delay"].to_numpy(dtype="float64"), 0, None)
    # A score that knows the flight was late (the label itself, as a probability) catches every late minute
    # above the share it warns about; a score blind to delays catches none beyond chance.
    knowing = may["arr_delayed_15"].to_numpy(dtype="float64")
    caught = outcome.evaluate(may["arr_delay"].to_numpy(), knowing)
    acted = knowing >= 0.25
    expected = (minutes[acted].sum() - acted.mean() * minutes.sum()) / len(may) * 1000
    assert caught.value == pytest.approx(expected) and caught.rows == len(may)
    assert caught.value > 10_000  # over 10 minutes per flight: late flights carry most of the delay
    assert caught.counts["mean_on_acted"] > 60 > caught.counts["mean_on_others"]
    rng = np.random.default_rng(0)
    blind = outcome.evaluate(may["arr_delay"].to_numpy(), rng.uniform(size=len(may)))
    assert abs(blind.value) < 0.1 * caught.value
    # Acting on every flight or on none catches nothing beyond chance.
    assert outcome.evaluate(minutes, np.ones(len(may))).value == pytest.approx(0.0, abs=1e-9)
    assert outcome.evaluate(minutes, np.zeros(len(may))).value == pytest.approx(0.0, abs=1e-9)
    # Early arrivals count 0 minutes (floor), not a negative delay; rows without an outcome are left out.
    assert outcome.evaluate(np.array([-30.0, 60.0, np.nan]), np.array([0.9, 0.1, 0.9])).counts == {
        "acted_rows": 1.0, "outcome_total": 60.0, "outcome_on_acted": 0.0, "mean_on_acted": 0.0,
        "mean_on_others": 60.0,
    }  # fmt: skip


def test_the_correlation_runs_on_an_outcome_where_more_is_better() -> None:
    served, caught = [0.70, 0.67, 0.64, 0.61, 0.58], [9_000.0, 8_000.0, 7_500.0, 6_000.0, 5_000.0]
    points = [LabelledBatch("1", 1000 + i, s, 0.66, c) for i, (s, c) in enumerate(zip(served, caught, strict=True))]
    check = ProxyCheck()
    tracking = proxy_correlation(points, metric="roc_auc", higher_is_better=True, business="delay_minutes_caught",
                                 check=check, business_higher_is_better=True)  # fmt: skip
    assert tracking.severity == "ok" and tracking.details["judged"]["served"] == pytest.approx(1.0)
    # Read as a cost, the same series would be a broken proxy: the orientation is the outcome's.
    as_cost = proxy_correlation(points, metric="roc_auc", higher_is_better=True, business="x", check=check)
    assert as_cost.is_alert


def test_the_flights_file_measures_the_realised_delay_minutes() -> None:
    flights_file = PipelineFile.from_yaml(FLIGHTS_FILE)
    assert flights_file.business_outcome == MINUTES | {"floor": 0.0}
    assert "arr_delay" in flights_file.passthrough_columns  # the outcome reaches the served output
    outcome = Outcome.from_mapping(flights_file.business_outcome, DELAY_COST)
    assert outcome.threshold == 0.25 and outcome.series_key == "outcome.delay_minutes_caught"
    assert "beyond acting on as many rows at random" in outcome.describe()


@pytest.mark.parametrize(
    ("outcome", "match"),
    [
        ({"name": "caught", "column": "arr_delay", "minutes": 1}, r"unknown key\(s\) \['minutes'\]"),
        ({"name": "Caught", "column": "arr_delay"}, "'name' must be lower-case"),
        ({"name": "delay_cost", "column": "arr_delay"}, "not the business metric's name 'delay_cost'"),
        ({"name": "caught"}, "needs 'column'"),
        ({"name": "caught", "column": "arr_delay", "source": "late.parquet"}, "'keys' must list the columns"),
        ({"name": "caught", "column": "arr_delay", "keys": ["flight"]}, "has 'keys' but no 'source'"),
        ({"name": "caught", "column": "arr_delay", "floor": "zero"}, "'floor' parameter must be a number"),
        ({"name": "caught", "column": "arr_delay", "per_rows": 0}, "'per_rows' parameter must be an integer >= 1"),
        ("arr_delay", "must be a mapping"),
    ],
)
def test_a_bad_outcome_section_names_the_file_and_the_key(tmp_path: Path, outcome: Any, match: str) -> None:
    raw = yaml.safe_load(FLIGHTS_FILE.read_text())
    raw["business"]["outcome"] = outcome
    path = tmp_path / "include" / "pipelines" / "flights_delay.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(SpecError, match=rf"flights_delay.yaml: business: .*{match}"):
        PipelineFile.from_yaml(path, project=REPO)


def test_an_outcome_needs_a_decision_threshold() -> None:
    rentals = BusinessMetric.from_mapping({"name": "rebalancing", "costs": {"under": 3, "over": 1}}, "regression")
    with pytest.raises(SpecError, match="decision threshold: binary models only"):
        Outcome.from_mapping({"name": "caught", "column": "cnt"}, rentals)
    joined = Outcome.from_mapping({**MINUTES, "source": "outcomes/", "keys": "flight, sched_dep_ts"}, DELAY_COST)
    assert joined.keys == ("flight", "sched_dep_ts")
    assert Outcome.from_mapping(joined.to_dict(), DELAY_COST) == joined
