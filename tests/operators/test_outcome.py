"""The delayed outcome hook on real flights and a real embedded MLflow store: the served output carries the
realised arrival delay, the proxy correlation check measures the delay minutes the model's warnings would
have caught on each served month, logs them beside the quality the drift check logged, and judges ROC AUC
against them instead of against the assumed cost table."""

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
MINUTES = {"name": "delay_minutes_caught", "column": "arr_delay", "floor": 0, "unit": "minutes", "per_rows": 1000}
LABEL = "arr_delayed_15"


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    """A champion of its own: the outcome series of this module must not mix with other modules' batches."""
    base = tmp_path_factory.mktemp("outcome")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env_for(base).items():
            patch.setenv(key, value)
        yield train_champion(base, business_metric=DELAY_COST)


@pytest.fixture
def env(champion: Champion, monkeypatch: pytest.MonkeyPatch) -> Champion:
    for key, value in env_for(champion.base).items():
        monkeypatch.setenv(key, value)
    return champion


def served(env: Champion, tmp_path: Path, month: int) -> pd.DataFrame:
    """A month of real flights scored by the champion with the realised delay passed through: every row."""
    path = tmp_path / f"flights_2013-{month:02d}.parquet"
    flights(months=[month], sample=3000).to_parquet(path, index=False)
    receipt = ScoreBatchOperator(
        task_id="score", input_uri=str(path), model_name=MODEL, pipeline="flights", partition=f"2013-{month:02d}",
        passthrough_columns=[LABEL, "arr_delay"], serving_log_rows="3000",
    ).execute(task_context(datetime(2013, month, 1, tzinfo=UTC)))  # fmt: skip
    return pd.read_parquet(env.root.fs_path(receipt["serving_log_uri"]))


def minutes_caught(frame: pd.DataFrame) -> float:
    """The outcome written out by hand, to check the package's arithmetic against."""
    frame = frame[frame["arr_delay"].notna()]
    minutes, acted = frame["arr_delay"].clip(lower=0).to_numpy(), frame["probability_1"].to_numpy() >= 0.25
    return float((minutes[acted].sum() - acted.mean() * minutes.sum()) / len(frame) * 1000)


def altered(log: pd.DataFrame, blur: float = 0.0, trade: float = 0.0) -> pd.DataFrame:
    """``log`` as another model would have served it: the probabilities of ``blur`` of the rows shuffled
    among them (it ranks worse); with ``trade``, that share of the flights 15-59 minutes late warned about
    (probability 0.9) and half that share of the flights 60+ minutes late not (0.01): it catches more late
    flights and fewer long delays."""
    out = log.copy()
    rng = np.random.default_rng(int(blur * 100) + int(trade * 1000))
    rows = rng.choice(len(out), int(blur * len(out)), replace=False)
    out.loc[rows, "probability_1"] = rng.permutation(out.loc[rows, "probability_1"].to_numpy())
    delay = out["arr_delay"].to_numpy()
    order = np.random.default_rng(7)  # one order for every trade: a larger trade moves the same flights and more
    short = order.permutation(np.flatnonzero((delay >= 15) & (delay < 60)))
    long_delays = order.permutation(np.flatnonzero(delay >= 60))
    out.loc[short[: int(trade * len(short))], "probability_1"] = 0.9
    out.loc[long_delays[: int(trade / 2 * len(long_delays))], "probability_1"] = 0.01
    out["probability_0"] = 1 - out["probability_1"]
    out["prediction"] = (out["probability_1"] >= 0.5).astype(out["prediction"].dtype)
    return out


def serve_batch(env: Champion, log: pd.DataFrame, as_of: datetime, alerts: bool = False) -> dict[str, Any]:
    """What the batch DAG does with one served month: the drift check logs its quality, then the proxy
    correlation check measures the outcome on the scoring receipt and judges."""
    partition = as_of.strftime("%Y-%m")
    uri = env.root.layout("flights", contracts.KIND_SERVING_LOG, partition, "labelled.parquet")
    env.root.write_bytes(uri, parquet_bytes(log))
    CheckDriftOperator(
        task_id="check_drift", pipeline="flights", current_uri=uri, model_name=MODEL, partition=partition,
        as_of=as_of.isoformat(), spec={"html_report": False}, business_metric=DELAY_COST,
    ).execute(task_context(as_of))  # fmt: skip
    receipt = {"output_uri": uri, "model_version": env.version, "partition": partition}
    return CheckProxyCorrelationOperator(
        task_id="check_proxy_correlation", model_name=MODEL, business_metric=DELAY_COST, outcome=MINUTES,
        batches=[receipt], window="5", notifiers=[WebhookNotifier(webhook_conn_id="alerts")] if alerts else [],
    ).execute(task_context(as_of))  # fmt: skip


def cost_table_check(as_of: datetime) -> dict[str, Any]:
    return CheckProxyCorrelationOperator(
        task_id="check_proxy_correlation", model_name=MODEL, business_metric=DELAY_COST, window="5"
    ).execute(task_context(as_of))


def test_the_proxy_is_judged_on_the_delay_minutes_measured_after_serving(
    env: Champion, tmp_path: Path, alerts: Receiver
) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    may = served(env, tmp_path, 5)
    assert may["arr_delay"].notna().sum() > 2900  # the realised delay reached the served output
    # Months 4-8: May served by a model that ranks worse and worse. ROC AUC falls from 0.68 to 0.50 and the
    # delay minutes its warnings catch beyond chance from about 3,000 per 1,000 flights to about 0: tracked.
    for month, blur in zip((4, 5, 6, 7, 8), (0.0, 0.25, 0.5, 0.75, 1.0), strict=True):
        receipt = serve_batch(env, altered(may, blur=blur), datetime(2013, month, 1, tzinfo=UTC))
        measured = receipt["outcome"]["measured"][env.version]
        assert measured["value"] == pytest.approx(minutes_caught(altered(may, blur=blur)))
        # Cancelled flights have no arrival delay: waiting for an outcome that will not come, left out.
        assert measured["rows"] == int(may["arr_delay"].notna().sum()) > 2900
        assert measured["pending_rows"] == int(may["arr_delay"].isna().sum())
    assert receipt["severity"] == "ok" and receipt["details"]["business"] == "delay_minutes_caught"
    assert receipt["details"]["judged"]["served"] == pytest.approx(1.0)
    first, last = receipt["details"]["batches"][0], receipt["details"]["batches"][-1]
    assert first["business"] > 2000 > 200 > last["business"] and first["served"] > 0.65 > 0.55 > last["served"]
    # The outcome sits beside the quality the drift check logged, on the serving version's monitoring run.
    client = MlflowHook().get_conn()
    run = client.get_run(_monitoring_run(client, env))
    assert run.data.metrics["outcome.delay_minutes_caught"] == pytest.approx(last["business"])
    assert alerts.requests == []

    # Months 10-14: May served by models that warn about more and more of the flights 15-59 minutes late
    # and fewer of those 60+ minutes late. ROC AUC rises (more late flights ranked high) and so does the
    # cost table's verdict, but the delay minutes caught fall: the proxy says better, the outcome worse.
    moments = [datetime(2013, 10, 1, tzinfo=UTC), datetime(2013, 11, 1, tzinfo=UTC), datetime(2013, 12, 1, tzinfo=UTC),
               datetime(2014, 1, 1, tzinfo=UTC), datetime(2014, 2, 1, tzinfo=UTC)]  # fmt: skip
    for moment, trade in zip(moments, (0.0, 0.25, 0.5, 0.75, 1.0), strict=True):
        receipt = serve_batch(env, altered(may, trade=trade), moment, alerts=True)
    batches = receipt["details"]["batches"]
    assert [b["served"] for b in batches] == sorted(b["served"] for b in batches)  # AUC up
    assert [b["business"] for b in batches] == sorted((b["business"] for b in batches), reverse=True)  # minutes down
    assert receipt["severity"] == "alert" and receipt["details"]["judged"]["served"] == pytest.approx(-1.0)
    payloads = [json.loads(r["body"]) for r in alerts.requests]  # from the batch where the window turned
    assert payloads and {(p["check"], p["severity"]) for p in payloads} == {("proxy_correlation", "alert")}
    assert "does not track the business metric delay_minutes_caught" in payloads[-1]["text"]
    # The assumed cost table, on the same batches, does not see it.
    table = cost_table_check(moments[-1])
    assert table["details"]["business"] == "delay_cost" and table["severity"] == "ok", table["message"]


def _monitoring_run(client: Any, env: Champion) -> str:
    from airflow_mlops.core import monitoring

    experiment = client.get_run(env.training.run_id).info.experiment_id
    return monitoring.monitoring_run(client, experiment, f"{MODEL}/v{env.version}", "drift")


def test_an_outcome_joined_after_serving_and_one_still_pending(env: Champion, tmp_path: Path) -> None:
    from airflow_mlops.exceptions import DataValidationFailed

    # June scored with its keys passed through, without the delay: it is not known when the flights are served.
    june = flights(months=[6], sample=3000)
    june.drop(columns=["arr_delay"]).to_parquet(tmp_path / "june.parquet", index=False)
    keys = ["carrier", "flight", "sched_dep_ts"]
    score = ScoreBatchOperator(
        task_id="score", input_uri=str(tmp_path / "june.parquet"), model_name=MODEL, pipeline="flights",
        partition="2013-06-joined", passthrough_columns=keys,
    ).execute(task_context(datetime(2013, 6, 1, tzinfo=UTC)))  # fmt: skip
    # The delays arrive later in their own file, keyed like the served rows; a quarter of them not yet.
    arrived = june[[*keys, "arr_delay"]].iloc[: len(june) * 3 // 4]
    arrived.to_parquet(tmp_path / "arrivals.parquet", index=False)
    joined = {**MINUTES, "source": str(tmp_path / "arrivals.parquet"), "keys": keys}

    def check(outcome: dict[str, Any]) -> dict[str, Any]:
        return CheckProxyCorrelationOperator(
            task_id="check_proxy_correlation", model_name=MODEL, business_metric=DELAY_COST, outcome=outcome,
            batches=[score, {"output_uri": None, "skipped": "empty partition", "model_version": env.version}],
        ).execute(task_context(datetime(2014, 3, 1, tzinfo=UTC)))  # fmt: skip

    measured = check(joined)["outcome"]["measured"][env.version]
    output = pd.read_parquet(env.root.fs_path(score["output_uri"]))
    expected = output.merge(arrived, on=keys, how="inner")
    assert measured["value"] == pytest.approx(minutes_caught(expected))
    assert measured["rows"] == int(expected["arr_delay"].notna().sum())
    assert measured["pending_rows"] == len(june) - measured["rows"] > len(june) // 4
    pd.concat([arrived, arrived.head(1)]).to_parquet(tmp_path / "doubled.parquet", index=False)
    with pytest.raises(DataValidationFailed, match="holds 1 key"):
        check({**joined, "source": str(tmp_path / "doubled.parquet")})
    with pytest.raises(DataValidationFailed, match=r"lacks \['arr_delay'\].*passthrough_columns"):
        check(MINUTES)
