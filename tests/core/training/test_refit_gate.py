"""A refit run in MLflow and at the gate: both ONNX models are logged, the registered one is the refit,
and on the run's own test split (which the refit has fitted) the gate judges the selection model.
Also the reason for the refit, on real data: the next month of flights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from airflow_mlops.core import contracts
from airflow_mlops.core.gating import evaluate, load_run_model, read_evaluation_frame
from airflow_mlops.core.onnx_model import OnnxModel
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.core.training import TrainingReceipt, parquet_bytes, run_training, train_model
from tests.core.gating.support import policy
from tests.core.registry.support import client_for
from tests.core.training.support import FLIGHTS, spec_of
from tests.support.data import flights


def _train_run(tmp_path: Path, frame: pd.DataFrame, **changes: Any) -> tuple[Any, StorageRoot, TrainingReceipt]:
    client = client_for(tmp_path)
    experiment_id = client.create_experiment("refit", artifact_location=str(tmp_path / "artifacts"))
    root = StorageRoot(str(tmp_path / "storage"))
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, "p", "snapshot.parquet")
    sha256 = root.write_bytes(snapshot_uri, parquet_bytes(frame))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        receipt = run_training(
            spec_of(FLIGHTS, **changes), root=root, snapshot_uri=snapshot_uri, snapshot_sha256=sha256,
            pipeline="flights", partition="p", experiment_id=experiment_id,
        )  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous)
    return client, root, receipt


def test_the_gate_judges_the_selection_model_on_the_runs_test_split(tmp_path: Path, january: pd.DataFrame) -> None:
    client, root, receipt = _train_run(tmp_path, january)
    run = client.get_run(receipt.run_id)
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    fit = receipt.result["fit"]
    assert tags[contracts.TAG_MODEL_FIT] == "refit_all"
    assert tags[contracts.TAG_MODEL_FIT_ROWS] == str(fit["registered_rows"])
    # where the version's data ends, for the staleness impact: the newest scheduled departure of the snapshot
    newest = pd.Timestamp(january["sched_dep_ts"].max())
    assert pd.Timestamp(tags[contracts.TAG_DATA_END]) == newest.tz_localize("UTC")  # no zone declared: UTC
    assert tags[contracts.TAG_ONNX_SHA256] == receipt.onnx_sha256 != tags[contracts.TAG_SELECTION_ONNX_SHA256]
    assert params["refit_rows"] == str(fit["registered_rows"])
    assert metrics["refit_iterations"] == fit["refit_iterations"]
    assert params["selected_iterations"] == str(fit["selected_iterations"])
    judged = load_run_model(client, receipt.run_id, "candidate", on_test_split=True)
    registered = load_run_model(client, receipt.run_id, "candidate", on_test_split=False)
    assert sha256_bytes(registered.onnx_bytes) == receipt.onnx_sha256  # what the registry will register
    assert sha256_bytes(judged.onnx_bytes) == tags[contracts.TAG_SELECTION_ONNX_SHA256] == fit["selection_onnx_sha256"]
    # the selection is held to its own native model, parity and train-split sample (the run's others are the refit's)
    assert judged.native_predict is not None and registered.native_predict is not None
    assert judged.training_sample is not None and registered.training_sample is not None
    assert len(registered.training_sample) == len(judged.training_sample) == 500
    assert not judged.training_sample.equals(registered.training_sample)
    assert judged.logged_parity == fit["selection_parity"]["value"]

    frame, sha256 = read_evaluation_frame(root, receipt.test_split_uri)
    gate = policy(baseline={"enabled": False})
    decision = evaluate(judged, None, frame, gate, data_uri=receipt.test_split_uri, data_sha256=sha256)
    assert decision.candidate["judged_model"] == "selection"
    assert decision.parity is not None and decision.parity["source"] == "native" and decision.parity["value"] < 1e-5
    tested = receipt.result["metrics"]["test"]["roc_auc"]
    assert decision.candidate_metrics["roc_auc"] == pytest.approx(tested, abs=1e-6)
    seen = evaluate(registered, None, frame, gate, data_uri=receipt.test_split_uri, data_sha256=sha256)
    # the refit has fitted these rows: its figure here is optimistic, which is why it is not judged on them
    assert seen.candidate["judged_model"] == "registered"
    assert seen.candidate_metrics["roc_auc"] > decision.candidate_metrics["roc_auc"]


def test_a_train_only_run_is_judged_by_its_registered_model(tmp_path: Path, january: pd.DataFrame) -> None:
    client, _, receipt = _train_run(tmp_path, january, refit="train")
    tags = client.get_run(receipt.run_id).data.tags
    assert tags[contracts.TAG_MODEL_FIT] == "train_only" and contracts.TAG_SELECTION_ONNX_SHA256 not in tags
    judged = load_run_model(client, receipt.run_id, "candidate", native=False, on_test_split=True)
    assert sha256_bytes(judged.onnx_bytes) == receipt.onnx_sha256 and judged.spec.get("judged_model") is None


def test_the_refit_beats_the_train_only_model_on_the_next_month() -> None:
    """January to April flights, judged on May: the refit has seen the newest 30 % (mid-March to April)."""
    history = flights(months=[1, 2, 3, 4], sample=40_000)
    may = flights(months=[5])
    may = may[may["arr_delayed_15"].notna()].reset_index(drop=True)
    result = train_model(history, spec_of(FLIGHTS))

    def may_roc_auc(onnx_bytes: bytes) -> float:
        probabilities = OnnxModel(onnx_bytes, list(result.onnx_inputs)).run(may)["probabilities"]
        return float(roc_auc_score(may["arr_delayed_15"].astype(int), np.asarray(probabilities)[:, 1]))

    assert result.fit.selection_onnx_bytes is not None
    train_only, refit = may_roc_auc(result.fit.selection_onnx_bytes), may_roc_auc(result.onnx_bytes)
    assert refit > train_only + 0.003  # measured: 0.6756 against 0.6690 (28,128 May flights)
