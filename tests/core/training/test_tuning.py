"""Hyperparameter search with Optuna's seeded TPE sampler over every parameter that matters (ML Test
Score M3): on real flights, each trial a nested MLflow run, the best against the hand-set parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import parquet_bytes, run_training, train_model
from tests.core.registry.support import client_for
from tests.core.training.support import FLIGHTS, spec_of

SPACE: dict[str, Any] = {
    "learning_rate": {"low": 0.02, "high": 0.3, "log": True},
    "num_leaves": {"low": 4, "high": 64, "log": True, "type": "int"},
    "max_depth": [-1, 4, 8],
    "min_child_samples": {"low": 5, "high": 200, "log": True, "type": "int"},
    "reg_lambda": {"low": 1e-3, "high": 10.0, "log": True},
    "reg_alpha": {"low": 1e-3, "high": 10.0, "log": True},
    "subsample": {"low": 0.5, "high": 1.0},
    "colsample_bytree": {"low": 0.5, "high": 1.0},
}
TPE: dict[str, Any] = {"method": "tpe", "trials": 6, "metric": "roc_auc", "space": SPACE}


def test_tpe_tunes_every_parameter_seeded_and_keeps_the_best_of_search_and_hand_set(january: pd.DataFrame) -> None:
    spec = spec_of(FLIGHTS, search=TPE, estimator={"params": {**FLIGHTS["estimator"]["params"], "subsample_freq": 1}})
    result = train_model(january, spec)
    assert len(result.trials) == 7 and result.trials[0].params == {}
    for trial in result.trials[1:]:
        assert set(trial.params) == set(SPACE)
        assert 0.02 <= trial.params["learning_rate"] <= 0.3 and 4 <= trial.params["num_leaves"] <= 64
        assert isinstance(trial.params["num_leaves"], int) and trial.params["max_depth"] in (-1, 4, 8)
    best = max(result.trials, key=lambda t: t.metrics["roc_auc"])
    assert result.metrics["validation"]["roc_auc"] == pytest.approx(best.metrics["roc_auc"])
    assert {k: result.params[k] for k in best.params} == best.params
    again = train_model(january, spec)  # the sampler is seeded: the same trials again
    assert [t.params for t in again.trials] == [t.params for t in result.trials]


def test_ranges_need_the_tpe_method_and_are_validated() -> None:
    with pytest.raises(SpecError, match=r"'search.space.learning_rate' field .* is a range .* Set 'method: tpe'"):
        spec_of(FLIGHTS, search={"trials": 3, "space": {"learning_rate": {"low": 0.01, "high": 0.1}}})
    with pytest.raises(SpecError, match=r"'search.space.num_leaves' field of TrainingSpec must be \{low, high"):
        spec_of(FLIGHTS, search={"method": "tpe", "trials": 3, "space": {"num_leaves": {"low": 8, "high": 4}}})
    with pytest.raises(SpecError, match=r"'search.method' field of TrainingSpec must be one of \['grid', 'tpe'\]"):
        spec_of(FLIGHTS, search={"method": "random", "trials": 3, "space": {"num_leaves": [4, 8]}})
    round_trip = spec_of(FLIGHTS, search=TPE)
    assert spec_of(FLIGHTS, search=round_trip.to_dict()["search"]) == round_trip


def test_every_trial_is_a_nested_run_and_the_best_is_recorded_against_the_hand_set(
    tmp_path: Path, january: pd.DataFrame
) -> None:
    client = client_for(tmp_path)
    experiment_id = client.create_experiment("tuning", artifact_location=str(tmp_path / "artifacts"))
    root = StorageRoot(str(tmp_path / "storage"))
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, "p", "snapshot.parquet")
    sha256 = root.write_bytes(snapshot_uri, parquet_bytes(january))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        receipt = run_training(
            spec_of(FLIGHTS, search={**TPE, "trials": 3}), root=root, snapshot_uri=snapshot_uri,
            snapshot_sha256=sha256, pipeline="flights", partition="p", experiment_id=experiment_id,
        )  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous)
    children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{receipt.run_id}'")
    assert len(children) == 4
    metrics = client.get_run(receipt.run_id).data.metrics
    searched = receipt.result["search"]
    assert metrics["search.hand_set_validation_roc_auc"] == pytest.approx(searched["hand_set"])
    assert metrics["search.best_validation_roc_auc"] == pytest.approx(searched["best"])
    assert searched["best"] >= searched["hand_set"]
    assert metrics["search.gain_over_hand_set"] == pytest.approx(searched["best"] - searched["hand_set"])
    assert client.get_run(receipt.run_id).data.tags["mlops.search.best_trial"] == str(searched["best_trial"])
