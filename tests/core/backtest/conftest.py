"""A small real backtest shared by the session: flights of January to March 2013 (a seeded sample),
the shipped pipeline file with a small training budget, January training the first champion."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.core.backtest import BacktestResult, BacktestSettings, BatchRule, run_backtest, split_batches
from tests.support.data import flights
from tests.support.imports import REPO

PIPELINE = REPO / "include" / "pipelines" / "flights_delay.yaml"
# The shipped search (4 trials of up to 1,000 trees) takes minutes per training; the replay is the same
# code with a smaller model.
SMALL_TRAINING = {
    "search": None,
    "estimator": {"params": {"n_estimators": 40, "learning_rate": 0.1, "num_leaves": 15}},
    "early_stopping_rounds": 10,
    "reference_rows": 1000,
}


def small_settings(path: Path = PIPELINE, **drift_policy: object) -> BacktestSettings:
    settings = BacktestSettings.from_pipeline_file(path, training_override=SMALL_TRAINING)
    if drift_policy:
        settings = replace(settings, drift_policy={**settings.drift_policy, **drift_policy})
    return settings


@pytest.fixture(scope="session")
def quarter() -> pd.DataFrame:
    return flights(months=[1, 2, 3], sample=24000)


@pytest.fixture(scope="session")
def replayed(quarter: pd.DataFrame) -> BacktestResult:
    # drift_share 0 makes every batch an alarm, so the replay retrains and gates at least once.
    settings = small_settings(drift_share=0.0, cooldown=0, hysteresis=0.0)
    history = split_batches(quarter, BatchRule.parse("monthly"), settings.time_column, start="2013-02-01")
    return run_backtest(settings, history)
