from __future__ import annotations

import pytest

from airflow_mlops.core.backtest import BacktestResult, report
from airflow_mlops.core.backtest.loop import ALWAYS, NEVER, POLICY


def test_every_policy_serves_the_same_batches(replayed: BacktestResult) -> None:
    assert [b["batch"] for b in replayed.batches] == ["2013-02", "2013-03"]
    for run in replayed.runs.values():
        assert [r.batch for r in run.records] == ["2013-02", "2013-03"]
        assert all(r.metric == "roc_auc" and r.higher_is_better and 0.5 < (r.quality or 0) < 1 for r in run.records)


def test_the_first_batch_is_served_by_the_same_first_champion(replayed: BacktestResult) -> None:
    first = {name: run.records[0] for name, run in replayed.runs.items()}
    assert {r.champion_version for r in first.values()} == {"1"}
    assert len({r.quality for r in first.values()}) == 1  # the same model on the same rows


def test_never_retrain_keeps_version_one(replayed: BacktestResult) -> None:
    run = replayed.runs[NEVER]
    assert run.retrains == 0 and run.registry.champion_version == "1"
    assert [r.decision for r in run.records] == ["keep", "keep"]


def test_always_retrains_on_every_row_so_far_and_promotes_without_gate(replayed: BacktestResult) -> None:
    run = replayed.runs[ALWAYS]
    assert [r.champion_version for r in run.records] == ["1", "2"]
    assert run.records[0].promoted and run.records[0].gate_verdict is None
    assert run.registry.get("2").trained_rows == replayed.initial_rows + replayed.batches[0]["rows"]


def test_the_policy_decides_on_drift_figures_and_gates_its_candidate(replayed: BacktestResult) -> None:
    run = replayed.runs[POLICY]
    first = run.records[0]
    assert first.retrain and first.decision == "retrain"  # drift_share 0: every batch is an alarm
    assert any(reason.startswith("weighted drift share") for reason in first.reasons)  # importance weighs it
    assert first.candidate_version == "2" and first.gate_verdict in ("passed", "rejected")
    assert first.promoted == (first.gate_verdict == "passed")
    assert run.records[1].champion_version == ("2" if first.promoted else "1")
    assert first.drift_share is not None and first.weighted_drift_share is not None
    assert 0.0 <= first.weighted_drift_share <= 1.0


def test_the_document_carries_the_summary(replayed: BacktestResult) -> None:
    document = report.document(replayed)
    assert document["summary"]["batches"] == 2
    assert set(document["policies"]) == {POLICY, NEVER, ALWAYS}
    assert document["settings"]["training_spec"]["search"] is None
    assert document["summary"]["quality_vs_never"] == pytest.approx(
        sum(
            p.quality - n.quality
            for p, n in zip(replayed.runs[POLICY].records, replayed.runs[NEVER].records, strict=True)
        )
        / 2,
        abs=1e-6,
    )
