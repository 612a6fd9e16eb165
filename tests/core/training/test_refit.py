"""Refit after selection: the registered model is refitted on every row, the judged one is not; the
training window and recency weights."""

from __future__ import annotations

from typing import Any

import lightgbm
import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core.onnx_model import OnnxModel
from airflow_mlops.core.storage import sha256_bytes
from airflow_mlops.core.training import TrainingResult, split_frame, train_model
from airflow_mlops.core.training.data import prepare
from airflow_mlops.core.training.refit import refit_iterations
from tests.core.training.support import FLIGHTS, spec_of


@pytest.fixture(scope="module")
def train_only(january: pd.DataFrame) -> TrainingResult:
    return train_model(january, spec_of(FLIGHTS, refit="train"))


def test_refit_on_all_rows_registers_another_model_with_scaled_iterations(
    trained: TrainingResult, train_only: TrainingResult
) -> None:
    fit, rows = trained.fit, trained.rows
    assert trained.spec.refit == "all" and fit.kind == "refit_all"  # the default of a time split
    assert fit.rows == rows["used"] == rows["registered_fit"] > rows["train"]
    # the judged (selection) model is the train-only model; the registered one differs
    assert trained.metrics == train_only.metrics and fit.selected_iterations == train_only.best_iteration
    assert fit.selection_onnx_bytes == train_only.onnx_bytes
    assert fit.selection_onnx_sha256 == train_only.onnx_sha256 != trained.onnx_sha256
    assert fit.refit_iterations == round(fit.selected_iterations * rows["used"] / rows["train"])
    booster = trained.pipeline.named_steps["model"]
    assert booster.n_estimators == booster.booster_.num_trees() == fit.refit_iterations
    assert trained.params["n_estimators"] == fit.refit_iterations
    # the registered ONNX is the refit: parity of the refit, reference predicted by the refit
    assert trained.parity.passed and trained.parity.rows == rows["test"]
    assert fit.selection_parity is not None and fit.selection_parity.passed
    probabilities = OnnxModel(trained.onnx_bytes, list(trained.onnx_inputs)).run(trained.reference)["probabilities"]
    assert np.allclose(np.asarray(probabilities)[:, 1], trained.reference["probability_1"], atol=1e-5)
    recorded = trained.summary()["fit"]
    assert recorded["model_fit"] == "refit_all" and recorded["judged_model"] == "selection"
    assert trained.spec_artifact()["fit"]["selection_onnx_sha256"] == sha256_bytes(train_only.onnx_bytes)


def test_refit_train_keeps_the_judged_model_registered(train_only: TrainingResult) -> None:
    fit = train_only.fit
    assert (fit.kind, fit.rows, fit.refit_iterations) == ("train_only", train_only.rows["train"], None)
    assert fit.selection_onnx_bytes is None and fit.selection_onnx_sha256 is None
    assert train_only.summary()["fit"]["judged_model"] == "registered"
    booster = train_only.pipeline.named_steps["model"]
    assert booster.best_iteration_ == train_only.best_iteration == fit.selected_iterations


@pytest.mark.parametrize(
    ("selected", "rows_all", "rows_train", "maximum", "expected"),
    [(13, 5894, 4126, 60, 19), (50, 1000, 700, 60, 60), (1, 10, 9, None, 1), (None, 10, 7, 60, None)],
)
def test_refit_iterations_scale_by_the_row_ratio_up_to_the_maximum(
    selected: int | None, rows_all: int, rows_train: int, maximum: int | None, expected: int | None
) -> None:
    assert refit_iterations(selected, rows_all, rows_train, maximum) == expected


def test_refit_iterations_are_capped_by_the_configured_maximum(january: pd.DataFrame) -> None:
    result = train_model(january, spec_of(FLIGHTS, early_stopping_rounds=0))  # no stopping: all 60 selected
    assert result.fit.selected_iterations == 60 and result.fit.refit_iterations == 60


def test_a_random_split_can_refit_on_all_rows(january: pd.DataFrame) -> None:
    result = train_model(january, spec_of(FLIGHTS, split={"method": "random"}, refit="all"))
    assert result.fit.kind == "refit_all" and result.fit.rows == result.rows["used"]


# -- window ----------------------------------------------------------------------------------------------
def test_window_by_rows_keeps_the_newest_rows_before_the_split(january: pd.DataFrame) -> None:
    spec = spec_of(FLIGHTS, window=2000)
    data = prepare(january, spec)
    labelled = january[january["arr_delayed_15"].notna()]
    newest = labelled["sched_dep_ts"].sort_values().iloc[-2000]
    assert len(data.y) == int((labelled["sched_dep_ts"] >= newest).sum()) >= 2000
    assert data.frame["sched_dep_ts"].min() == newest
    assert data.rows_outside_window == len(labelled) - len(data.y)
    parts = split_frame(january, spec)
    assert sum(map(len, parts.values())) == len(data.y) and parts["train"]["sched_dep_ts"].min() == newest


def test_window_by_days_keeps_the_last_days_of_the_time_column(january: pd.DataFrame) -> None:
    result = train_model(january, spec_of(FLIGHTS, window="10d"))
    times = pd.to_datetime(january.loc[january["arr_delayed_15"].notna(), "sched_dep_ts"])
    kept = times >= times.max() - pd.Timedelta(days=10)
    assert result.rows["used"] == int(kept.sum()) and result.rows["outside_window"] == int((~kept).sum())
    assert result.fit.rows == result.rows["used"]


# -- recency weights -------------------------------------------------------------------------------------
def test_recency_weights_reach_the_estimators_sample_weight(
    january: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[np.ndarray] = []
    original = lightgbm.LGBMClassifier.fit

    def spy(self: Any, x: Any, y: Any, sample_weight: Any = None, **kwargs: Any) -> Any:
        seen.append(np.asarray(sample_weight))
        return original(self, x, y, sample_weight=sample_weight, **kwargs)

    monkeypatch.setattr(lightgbm.LGBMClassifier, "fit", spy)
    spec = spec_of(FLIGHTS, recency_weight_half_life=7, class_weight={"1": 2.0})
    result = train_model(january, spec)
    assert len(seen) == 2  # the selection fit on the train split, then the refit on every row
    parts = split_frame(january, spec)
    labelled = pd.concat([parts["train"], parts["validation"], parts["test"]])
    for fitted, frame in ((seen[0], parts["train"]), (seen[1], labelled.sort_values("sched_dep_ts", kind="stable"))):
        times = pd.to_datetime(frame["sched_dep_ts"])
        age_days = (times.max() - times).dt.total_seconds().to_numpy() / 86_400
        class_weight = np.where(frame["arr_delayed_15"].to_numpy() == 1, 2.0, 1.0)
        assert np.allclose(np.sort(fitted), np.sort(0.5 ** (age_days / 7) * class_weight))
    assert seen[0].max() == pytest.approx(2.0) and seen[0].min() < 0.2  # three weeks: weight of the oldest ~1/8
    assert result.metrics["test"]["roc_auc"] > 0.55  # metrics stay unweighted and meaningful
