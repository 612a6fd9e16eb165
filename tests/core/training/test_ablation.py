"""Feature ablation in the training run (ML Test Score D2): a column of noise added to real flights is
flagged as not beneficial, the informative features are not, the budget is kept, and the table is
logged on the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import parquet_bytes, run_training, train_model
from airflow_mlops.core.training.ablation import ARTIFACT
from airflow_mlops.core.training.spec_sections import AblationSpec
from tests.core.registry.support import client_for
from tests.core.training.support import FLIGHTS, spec_of
from tests.support.data import flights

NOISY: dict[str, Any] = {
    **FLIGHTS,
    "features": {
        "numeric": ["hour", "distance", "noise"],
        "categorical": ["carrier", "origin", "dest"],
    },
    # about 1,700 validation rows: a permutation moves ROC AUC by a few thousandths by chance alone
    # (measured: noise 0.0021, dest -0.0032, distance 0.0096, hour 0.043, carrier 0.085)
    "ablation": {"budget_seconds": 60, "repeats": 3, "min_drop": 0.005},
}


@pytest.fixture(scope="module")
def noisy() -> pd.DataFrame:
    frame = flights(months=[1, 2], sample=12000)
    frame["noise"] = np.random.default_rng(7).normal(size=len(frame))  # carries nothing about delays
    return frame


def test_a_noise_column_is_flagged_and_the_informative_features_are_not(noisy: pd.DataFrame) -> None:
    result = train_model(noisy, spec_of(NOISY))
    report = result.ablation
    assert report is not None and report.metric == "roc_auc" and not report.unmeasured
    drops = {f.feature: f.drop for f in report.features}
    assert set(drops) == {"hour", "distance", "noise", "carrier", "origin", "dest"}
    assert "noise" in report.not_beneficial
    # the departure hour and the carrier carry the most: far above the noise
    assert not {"hour", "carrier"} & set(report.not_beneficial) and min(drops["hour"], drops["carrier"]) > 0.02
    assert drops["noise"] < drops["hour"] / 5
    assert report.intact == pytest.approx(result.metrics["validation"]["roc_auc"], abs=1e-9)
    assert any("feature 'noise'" in w and "does not hurt" in w for w in result.warnings)
    assert result.summary()["ablation"]["not_beneficial"] == list(report.not_beneficial)


def test_the_budget_stops_the_ablation_and_names_what_it_did_not_measure(noisy: pd.DataFrame) -> None:
    result = train_model(noisy, spec_of(NOISY, ablation={"budget_seconds": 1e-6, "repeats": 1}))
    assert result.ablation is not None and result.ablation.unmeasured
    measured = [f.feature for f in result.ablation.features]
    assert measured + list(result.ablation.unmeasured) == ["hour", "distance", "noise", "carrier", "origin", "dest"]
    assert any("budget" in w for w in result.warnings)
    assert train_model(noisy.head(4000), spec_of(FLIGHTS)).ablation is None  # off unless the spec asks


def test_the_ablation_section_is_validated() -> None:
    assert spec_of(FLIGHTS, ablation=True).ablation == AblationSpec()
    assert spec_of(NOISY).to_dict()["ablation"]["budget_seconds"] == 60
    with pytest.raises(SpecError, match="ablation"):
        spec_of(FLIGHTS, ablation={"budget_seconds": 0})
    with pytest.raises(SpecError, match="ablation"):
        spec_of(FLIGHTS, ablation={"trials": 3})


def test_the_table_is_logged_on_the_training_run(tmp_path: Path, noisy: pd.DataFrame) -> None:
    client = client_for(tmp_path)
    experiment_id = client.create_experiment("ablation", artifact_location=str(tmp_path / "artifacts"))
    root = StorageRoot(str(tmp_path / "storage"))
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, "p", "snapshot.parquet")
    sha256 = root.write_bytes(snapshot_uri, parquet_bytes(noisy))
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        receipt = run_training(
            spec_of(NOISY), root=root, snapshot_uri=snapshot_uri, snapshot_sha256=sha256,
            pipeline="flights", partition="p", experiment_id=experiment_id,
        )  # fmt: skip
    finally:
        mlflow.set_tracking_uri(previous)
    run = client.get_run(receipt.run_id)
    assert "noise" in run.data.tags["mlops.ablation.not_beneficial"].split(",")
    assert {"ablation.noise.drop", "ablation.hour.drop", "ablation.seconds"} <= set(run.data.metrics)
    path = client.download_artifacts(receipt.run_id, ARTIFACT, str(tmp_path / "dl"))
    table = json.loads(Path(path).read_text())
    assert "noise" in table["not_beneficial"] and len(table["features"]) == 6
    assert receipt.result["ablation"]["not_beneficial"] == table["not_beneficial"]
