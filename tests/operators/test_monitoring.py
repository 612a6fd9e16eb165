"""Monitoring operators against a real champion (trained on flights, embedded MLflow), real files,
and notifications received by a local HTTP server."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.training import parquet_bytes
from airflow_mlops.exceptions import MlopsVerdictFailure
from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.explain import ExplainPredictionOperator
from airflow_mlops.operators.monitoring import CheckNumericalStabilityOperator, CheckPerformanceOperator
from airflow_mlops.operators.monitoring_data import (
    CheckFeatureImportanceOperator,
    CheckModelDependenciesOperator,
    CheckPersonalDataOperator,
    CheckSourceSchemaOperator,
)
from airflow_mlops.operators.monitoring_staleness import CheckModelStalenessOperator
from airflow_mlops.operators.reproducibility import CheckReproducibilityOperator, CheckTrainingServingSkewOperator
from airflow_mlops.operators.scoring import ScoreBatchOperator
from tests.notifiers.test_webhook import Receiver
from tests.operators.monitoring_support import MODEL, Champion, received, task_context, use_shared_champion
from tests.support.data import flights

NOW = datetime(2013, 3, 2, tzinfo=UTC)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Champion:
    return use_shared_champion(monkeypatch)


def test_staleness_notifies_and_asks_for_retraining(env: Champion, alerts: Receiver) -> None:
    fresh = CheckModelStalenessOperator(task_id="staleness", model_name=MODEL, pipeline="flights", max_model_age="30d")
    now = datetime.now(UTC)
    assert fresh.execute(task_context(now))["severity"] == "ok" and alerts.requests == []

    # The data age comes from the ingestion receipt beside the champion's snapshot.
    receipt_uri = env.snapshot_uri.rpartition("/")[0] + "/receipt.json"
    newest = flights(months=[1, 2])["sched_dep_ts"].max()
    env.root.write_bytes(receipt_uri, json.dumps({"source_watermark": newest.isoformat()}).encode())
    stale = CheckModelStalenessOperator(
        task_id="staleness", model_name=MODEL, pipeline="flights", max_model_age="30d", max_data_age="7d",
        trigger_retraining="true", notifiers=[WebhookNotifier(webhook_conn_id="alerts")],
    )  # fmt: skip
    context = task_context(now + timedelta(days=45))
    receipt = stale.execute(context)
    assert receipt["severity"] == "alert" and receipt["model_version"] == env.version
    assert receipt["details"]["data_at"].startswith("2013-02-28") and receipt["details"]["stale"]
    assert "training data is" in receipt["message"] and "model is" in receipt["message"]
    assert receipt["asset_event"]["uri"] == "x-mlops://flights/drift"
    (payload,) = received(alerts)
    assert payload["check"] == "staleness" and payload["severity"] == "alert" and "Stale model" in payload["text"]


def score_february(env: Champion, tmp_path: Path, frame: pd.DataFrame | None = None) -> dict[str, Any]:
    path = tmp_path / "landing.parquet"
    (frame if frame is not None else flights(months=[2], sample=1500)).to_parquet(path, index=False)
    operator = ScoreBatchOperator(task_id="score", input_uri=str(path), model_name=MODEL, pipeline="flights",
                                  partition="2013-02", serving_log_rows="500")  # fmt: skip
    return operator.execute(task_context(NOW))


def test_numerical_stability_passes_real_scores_and_fails_the_batch_on_infinity(
    env: Champion, tmp_path: Path, alerts: Receiver
) -> None:
    scored = score_february(env, tmp_path)
    check = CheckNumericalStabilityOperator(
        task_id="stability", predictions_uri=scored["output_uri"], features_uri=scored["serving_log_uri"],
        training_run_id=env.training.run_id, notifiers=[WebhookNotifier(webhook_conn_id="alerts")],
    )  # fmt: skip
    receipt = check.execute(task_context(NOW))
    assert receipt["severity"] == "ok" and len(receipt["details"]["checks"]) == 3 and alerts.requests == []

    broken = pd.read_parquet(scored["serving_log_uri"])
    broken["distance"] = broken["distance"].astype("float64")
    broken.loc[3, "distance"] = np.inf
    broken.loc[7, contracts.PREDICTION_COLUMN] = np.nan
    bad_uri = tmp_path / "broken.parquet"
    broken.to_parquet(bad_uri, index=False)
    failing = CheckNumericalStabilityOperator(
        task_id="stability", predictions_uri=str(bad_uri), features_uri=str(bad_uri),
        notifiers=[WebhookNotifier(webhook_conn_id="alerts")],
    )  # fmt: skip
    context = task_context(NOW)
    with pytest.raises(MlopsVerdictFailure, match="distance"):
        failing.execute(context)
    pushed = context["ti"].pushed["return_value"]
    assert pushed["severity"] == "alert"
    assert pushed["details"]["checks"][0]["non_finite"] == {"prediction": {"nan": 1, "inf": 0}}
    assert received(alerts)[0]["severity"] == "alert"


def test_performance_series_alerts_on_a_throughput_drop(env: Champion, alerts: Receiver) -> None:
    def run(day: int, throughput: float, metric: str = "scoring_throughput_rows_per_s") -> dict[str, Any]:
        operator = CheckPerformanceOperator(
            task_id="performance", pipeline="flights", metric=metric,
            receipt={"throughput_rows_per_s": throughput}, value_path="throughput_rows_per_s", max_drop="0.5",
            notifiers=[WebhookNotifier(webhook_conn_id="alerts")],
        )  # fmt: skip
        return operator.execute(task_context(NOW + timedelta(days=day)))

    assert [run(day, value)["severity"] for day, value in enumerate([9000.0, 11000.0, 10000.0, 9500.0])] == ["ok"] * 4
    assert run(0, 9000.0, metric="scoring_throughput_rows_per_s.2013-02-01T00:00:00+00:00")["severity"] == "ok"
    rerun = run(3, 9400.0)  # a rerun of day 3 logs nothing new: the history is still days 0-2
    assert rerun["details"]["history_points"] == 3 and rerun["severity"] == "ok"
    dropped = run(4, 3000.0)
    assert dropped["severity"] == "alert" and dropped["details"]["trailing_median"] == 9750.0
    assert [p["check"] for p in received(alerts)] == ["performance"]
    # Training time from a training receipt: the seconds of every phase are summed
    seconds = CheckPerformanceOperator(
        task_id="training_time", pipeline="flights", metric="training_seconds",
        receipt=json.dumps(env.training.to_dict()), value_path="seconds", higher_is_better="false",
    ).execute(task_context(NOW))  # fmt: skip
    assert seconds["details"]["current"] == pytest.approx(sum(env.training.result["seconds"].values()))


def test_dependencies_match_in_the_training_environment(env: Champion) -> None:
    receipt = CheckModelDependenciesOperator(task_id="deps", model_name=MODEL).execute(task_context(NOW))
    assert receipt["severity"] == "ok" and "onnxruntime" in receipt["details"]["compared"]
    assert "airflow_mlops" in receipt["details"]["compared"] and receipt["details"]["changed"] == {}


def test_source_schema_change_warns_and_a_broken_feature_fails(env: Champion, alerts: Receiver) -> None:
    def check(frame: pd.DataFrame, name: str) -> CheckSourceSchemaOperator:
        uri = env.root.layout("flights", contracts.KIND_SNAPSHOT, name, "snapshot.parquet")
        env.root.write_bytes(uri, parquet_bytes(frame))
        return CheckSourceSchemaOperator(task_id="schema", model_name=MODEL, snapshot_uri=uri,
                                         notifiers=[WebhookNotifier(webhook_conn_id="alerts")])  # fmt: skip

    march = flights(months=[3], sample=500)
    assert check(march, "2013-04-01").execute(task_context(NOW))["severity"] == "ok"
    wider = check(march.assign(visibility=10.0), "2013-04-02").execute(task_context(NOW))
    assert wider["severity"] == "warn" and wider["details"]["added"] == ["visibility"]
    with pytest.raises(MlopsVerdictFailure, match="distance"):
        check(march.assign(distance=march["distance"].astype(str)), "2013-04-03").execute(task_context(NOW))
    assert [p["severity"] for p in received(alerts)] == ["warn", "alert"]
    first = CheckSourceSchemaOperator(task_id="schema", model_name="never_promoted", snapshot_uri=env.snapshot_uri)
    assert first.execute(task_context(NOW))["severity"] == "ok"


def test_training_serving_skew_is_nil_for_the_registered_model(env: Champion) -> None:
    receipt = CheckTrainingServingSkewOperator(task_id="skew", model_name=MODEL).execute(task_context(NOW))
    assert receipt["severity"] == "ok", receipt["message"]
    assert receipt["details"]["rows"] == 600 and receipt["details"]["max_abs_probability_difference"] < 1e-5


def test_reproducibility_retrains_the_champion_exactly(env: Champion) -> None:
    receipt = CheckReproducibilityOperator(task_id="reproduce", model_name=MODEL).execute(task_context(NOW))
    assert receipt["severity"] == "ok", receipt["message"]
    assert receipt["details"]["identical_onnx"] and receipt["details"]["not_reproduced"] == []
    assert "test.roc_auc" in receipt["details"]["metrics"]


def test_explain_operator_writes_the_explanation(env: Champion, tmp_path: Path) -> None:
    scored = score_february(env, tmp_path)
    receipt = ExplainPredictionOperator(
        task_id="explain", model_name=MODEL, pipeline="flights", input_uri=scored["serving_log_uri"], row_index="4",
    ).execute(task_context(NOW))  # fmt: skip
    assert receipt["row_index"] == 4 and receipt["method"] == "lightgbm_pred_contrib"
    assert json.loads(Path(receipt["uri"]).read_text())["contributions"] == receipt["contributions"]
    served = pd.read_parquet(scored["serving_log_uri"]).iloc[4]
    assert receipt["onnx"]["probabilities"]["1"] == pytest.approx(float(served["probability_1"]), abs=1e-6)


def test_a_row_with_a_missing_value_gives_a_json_safe_receipt(env: Champion, tmp_path: Path) -> None:
    """A missing feature value (NaN) is served; its explanation must go to XCom, which is strict JSON."""
    scored = score_february(env, tmp_path)
    frame = pd.read_parquet(scored["serving_log_uri"]).head(5)
    frame["distance"] = float("nan")
    holed = tmp_path / "holed.parquet"
    frame.to_parquet(holed, index=False)
    receipt = ExplainPredictionOperator(
        task_id="explain", model_name=MODEL, pipeline="flights", input_uri=str(holed), row_index="0"
    ).execute(task_context(NOW))
    json.dumps(receipt, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(Path(receipt["uri"]).read_text())["contributions"] == receipt["contributions"]


def test_feature_importance_of_the_training_run(env: Champion) -> None:
    operator = CheckFeatureImportanceOperator(task_id="importance", run_id=env.training.run_id, min_share="0.0")
    receipt = operator.execute(task_context(NOW))
    assert receipt["severity"] == "ok" and set(receipt["details"]["importance"]) == {
        "hour", "minute", "sched_dep_time", "sched_arr_time", "distance", "carrier", "origin", "dest",
        "sched_dow", "temp", "visib", "precip", "wind_speed",  # the shipped spec's feature transforms
    }  # fmt: skip
    assert sum(receipt["details"]["importance"].values()) == pytest.approx(1.0)
    strict = CheckFeatureImportanceOperator(task_id="importance", run_id=env.training.run_id, min_share="0.5")
    assert strict.execute(task_context(NOW))["severity"] == "warn"


def test_a_bad_argument_fails_without_retry_naming_it(env: Champion) -> None:
    operator = CheckPerformanceOperator(
        task_id="performance", pipeline="flights", metric="m", receipt={"x": 1.0}, value_path="x", window="ten"
    )
    with pytest.raises(MlopsVerdictFailure, match="'window' parameter must be an integer"):
        operator.execute(task_context(NOW))
    with pytest.raises(MlopsVerdictFailure, match="'max_model_age'"):
        CheckModelStalenessOperator(
            task_id="staleness", model_name=MODEL, pipeline="flights", max_model_age="soon"
        ).execute(task_context(NOW))


def test_personal_data_in_a_snapshot_fails_the_task(env: Champion) -> None:
    clean = CheckPersonalDataOperator(task_id="privacy", snapshot_uri=env.snapshot_uri, sample_rows="2000")
    receipt = clean.execute(task_context(NOW))
    assert receipt["severity"] == "ok" and receipt["details"]["columns_checked"] >= 4
    march = flights(months=[3], sample=300)
    leaky = march.assign(booking_email=[f"traveller{i}@example.com" for i in range(len(march))])
    uri = env.root.layout("flights", contracts.KIND_SNAPSHOT, "2013-04-09", "snapshot.parquet")
    env.root.write_bytes(uri, parquet_bytes(leaky))
    with pytest.raises(MlopsVerdictFailure, match="booking_email"):
        CheckPersonalDataOperator(task_id="privacy", snapshot_uri=uri).execute(task_context(NOW))
    allowed = CheckPersonalDataOperator(task_id="privacy", snapshot_uri=uri, allow_columns="booking_email")
    assert allowed.execute(task_context(NOW))["severity"] == "ok"


def test_a_failing_notifier_neither_hides_nor_replaces_the_verdict(env: Champion, tmp_path: Path) -> None:
    broken = pd.DataFrame({contracts.PREDICTION_COLUMN: [0.0, np.nan]})
    broken.to_parquet(tmp_path / "p.parquet", index=False)
    unreachable = WebhookNotifier(webhook_conn_id="no_such_connection", raise_on_error=True)
    operator = CheckNumericalStabilityOperator(
        task_id="stability", predictions_uri=str(tmp_path / "p.parquet"), notifiers=[unreachable]
    )
    with pytest.raises(MlopsVerdictFailure, match="prediction"):
        operator.execute(task_context(NOW))
