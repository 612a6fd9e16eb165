"""The business metric through the operators, on real flights and a real embedded MLflow store: training
logs it on the test split, the drift check on every labelled served batch, and the proxy correlation
check reads those series and alerts through a webhook received by a local HTTP server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.training import parquet_bytes
from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.business import CheckProxyCorrelationOperator
from airflow_mlops.operators.drift import CheckDriftOperator
from airflow_mlops.operators.scoring import ScoreBatchOperator
from tests.notifiers.test_webhook import Receiver
from tests.operators.monitoring_support import MODEL, Champion, env_for, task_context, train_champion
from tests.support.data import flights

DELAY_COST = {
    "name": "delay_cost", "per_rows": 1000, "threshold": 0.25,
    "costs": {"false_negative": 100, "false_positive": 25, "true_positive": 25},
}  # fmt: skip
LABEL = "arr_delayed_15"
NOW = datetime(2013, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    """A champion of its own (the series of this module must not mix with other modules' batches)."""
    base = tmp_path_factory.mktemp("business")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env_for(base).items():
            patch.setenv(key, value)
        yield train_champion(base, business_metric=DELAY_COST)


@pytest.fixture
def env(champion: Champion, monkeypatch: pytest.MonkeyPatch) -> Champion:
    for key, value in env_for(champion.base).items():
        monkeypatch.setenv(key, value)
    return champion


def cost_per_1000(frame: pd.DataFrame) -> float:
    """The flights cost matrix written out by hand, to check the package's arithmetic against."""
    frame = frame[frame[LABEL].notna()]
    late, acted = frame[LABEL].to_numpy() == 1, frame["probability_1"].to_numpy() >= 0.25
    return float((100 * np.sum(late & ~acted) + 25 * np.sum(acted)) / len(frame) * 1000)


def test_training_logs_the_business_metric_of_the_test_split_beside_the_proxy(env: Champion) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    business = env.training.result["business"]
    run = MlflowHook().get_conn().get_run(env.training.run_id)
    assert run.data.metrics["test_delay_cost"] == pytest.approx(business["value"])
    assert "test_roc_auc" in run.data.metrics and "probability >= 0.25" in run.data.params["business_metric"]
    test_split = pd.read_parquet(env.root.fs_path(env.training.test_split_uri))
    counts = business["counts"]
    assert sum(counts.values()) == business["rows"] == len(test_split)
    assert counts["true_positive"] + counts["false_negative"] == int((test_split[LABEL] == 1).sum())
    acted = counts["true_positive"] + counts["false_positive"]
    assert business["value"] == pytest.approx((100 * counts["false_negative"] + 25 * acted) / len(test_split) * 1000)


def serving_log(env: Champion, tmp_path: Path, month: int) -> pd.DataFrame:
    """A month of real flights scored by the champion through ScoreBatchOperator: its labelled serving log."""
    path = tmp_path / f"flights_2013-{month:02d}.parquet"
    flights(months=[month], sample=3000).to_parquet(path, index=False)
    receipt = ScoreBatchOperator(
        task_id="score", input_uri=str(path), model_name=MODEL, pipeline="flights", partition=f"2013-{month:02d}",
        passthrough_columns=[LABEL], serving_log_rows="3000",
    ).execute(task_context(NOW))  # fmt: skip
    return pd.read_parquet(env.root.fs_path(receipt["serving_log_uri"]))


def blurred(log: pd.DataFrame, share: float) -> pd.DataFrame:
    """``log`` with the probabilities of ``share`` of its rows shuffled among them: a model that ranks worse."""
    out = log.copy()
    rng = np.random.default_rng(int(share * 100))
    rows = rng.choice(len(out), int(share * len(out)), replace=False)
    out.loc[rows, "probability_1"] = rng.permutation(out.loc[rows, "probability_1"].to_numpy())
    out["prediction"] = (out["probability_1"] >= 0.5).astype(out["prediction"].dtype)
    return out


def check_batch(env: Champion, log: pd.DataFrame, as_of: datetime) -> dict[str, Any]:
    partition = as_of.strftime("%Y-%m")
    uri = env.root.layout("flights", contracts.KIND_SERVING_LOG, partition, "labelled.parquet")
    env.root.write_bytes(uri, parquet_bytes(log))
    operator = CheckDriftOperator(
        task_id="check_drift", pipeline="flights", current_uri=uri, model_name=MODEL, partition=partition,
        as_of=as_of.isoformat(), spec={"html_report": False}, business_metric=DELAY_COST,
    )  # fmt: skip
    return operator.execute(task_context(as_of))


def proxy_check(**kwargs: Any) -> CheckProxyCorrelationOperator:
    kwargs.setdefault("window", "5")
    return CheckProxyCorrelationOperator(
        task_id="check_proxy_correlation", model_name=MODEL, business_metric=DELAY_COST,
        notifiers=[WebhookNotifier(webhook_conn_id="alerts")], **kwargs,
    )  # fmt: skip


def test_the_check_is_quiet_while_the_proxy_tracks_the_cost_and_alerts_when_it_stops(
    env: Champion, tmp_path: Path, alerts: Receiver
) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    # Months 4-8: May's flights served by a model that ranks worse and worse. The delay rate stays put, so
    # every lost point of AUC is a delay missed or an action wasted: the proxy tracks the cost.
    may = serving_log(env, tmp_path, 5)
    for month, share in zip((4, 5, 6, 7, 8), (0.0, 0.25, 0.5, 0.75, 1.0), strict=True):
        receipt = check_batch(env, blurred(may, share), datetime(2013, month, 1, tzinfo=UTC))
        assert receipt["quality"]["business"]["value"] == pytest.approx(cost_per_1000(blurred(may, share)))
    run = MlflowHook().get_conn().get_run(receipt["mlflow_run_id"])
    assert run.data.metrics["business.delay_cost"] == pytest.approx(receipt["quality"]["business"]["value"])
    tracking = proxy_check().execute(task_context(datetime(2013, 9, 1, tzinfo=UTC)))
    assert tracking["severity"] == "ok", tracking["message"]
    assert tracking["details"]["served"]["batches"] == 5 and tracking["details"]["judged"]["served"] >= 0.9
    assert "offline: 1 model(s) served, 3 needed" in tracking["message"] and alerts.requests == []

    # Months 10-14: real months in rising order of delay rate, served by a model that ranks better and
    # better. The cost follows the delay rate, which AUC does not see: the proxy says better, the business
    # pays more.
    months = {9: 1.0, 10: 0.75, 8: 0.5, 4: 0.25, 12: 0.0}  # delay rate 13%, 17%, 24%, 28%, 33%
    logs = [blurred(serving_log(env, tmp_path, month), share) for month, share in months.items()]
    assert [round(float(log[LABEL].mean()), 2) for log in logs] == sorted(round(float(log[LABEL].mean()), 2)
                                                                          for log in logs)  # fmt: skip
    for (year, month), log in zip(((2013, 10), (2013, 11), (2013, 12), (2014, 1), (2014, 2)), logs, strict=True):
        check_batch(env, log, datetime(year, month, 1, tzinfo=UTC))
    broken = proxy_check().execute(task_context(datetime(2014, 2, 1, tzinfo=UTC)))
    assert broken["severity"] == "alert" and broken["details"]["judged"]["served"] < 0
    assert [b["step"] for b in broken["details"]["batches"]] == sorted(b["step"] for b in broken["details"]["batches"])
    assert broken["model_version"] == env.version and "delay_cost" in broken["business_metric"]
    (payload,) = [json.loads(r["body"]) for r in alerts.requests]
    assert payload["check"] == "proxy_correlation" and payload["severity"] == "alert"
    assert "does not track the business metric delay_cost" in payload["text"]
    # Over the whole history (ten batches) the check still judges, from every batch logged so far.
    assert proxy_check(window="24").execute(task_context(NOW))["details"]["served"]["batches"] == 10


def test_a_bad_definition_fails_the_task_without_retry(env: Champion) -> None:
    from airflow_mlops.exceptions import MlopsVerdictFailure

    operator = CheckProxyCorrelationOperator(
        task_id="check_proxy_correlation", model_name=MODEL, business_metric={**DELAY_COST, "threshold": "high"}
    )
    with pytest.raises(MlopsVerdictFailure, match="'threshold' parameter must be a number"):
        operator.execute(task_context(NOW))
    with pytest.raises(MlopsVerdictFailure, match="'min_batches' parameter must be an integer >= 3"):
        proxy_check(min_batches="2").execute(task_context(NOW))
