"""A model's history as the view reads it from what the registry and the gate recorded in MLflow."""

from __future__ import annotations

import json
from pathlib import Path

from airflow_mlops.core import contracts, registry
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.plugins.history import model_history, model_names
from tests.core.registry.support import NAME, client_for
from tests.plugins.support import EVIDENCE, retrained_model


def test_versions_moves_and_every_gate_decision_of_a_run(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    root = StorageRoot(str(tmp_path / "storage"))
    retrained_model(client, root, tmp_path / "mlartifacts")
    run_of_2 = client.get_model_version(NAME, "2").run_id
    decisions = [{"verdict": "rejected", "evidence_uri": "a"}, {"verdict": "forced", "evidence_uri": "b"}]
    client.set_tag(run_of_2, contracts.TAG_GATE_HISTORY, json.dumps(decisions))
    history = model_history(client, NAME)
    assert (history.pipeline, history.champion, history.previous) == ("flights", "2", "1")
    assert [(v.version, v.aliases, v.gate_verdict) for v in history.versions] == [
        ("2", ("champion",), "passed"),
        ("1", ("previous_champion",), "passed"),
    ]
    assert history.versions[0].gate_decisions == ("rejected", "forced") and history.versions[1].gate_decisions == ()
    assert history.versions[0].evidence_uri == root.join(EVIDENCE)
    assert [(m.source, m.target, m.by, m.gate_verdict) for m in history.moves] == [
        ("1", "2", "ct/retrain/promote", "passed"),
        (None, "1", "ct/initial/promote", "passed"),
    ]
    assert history.moves[0].evidence_uri == root.join(EVIDENCE) and history.moves[0].at.endswith("+00:00")
    assert model_names(client) == [NAME]  # the promotion lease is not a model


def test_a_model_promoted_before_the_history_tag_shows_its_last_move(tmp_path: Path) -> None:
    client = client_for(tmp_path)
    retrained_model(client, StorageRoot(str(tmp_path / "storage")), tmp_path / "mlartifacts")
    client.delete_registered_model_tag(NAME, contracts.TAG_PROMOTION_HISTORY)
    old = {"key": "ct/old/promote", "from": "1", "to": "2", "mode": "promote", "at": 1.7e9}  # no "by" then
    client.set_registered_model_tag(NAME, contracts.TAG_LAST_PROMOTION, json.dumps(old))
    (move,) = model_history(client, NAME).moves
    assert (move.source, move.target, move.by, move.at) == ("1", "2", "ct/old/promote", "2023-11-14T22:13:20+00:00")
    assert registry.alias_version(client, NAME, contracts.ALIAS_CHAMPION) == "2"


def test_the_challenger_and_its_shadow_figures_are_shown(tmp_path: Path) -> None:
    from airflow_mlops.core.canary import CanaryPolicy, ShadowBatch, judge
    from airflow_mlops.core.canary.record import name_challenger, record_verdict
    from airflow_mlops.plugins.drift_chart import DriftSeries
    from airflow_mlops.plugins.pages import model_page
    from tests.core.registry.support import register, training_run

    client = client_for(tmp_path)
    root = StorageRoot(str(tmp_path / "storage"))
    retrained_model(client, root, tmp_path / "mlartifacts")
    register(client, training_run(client, tmp_path / "mlartifacts"))
    name_challenger(client, NAME, "3", key="ct/canary/name_challenger")
    batch = ShadowBatch("2013-05", "ok", "2", "3", 1000, 0.97, 900, 0.70, 0.69)
    verdict = judge(CanaryPolicy.from_mapping(2), [batch], challenger="3", champion="2", metric="roc_auc")
    record_verdict(client, root, NAME, verdict, [batch], None)
    history = model_history(client, NAME)
    assert history.challenger is not None and history.challenger.version == "3"
    assert (history.challenger.canary_status, history.challenger.canary["decision"]) == ("challenger", "wait")
    page = model_page("/mlops", history, DriftSeries("", [], None), lambda uri: None)
    expected = "challenger (wait): 1 shadow batch(es), agreement 0.970, roc_auc -0.0100 vs champion"
    assert "Challenger in shadow: <b>version 3</b>" in page and expected in page
