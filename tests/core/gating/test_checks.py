"""The policy's checks on real flights models: slices, parity, latency and size budgets."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.gating import evaluate
from tests.core.gating.support import LOOSE_PARITY, Exported, candidate, failed, policy


def test_slice_floors_and_gap_name_the_worst_slice(good: Exported, evaluation: pd.DataFrame) -> None:
    rules = policy(slices={"columns": ["origin", "carrier"], "floor": 0.99, "max_gap": 0.0, "min_rows": 300})
    decision = evaluate(candidate(good), None, evaluation, rules)
    assert {"slice_floor:origin", "slice_gap:origin", "slice_floor:carrier", "slice_gap:carrier"} <= failed(decision)
    origin = next(t for t in decision.slices if t["column"] == "origin")
    assert {s["value"] for s in origin["slices"]} == {"EWR", "JFK", "LGA"}
    worst = min(origin["slices"], key=lambda s: s["candidate"])
    floor = next(c for c in decision.reasons if c.name == "slice_floor:origin")
    assert floor.observed == worst["candidate"] and repr(worst["value"]) in floor.message
    carrier = next(t for t in decision.slices if t["column"] == "carrier")
    small = [s for s in carrier["slices"] if s["rows"] < 300]
    assert small and not any(s["judged"] for s in small)
    fine = evaluate(candidate(good), None, evaluation, policy(slices={"columns": ["origin"], "floor": 0.5}))
    assert not failed(fine)
    with pytest.raises(DataError, match="slice column 'runway' is not in the evaluation data"):
        evaluate(candidate(good), None, evaluation, policy(slices={"columns": ["runway"], "floor": 0.5}))


def test_parity_uses_the_native_model_then_the_logged_figure(good: Exported, evaluation: pd.DataFrame) -> None:
    native = evaluate(candidate(good), None, evaluation, policy())
    assert native.parity["source"] == "native" and 0 < native.parity["value"] < LOOSE_PARITY
    assert native.parity["measure"] == "max_abs_probability_diff"
    tight = evaluate(candidate(good), None, evaluation, policy(max_parity_diff=1e-7))
    assert "parity" in failed(tight)  # float32 trees really differ from float64 ones: the check sees it
    logged = evaluate(candidate(good, native_predict=None, logged_parity=1e-6), None, evaluation, policy())
    assert logged.parity == {
        "source": "logged",
        "measure": "max_abs_probability_diff",
        "value": 1e-6,
        "threshold": LOOSE_PARITY,
        "rows": 0,
    }
    unknown = evaluate(candidate(good, native_predict=None), None, evaluation, policy())
    check = next(c for c in unknown.reasons if c.name == "parity")
    assert check.status == "failed" and "unproven" in check.message


def test_latency_and_size_budgets_are_measured_on_the_onnx_bytes(good: Exported, evaluation: pd.DataFrame) -> None:
    generous = evaluate(candidate(good), None, evaluation, policy(max_latency_ms_per_1k=60_000, max_model_bytes=10**9))
    assert not failed(generous)
    assert generous.latency["candidate_ms_per_1k"] > 0
    assert generous.candidate["size_bytes"] == len(good.onnx_bytes)
    tight = evaluate(candidate(good), None, evaluation, policy(max_latency_ms_per_1k=1e-6, max_model_bytes=100))
    assert {"latency_ms_per_1k", "model_size_bytes"} <= failed(tight)
