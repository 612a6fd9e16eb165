"""CheckFeatureCostOperator on real flights training runs logged to a real MLflow store (sqlite)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, SourceNotFoundError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import TrainingSpec, parquet_bytes, run_training
from airflow_mlops.exceptions import MlopsVerdictFailure
from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.feature_cost import CheckFeatureCostOperator
from tests.core.feature_cost.support import shipped_spec, with_band, with_tailnum
from tests.notifiers.test_webhook import Receiver
from tests.operators.monitoring_support import env_for, small_spec, task_context
from tests.support.data import FLIGHTS_DIR, flights

NOW = datetime(2013, 3, 2, tzinfo=UTC)


def stale_band_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A small model with ``distance_band`` (costly, useless) whose weather is read from the pipeline's
    storage (``{root}/flights/dims/weather.parquet``), where the feed stopped on 1 February 2013."""
    spec = with_band(spec)
    spec["features"]["joins"] = [{**spec["features"]["joins"][0], "source": "dims/weather.parquet"}]
    return spec


def cut_weather(root: Path) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    weather = pq.read_table(FLIGHTS_DIR / "weather.parquet")
    february = pa.scalar(datetime(2013, 2, 1, tzinfo=UTC), pa.timestamp("s", tz="UTC"))
    folder = root / "flights" / "dims"
    folder.mkdir(parents=True)
    pq.write_table(weather.filter(pc.less(weather.column("time_hour"), february)), folder / "weather.parquet")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Three training runs in one MLflow store: the shipped flights spec, a small model with ``tailnum``, and
    one with ``distance_band`` and a weather file cut short."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    base = tmp_path_factory.mktemp("feature-cost")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env_for(base).items():
            patch.setenv(key, value)
        hook = MlflowHook()
        hook.activate()
        root = StorageRoot(str(base / "storage"))
        found: dict[str, Any] = {"base": base}
        cut_weather(base / "storage")
        for name, spec, sample in (
            ("shipped", shipped_spec(), 30_000),
            ("tailnum", with_tailnum(small_spec()), 6000),
            ("stale", stale_band_spec(small_spec()), 6000),
        ):
            uri = root.layout("flights", contracts.KIND_SNAPSHOT, name, "snapshot.parquet")
            sha = root.write_bytes(uri, parquet_bytes(flights(months=[1, 2], sample=sample)))
            found[name] = run_training(
                TrainingSpec.from_mapping(spec),
                root=root,
                snapshot_uri=uri,
                snapshot_sha256=sha,
                pipeline="flights",
                partition=name,
                experiment_id=hook.ensure_experiment("flights"),
            ).run_id
        yield found


@pytest.fixture
def client(runs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    from airflow_mlops.hooks.mlflow import MlflowHook

    for key, value in env_for(runs["base"]).items():
        monkeypatch.setenv(key, value)
    return MlflowHook().get_conn()


def check(run_id: str, **kwargs: Any) -> dict[str, Any]:
    operator = CheckFeatureCostOperator(
        task_id="check_feature_cost", run_id=run_id, notifiers=[WebhookNotifier(webhook_conn_id="alerts")], **kwargs
    )
    return operator.execute(task_context(NOW))


def test_an_unused_costly_feature_warns_through_the_webhook_and_the_table_is_on_the_run(
    runs: dict[str, Any], client: Any, alerts: Receiver, tmp_path: Path
) -> None:
    # With the weather join priced (about 3 ms per 1,000 rows, four times this 60-tree model's serving),
    # tailnum's encoder and coercion are 1.4 % of the whole cost: the floor is lowered to see it.
    receipt = check(runs["tailnum"], max_cost_ratio="3", min_cost_share="0.005")
    assert receipt["severity"] == "warn" and "tailnum" in receipt["details"]["flagged"]
    assert receipt["check"] == "feature_cost" and receipt["run_id"] == runs["tailnum"]
    [alert] = [json.loads(r["body"]) for r in alerts.requests]
    assert alert["check"] == "feature_cost" and alert["severity"] == "warn" and "tailnum" in alert["text"]
    # The table is inspectable on the training run: an artifact, and metrics per feature.
    assert receipt["table_uri"] == f"runs:/{runs['tailnum']}/feature_cost/feature_cost.json"
    local = client.download_artifacts(runs["tailnum"], "feature_cost/feature_cost.json", str(tmp_path))
    logged = json.loads(Path(local).read_text())
    assert logged["details"]["features"] == receipt["details"]["features"]
    metrics = client.get_run(runs["tailnum"]).data.metrics
    tailnum = next(row for row in receipt["details"]["features"] if row["feature"] == "tailnum")
    assert metrics["feature_cost.tailnum.cost_share"] == pytest.approx(tailnum["cost_share"])
    assert metrics["feature_cost.flagged"] == len(receipt["details"]["flagged"])
    assert metrics["feature_cost.tailnum.model_bytes"] > 0


def test_a_model_whose_features_pay_for_themselves_passes_quietly(
    runs: dict[str, Any], client: Any, alerts: Receiver
) -> None:
    receipt = check(runs["shipped"], log_to_run="false")
    assert receipt["severity"] == "ok", receipt["message"]
    shipped = shipped_spec()["features"]
    features = len(shipped["numeric"]) + len(shipped["categorical"])  # the transforms' outputs included
    assert receipt["details"]["flagged"] == {} and len(receipt["details"]["features"]) == features == 13
    assert receipt["details"]["seconds"] < 5  # a few seconds at most, at every training
    # Upstream: the weather join timed on the run's snapshot, its dimension fresh and matched.
    table = {row["feature"]: row for row in receipt["details"]["features"]}
    assert table["temp"]["compute_ms_per_1k"] > 0 and table["carrier"]["compute_ms_per_1k"] == 0.0
    weather = receipt["details"]["upstream"]["dimensions"]["weather"]
    assert weather["lag_hours"] == 0.0 and weather["unmatched_share"] < 0.02
    assert receipt["details"]["upstream"]["rows"] == 10_000  # a bounded sample of the 30,000-row snapshot
    assert alerts.requests == []
    assert receipt["table_uri"] is None
    assert not any(k.startswith("feature_cost.") for k in client.get_run(runs["shipped"]).data.metrics)


def test_a_budget_can_fail_the_task_and_a_bad_setting_is_named(runs: dict[str, Any], client: Any) -> None:
    with pytest.raises(MlopsVerdictFailure, match="ms per 1k rows to serve"):
        check(runs["shipped"], max_serving_ms_per_1k="0", fail_on="warn", log_to_run="false")
    with pytest.raises(MlopsVerdictFailure, match="'max_cost_ratio' parameter must be a number"):
        check(runs["shipped"], max_cost_ratio="cheap")
    with pytest.raises(MlopsVerdictFailure, match="'repeats' parameter must be an integer"):
        check(runs["shipped"], repeats="0")


def test_a_run_without_readable_importance_or_model_is_named(runs: dict[str, Any], client: Any) -> None:
    experiment = client.get_run(runs["shipped"]).info.experiment_id
    garbled = client.create_run(experiment).info.run_id
    client.log_text(garbled, "[0.5, 0.5]", "importance/feature_importance.json")
    with pytest.raises(ArtifactError, match="not a JSON object of numbers"):
        check(garbled)
    with pytest.raises(SourceNotFoundError, match=r"importance/feature_importance\.json"):
        check(client.create_run(experiment).info.run_id)
    importance_only = client.create_run(experiment).info.run_id
    client.log_text(importance_only, '{"hour": 1.0}', "importance/feature_importance.json")
    with pytest.raises(SourceNotFoundError, match=r"spec/training_spec\.json"):
        check(importance_only)


def test_upstream_costs_are_on_the_run_and_a_stale_dimension_and_a_costly_transform_warn(
    runs: dict[str, Any], client: Any, alerts: Receiver
) -> None:
    receipt = check(runs["stale"])
    flagged = receipt["details"]["flagged"]
    assert receipt["severity"] == "warn"
    assert any("of the cost for 0.0% of the importance" in reason for reason in flagged["distance_band"])
    assert {"temp", "visib", "precip", "wind_speed"} <= set(flagged)
    assert any("its dimension 'weather' is stale" in reason for reason in flagged["temp"])
    assert "carrier" not in flagged
    weather = receipt["details"]["upstream"]["dimensions"]["weather"]
    assert weather["newest"].startswith("2013-01-31T23") and weather["lag_hours"] > 27 * 24
    assert weather["unmatched_share"] > 0.4
    [alert] = [json.loads(r["body"]) for r in alerts.requests]
    assert "distance_band" in alert["text"] and "is stale" in alert["text"]
    # The figures are on the training run beside the model-side ones.
    metrics = client.get_run(runs["stale"]).data.metrics
    assert metrics["feature_cost.dimension.weather.lag_hours"] == pytest.approx(weather["lag_hours"])
    assert metrics["feature_cost.dimension.weather.unmatched_share"] == pytest.approx(weather["unmatched_share"])
    band = next(row for row in receipt["details"]["features"] if row["feature"] == "distance_band")
    assert band["compute_ms_per_1k"] > 0
    assert metrics["feature_cost.distance_band.compute_ms_per_1k"] == pytest.approx(band["compute_ms_per_1k"])
    # Lenient limits on the dimension leave the weather features to the cost rule alone.
    lenient = check(runs["stale"], max_dimension_lag="30d", max_unmatched_share="0.9", log_to_run="false")
    assert "distance_band" in lenient["details"]["flagged"]
    reasons = [reason for found in lenient["details"]["flagged"].values() for reason in found]
    assert not any("stale" in reason or "find no" in reason for reason in reasons)
