"""What model age costs, measured the paper's way: three versions trained on flights of different months
(January-February, March-April, May-June, the last the champion) score the same labelled October, and
the quality lost per month of age comes from their difference on those rows, not from one model's
quality over a season."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import metrics
from airflow_mlops.exceptions import MlopsVerdictFailure
from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.monitoring_staleness import MeasureStalenessImpactOperator
from airflow_mlops.operators.scoring import ScoreBatchOperator
from tests.notifiers.test_webhook import Receiver
from tests.operators.monitoring_support import MODEL, Champion, env_for, received, task_context, train_champion
from tests.support.data import flights

OCTOBER = datetime(2013, 10, 1, tzinfo=UTC)
WINDOWS = {"1": (1, 2), "2": (3, 4), "3": (5, 6)}


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("staleness")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env_for(base).items():
            patch.setenv(key, value)
        trained: list[Champion] = [
            train_champion(base, months=months, partition=f"2013-{months[-1]:02d}-28") for months in WINDOWS.values()
        ]
        batch = base / "flights_2013-10.parquet"
        flights(months=[10], sample=4000).to_parquet(batch, index=False)
        yield {"base": base, "versions": trained, "batch": str(batch)}


@pytest.fixture
def deployment(versions: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for key, value in env_for(versions["base"]).items():
        monkeypatch.setenv(key, value)
    return versions


def measure(batch: Any, **kwargs: Any) -> dict[str, Any]:
    operator = MeasureStalenessImpactOperator(task_id="staleness_impact", model_name=MODEL, batches=batch, **kwargs)
    return operator.execute(task_context(OCTOBER))


def served_auc(batch: str, version: str, tmp_path: Path) -> tuple[float, int]:
    """The ROC AUC of ``version`` on the batch's labelled rows, scored by the batch DAG's own scoring task."""
    receipt = ScoreBatchOperator(
        task_id="score", input_uri=batch, model_name=MODEL, pipeline="flights", model_version=version,
        partition=f"check-v{version}", passthrough_columns=["arr_delayed_15"], storage_root=str(tmp_path),
    ).execute(task_context(OCTOBER))  # fmt: skip
    frame = pd.read_parquet(receipt["output_uri"])
    known = frame["arr_delayed_15"].notna()
    truth = frame.loc[known, "arr_delayed_15"].astype(int).to_numpy()
    return metrics.roc_auc(truth, frame.loc[known, ["probability_0", "probability_1"]].to_numpy()), int(known.sum())


def test_models_of_three_ages_score_the_same_october_rows(deployment: dict[str, Any], tmp_path: Path) -> None:
    receipt = measure(deployment["batch"])
    details = receipt["details"]
    assert details["metric"] == "roc_auc" and receipt["model_version"] == "3"
    points = {p["version"]: p for p in details["points"]}
    assert sorted(points) == ["1", "2", "3"]
    # Each version's age counts from the end of its own training months, recorded at training.
    assert all(p["data_end_from"] == "tag" for p in points.values())
    for version, months in WINDOWS.items():
        end = pd.Timestamp(points[version]["data_end"]).tz_convert("America/New_York")  # features.timezones
        assert (end.year, end.month, end.day) == (2013, months[-1], end.days_in_month) and end.hour >= 21
    assert points["1"]["age_days"] > points["2"]["age_days"] + 55 > points["3"]["age_days"] + 110
    # Same rows: every version's figure is its AUC on all the labelled October rows, as serving scores them.
    for version in WINDOWS:
        auc, rows = served_auc(deployment["batch"], version, tmp_path)
        assert details["rows"] == rows > 3800
        assert points[version]["quality"] == pytest.approx(auc, abs=1e-9)
    ages = np.array([points[v]["age_days"] for v in WINDOWS])
    slope = np.polyfit(ages, np.array([points[v]["quality"] for v in WINDOWS]), 1)[0]
    assert details["cost_per_month"] == pytest.approx(-slope * 30.0)


def test_the_threshold_decides_the_alert_and_the_figures_reach_mlflow(
    deployment: dict[str, Any], alerts: Receiver
) -> None:
    from airflow_mlops.hooks.mlflow import MlflowHook

    cost = measure(deployment["batch"])["details"]["cost_per_month"]
    # Older is worse on October: January-February 0.634 ROC AUC, May-June 0.651 (3,970 rows).
    assert 0.001 < cost < 0.02
    assert measure([deployment["batch"]], policy={"max_cost_per_month": cost + 0.001})["severity"] == "ok"
    assert alerts.requests == []
    strict = measure(
        [{"input_uri": deployment["batch"], "output_uri": "scored.parquet"}],
        policy={"max_cost_per_month": cost - 0.001},
        notifiers=[WebhookNotifier(webhook_conn_id="alerts")],
    )
    assert strict["severity"] == "alert" and "retrain more often" in strict["message"]
    (payload,) = received(alerts)
    assert payload["check"] == "staleness_impact" and payload["severity"] == "alert"
    # An empty partition (skipped by scoring) is no batch.
    assert measure([{"input_uri": deployment["batch"], "output_uri": None, "skipped": "empty"}])["severity"] == "ok"
    client = MlflowHook().get_conn()
    run_id = deployment["versions"][-1].training.run_id
    logged = client.get_metric_history(run_id, "staleness.cost_per_month")
    assert [m.value for m in logged] == [pytest.approx(cost)]  # once per batch time, however often it runs
    assert len(client.get_metric_history(run_id, "staleness.roc_auc.v1")) == 1


def test_only_the_versions_the_policy_allows_are_scored(deployment: dict[str, Any]) -> None:
    two = measure(deployment["batch"], policy={"max_versions": 2})
    assert sorted(p["version"] for p in two["details"]["points"]) == ["2", "3"]
    judged_later = measure(deployment["batch"], policy={"max_versions": 2, "min_versions": 2})
    assert "cost_per_month" in judged_later["details"]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ({"max_cost_per_month": "a lot"}, "'max_cost_per_month' parameter must be a number >= 0"),
        ({"max_versions": 1}, "'max_versions' parameter must be an integer >= 2"),
        ({"min_versions": 4, "max_versions": 3}, "min_versions \\(4\\) cannot exceed max_versions \\(3\\)"),
        ({"max_cost": 0.01}, "Unknown key\\(s\\) \\['max_cost'\\]"),
    ],
)
def test_a_bad_policy_fails_naming_it(deployment: dict[str, Any], policy: dict[str, Any], expected: str) -> None:
    with pytest.raises(MlopsVerdictFailure, match=expected):
        measure(deployment["batch"], policy=policy)


def test_an_older_version_scored_on_other_rows_stops_the_measurement(
    deployment: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_mlops.core.monitoring import versions
    from airflow_mlops.exceptions import DataValidationFailed

    scored = versions._score

    def on_a_sample(*args: Any) -> dict[str, Any]:
        """The oldest version scoring only every other row, as a cheaper comparison might."""
        out = scored(*args)
        if args[3].version == "1":
            out = {k: v[::2] if isinstance(v, np.ndarray) else v for k, v in out.items()}
        return out

    monkeypatch.setattr(versions, "_score", on_a_sample)
    with pytest.raises(DataValidationFailed, match=r"v1 scored other rows of .* than v3"):
        measure(deployment["batch"])
