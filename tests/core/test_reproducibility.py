"""Training/serving skew and reproducibility checks on a real champion: they pass on the real thing and
alert when the serving path or the recorded metrics disagree."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, IntegrityError, SpecError
from airflow_mlops.core.monitoring.facts import model_version_facts
from airflow_mlops.core.reproducibility import (
    check_reproducibility,
    check_training_serving_skew,
    read_reference,
    spec_from_artifact,
)
from airflow_mlops.core.serving import load_serving_model, resolve_model_version
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.operators.monitoring_support import MODEL, Champion, small_spec, use_shared_champion


@pytest.fixture
def champion_env(monkeypatch: pytest.MonkeyPatch) -> Champion:
    return use_shared_champion(monkeypatch)


def serving(champion: Champion) -> tuple:
    client = MlflowHook().get_conn()
    ref = resolve_model_version(client, MODEL, alias=contracts.ALIAS_CHAMPION)
    return load_serving_model(client, ref), read_reference(client, ref.run_id)


def test_skew_alerts_when_serving_features_differ_from_training(champion_env: Champion) -> None:
    model, reference = serving(champion_env)
    assert check_training_serving_skew(reference, model, max_rows=200).severity == "ok"
    # Serving sees distances in kilometres while training saw miles: the classic skew.
    skewed = reference.assign(distance=reference["distance"] * 1.609)
    finding = check_training_serving_skew(skewed, model)
    assert finding.is_alert and finding.details["max_abs_probability_difference"] > 1e-3
    assert "Training/serving skew" in finding.message


def test_skew_needs_the_training_time_predictions(champion_env: Champion) -> None:
    model, reference = serving(champion_env)
    with pytest.raises(DataError, match="probability_1"):
        check_training_serving_skew(reference.drop(columns=["probability_1"]), model)


def test_reproducibility_alerts_when_recorded_metrics_differ(champion_env: Champion) -> None:
    facts = model_version_facts(MlflowHook().get_conn(), MODEL, alias=contracts.ALIAS_CHAMPION)
    metrics = {split: dict(values) for split, values in facts.spec["metrics"].items()}
    metrics["test"]["roc_auc"] += 0.01  # as if the run had logged a better model than its spec gives
    tampered = replace(facts, spec={**facts.spec, "metrics": metrics})
    finding = check_reproducibility(tampered, champion_env.root)
    assert finding.is_alert and finding.details["not_reproduced"] == ["test.roc_auc"]
    assert finding.details["identical_onnx"]


def test_reproducibility_refuses_a_changed_snapshot(champion_env: Champion) -> None:
    facts = model_version_facts(MlflowHook().get_conn(), MODEL, alias=contracts.ALIAS_CHAMPION)
    tags = {**facts.run_tags, contracts.TAG_DATASET_SHA256: "0" * 64}
    with pytest.raises(IntegrityError, match="changed since"):
        check_reproducibility(replace(facts, run_tags=tags), champion_env.root)


def test_spec_from_artifact_restores_the_categories_settings() -> None:
    from airflow_mlops.core.training.spec import TrainingSpec

    spec = TrainingSpec.from_mapping(small_spec())
    document = {**spec.to_dict(), "categories": {"carrier": ["AA", "UA"]}, "metrics": {}, "classes": [0, 1]}
    params = {"categories.max": "64", "categories.min_frequency": "20"}
    assert spec_from_artifact(document, params) == spec
    with pytest.raises(SpecError, match=r"categories\.max"):
        spec_from_artifact(document, {})
