"""Canary operators against a real embedded MLflow registry and real flights batches: a challenger that
disagrees with the champion, or is worse on the labelled rows, is dropped after its shadow batches (alias
removed, reason on the version, alert sent); one that agrees and passed the gate branches to the promotion,
which tests/dags/test_canary.py runs through the reference DAGs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.canary import CanaryPolicy
from airflow_mlops.core.canary.record import TAG_REASON, TAG_STATUS, recorded_batches, recorded_verdict
from airflow_mlops.core.registry import alias_version
from airflow_mlops.exceptions import MlopsVerdictFailure
from airflow_mlops.notifiers.webhook import WebhookNotifier
from airflow_mlops.operators.canary import VERDICT_KEY, JudgeChallengerOperator, NameChallengerOperator
from airflow_mlops.operators.scoring import ScoreBatchOperator
from tests.notifiers.test_webhook import Receiver
from tests.operators.registry_support import task_context
from tests.support import models


@pytest.fixture
def mlops_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: tuple[Any, str]) -> Path:
    """A fresh storage root per test, beside the module's registry."""
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    return tmp_path


def complete(client: Any, found: models.RegisteredModel) -> str:
    """Mark a test registration complete, as RegisterModelOperator does once the version is READY and tagged."""
    client.set_model_version_tag(found.name, found.version, contracts.TAG_REGISTRATION_COMPLETE, "true")
    return found.version


def weak_classifier(kind: str) -> models.TrainedModel:
    """A challenger that should not replace the champion, on the champion's flights and features:
    ``shuffled`` learns from labels shuffled across rows (no better than chance: it underperforms);
    ``balanced`` is a class-balanced logistic regression, which calls every other flight late (it disagrees)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = models.flights_frame((1,), 6000)
    x = models.prepare(frame, models.FLIGHT_NUMERIC, models.FLIGHT_CATEGORICAL)
    y = frame[models.FLIGHT_TARGET].astype(int).to_numpy()
    if kind == "shuffled":
        y = np.random.default_rng(0).permutation(y)
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categories = OneHotEncoder(handle_unknown="ignore")
    features = ColumnTransformer(
        [("num", numeric, models.FLIGHT_NUMERIC), ("cat", categories, models.FLIGHT_CATEGORICAL)]
    )
    weights = "balanced" if kind == "balanced" else None
    native = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=500, class_weight=weights))])
    native.fit(x, y)
    onnx_bytes = models.export(native, models.FLIGHT_NUMERIC, models.FLIGHT_CATEGORICAL, classifier=True)
    spec = models._spec("binary", models.FLIGHT_TARGET, models.FLIGHT_NUMERIC, models.FLIGHT_CATEGORICAL, [0, 1])
    return models.TrainedModel(native, onnx_bytes, spec, frame.sample(n=1000, random_state=0))


def shadow_batch(tmp_path: Path, name: str, month: int) -> dict[str, Any]:
    """One month of flights (labelled) scored by the champion with the challenger in its shadow."""
    path = tmp_path / "landing" / f"2013-{month:02d}.parquet"
    path.parent.mkdir(exist_ok=True)
    models.flights_frame((month,), 3000).to_parquet(path, index=False)
    operator = ScoreBatchOperator(task_id="score", input_uri=str(path), model_name=name, pipeline="flights",
                                  partition=f"2013-{month:02d}", shadow=True)  # fmt: skip
    import datetime as dt

    return operator.execute({**task_context("score"), "logical_date": dt.datetime(2013, month + 1, 1, tzinfo=dt.UTC)})


def judge(name: str, receipts: list[dict[str, Any]], **kwargs: Any) -> tuple[list[str], dict[str, Any]]:
    operator = JudgeChallengerOperator(
        task_id="judge_challenger", model_name=name, receipts=receipts, policy=CanaryPolicy.from_mapping(2).to_dict(),
        champion_version="1", promote_task_id="flights.promote_challenger", **kwargs,
    )  # fmt: skip
    context = task_context("judge_challenger")
    return operator.choose_branch(context), context["ti"].pushed[VERDICT_KEY]


@pytest.mark.parametrize(
    ("kind", "reason"),
    [("balanced", "is below min_agreement 0.9"), ("shuffled", "worse on the labelled rows than the champion")],
    ids=["disagrees", "underperforms"],
)
def test_a_challenger_that_disagrees_or_underperforms_is_dropped_after_its_batches(
    mlops_env: Path, registry: tuple[Any, str], kind: str, reason: str, alerts: Receiver
) -> None:
    client, experiment_id = registry
    name = f"canary-{kind}"
    champion = models.register(client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id)
    complete(client, champion)
    weak = models.register(client, weak_classifier(kind), name, experiment_id=experiment_id, alias=None)
    named = NameChallengerOperator(task_id="name_challenger", model_name=name, version=complete(client, weak))
    assert named.execute(task_context("name_challenger"))["replaced_challenger"] is None
    assert alias_version(client, name, "challenger") == "2"

    notifiers = [WebhookNotifier(webhook_conn_id="alerts")]
    february = shadow_batch(mlops_env, name, 2)
    assert february["model_version"] == "1" and february["shadow"]["labelled_rows"] > 2000
    branches, verdict = judge(name, [february], notifiers=notifiers)
    assert (branches, verdict["decision"], verdict["batches"]) == ([], "wait", 1)
    assert alias_version(client, name, "challenger") == "2" and alerts.requests == []

    branches, verdict = judge(name, [shadow_batch(mlops_env, name, 3)], notifiers=notifiers)
    print(kind, verdict)
    assert (branches, verdict["decision"], verdict["batches"]) == ([], "drop", 2)
    assert reason in " ".join(verdict["reasons"])
    assert alias_version(client, name, "challenger") is None  # dropped...
    assert alias_version(client, name, "champion") == "1"  # ...and the champion serves on
    tags = client.get_model_version(name, "2").tags
    assert tags[TAG_STATUS] == "dropped" and reason in tags[TAG_REASON]
    assert [b.partition for b in recorded_batches(tags)] == ["2013-02", "2013-03"]
    assert recorded_verdict(tags)["decision"] == "drop"
    (alert,) = alerts.requests
    assert b"canary" in alert["body"] and f"Challenger version 2 of {name} dropped".encode() in alert["body"]
    # Without a challenger the judgement has nothing to do.
    assert judge(name, [])[1]["decision"] == "none"


def test_the_champion_cannot_be_its_own_challenger_and_a_bad_policy_fails_without_retry(
    mlops_env: Path, registry: tuple[Any, str]
) -> None:
    from airflow_mlops.operators.registry import ModelNotPromotable

    client, experiment_id = registry
    champion = models.register(
        client, models.flights_classifier("lightgbm"), "canary-self", experiment_id=experiment_id
    )
    named = NameChallengerOperator(task_id="n", model_name="canary-self", version=complete(client, champion))
    with pytest.raises(ModelNotPromotable, match="is the champion: it cannot be its own challenger"):
        named.execute(task_context("n"))
    bad = JudgeChallengerOperator(task_id="j", model_name="canary-self", receipts=[], promote_task_id="p",
                                  policy={"batches": 2, "min_agreement": 2})  # fmt: skip
    with pytest.raises(MlopsVerdictFailure, match="'min_agreement' parameter must be a number >= 0 and <= 1"):
        bad.choose_branch(task_context("j"))


def test_an_agreeing_gated_challenger_branches_to_the_promotion_and_an_ungated_one_is_dropped(
    mlops_env: Path, registry: tuple[Any, str]
) -> None:
    client, experiment_id = registry
    name = "canary-agrees"
    champion = models.register(client, models.flights_classifier("lightgbm"), name, experiment_id=experiment_id)
    complete(client, champion)
    twin = models.register(client, models.flights_classifier("lightgbm", seed=1), name, experiment_id=experiment_id,
                           alias=None)  # fmt: skip
    version = complete(client, twin)
    client.set_model_version_tag(name, version, contracts.TAG_GATE_PASSED, "true")
    NameChallengerOperator(task_id="n", model_name=name, version=version).execute(task_context("n"))
    receipts = [shadow_batch(mlops_env, name, month) for month in (2, 3)]
    branches, verdict = judge(name, receipts)
    assert (branches, verdict["decision"], verdict["version"], verdict["champion_version"]) == (
        ["flights.promote_challenger"], "promote", "2", "1")  # fmt: skip
    assert verdict["agreement"] >= 0.9 and abs(verdict["quality_drop"]) <= 0.01
    assert client.get_model_version(name, "2").tags[TAG_STATUS] == "passed"
    # The same figures (recorded on the version), but no passed gate on record: not promoted.
    client.set_model_version_tag(name, version, contracts.TAG_GATE_PASSED, "false")
    branches, verdict = judge(name, [])
    assert (
        branches == [] and verdict["decision"] == "drop" and "does not record a passed gate" in verdict["reasons"][-1]
    )
    assert alias_version(client, name, "challenger") is None
