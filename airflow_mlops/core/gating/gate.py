"""The model gate: a candidate against the champion on the same evaluation rows, decided by a policy.

Both models are ONNX graphs run through :class:`~airflow_mlops.core.onnx_model.OnnxModel`, exactly as
scoring will run them, on the same rows (the candidate's test split, or a named evaluation snapshot).
The policy's checks:

- **floors**: absolute bounds per metric (a ceiling for metrics where lower is better);
- **non-regression**: the candidate is not worse than the champion by more than a tolerance;
- **bootstrap** (optional): the same, with 95% (configurable) confidence, by a seeded paired bootstrap;
- **slices**: per-slice floors (e.g. per origin airport) and the largest gap between slices;
- **baseline**: a simple model cross-fitted on the evaluation rows (class prior, mean, or a small
  linear model) must not beat the candidate;
- **parity**: ONNX outputs against the native model when one is given, else the parity the training
  run logged;
- **budgets**: scoring latency per 1,000 rows and model size, measured by loading the ONNX bytes in
  ONNX Runtime.

With no champion (first run) only the absolute checks apply; ``first_run: reject`` refuses instead. A
``force`` override passes a rejected candidate and is recorded as such: the failed checks stay in the
decision. The decision is a frozen value
(:class:`~airflow_mlops.core.gating.decision.GateDecision`);
:func:`~airflow_mlops.core.gating.evidence.write_evidence` saves it with a model card. Each check is one
function of :mod:`~airflow_mlops.core.gating.checks`; this module runs them in order and decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.gating.baseline import evaluate_baseline
from airflow_mlops.core.gating.checks import (
    baseline_checks,
    budget_checks,
    champion_checks,
    floor_checks,
    non_regression_checks,
    parity_check,
    slice_checks,
)
from airflow_mlops.core.gating.data import EvaluationData, _label_key, _task_of, prepare_data
from airflow_mlops.core.gating.decision import Check, GateDecision, Verdict
from airflow_mlops.core.gating.models import (
    ChampionComparison,
    ModelUnderTest,
    Scored,
    measure_latency,
    model_info,
    score,
)
from airflow_mlops.core.onnx_model import OnnxInput, OnnxModel, inputs_from_spec

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.gating.policy import GatePolicy


def evaluate(
    candidate: ModelUnderTest,
    champion: ModelUnderTest | None,
    frame: pd.DataFrame,
    policy: GatePolicy,
    *,
    data_uri: str = "",
    data_sha256: str = "",
    force: bool = False,
    force_reason: str | None = None,
) -> GateDecision:
    """Evaluate the candidate (and the champion, when there is one) on ``frame`` and decide.

    :raises IntegrityError: a model's bytes do not match its recorded sha256.
    :raises DataError: the evaluation data lacks the target, a candidate feature, or a slice column.
    :raises SpecError: the candidate's spec is unusable, or the policy names metrics that do not
        apply to its task.
    """
    task, _target, classes = _task_of(candidate.spec)
    policy.check_task(task)
    primary = gm.metric(policy.primary_for(task, candidate.spec.get("primary_metric")), task)
    data = prepare_data(
        frame, candidate.spec, max_rows=policy.max_rows, seed=policy.seed, uri=data_uri, sha256=data_sha256
    )
    inputs = inputs_from_spec(candidate.spec)
    candidate_model = OnnxModel(candidate.onnx_bytes, inputs, expected_sha256=candidate.expected_sha256)
    prediction = score(candidate_model, task, data.frame, len(classes))
    scored = Scored(prediction, gm.compute_all(gm.metrics_for(task), data.y, prediction))
    # champion: resolved by the caller; here it is scored on the very same rows
    comparison = None if champion is None else _compare_champion(candidate, champion, task, data, policy, len(classes))
    checks = champion_checks(champion, comparison, policy)
    policy_checks, sections = _policy_checks(
        policy, task, primary.name, candidate, comparison, data, scored, inputs, len(classes)
    )
    checks += policy_checks
    all_passed = all(c.passed for c in checks)
    forced = bool(force and not all_passed)
    verdict: Verdict = "passed" if all_passed else ("forced" if forced else "rejected")
    champion_scored = None if comparison is None else comparison.scored
    return GateDecision(
        passed=all_passed or forced,
        verdict=verdict,
        forced=forced,
        force_reason=(force_reason or "forced without a stated reason") if forced else None,
        first_run=champion is None,
        reasons=tuple(checks),
        candidate={**model_info(candidate), "size_bytes": len(candidate.onnx_bytes), "sha256": candidate_model.sha256},
        champion=None if comparison is None else comparison.info,
        candidate_metrics=scored.metrics,
        champion_metrics=None if champion_scored is None else champion_scored.metrics,
        data=data.info,
        policy=policy.to_dict(),
        task=task,
        primary_metric=primary.name,
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        **sections,
    )


def _policy_checks(
    policy: GatePolicy, task: gm.Task, primary: str, candidate: ModelUnderTest, comparison: ChampionComparison | None,
    data: EvaluationData, scored: Scored, inputs: Sequence[OnnxInput], n_classes: int,
) -> tuple[list[Check], dict[str, Any]]:  # fmt: skip
    """Every check after the champion's, in the decision's order.

    :return: the checks, and the decision's sections they fill (bootstrap, slices, baseline, parity,
        latency).
    """
    champion = None if comparison is None else comparison.scored
    checks = floor_checks(policy, scored.metrics)
    regression, bootstrap = non_regression_checks(policy, primary, data, scored, champion, first_run=comparison is None)
    checks += regression
    slice_metric = gm.METRICS[policy.slices.metric or primary]
    champion_prediction = None if champion is None else champion.prediction
    slices, found = slice_checks(policy.slices, slice_metric, data, scored.prediction, champion_prediction)
    checks += found
    baseline = None
    if policy.baseline.enabled:
        baseline = evaluate_baseline(policy, task, primary, candidate, data, inputs, n_classes)
        checks += baseline_checks(baseline, scored.metrics)
    parity, parity_found = parity_check(candidate, task, data, scored.prediction, policy.max_parity_diff)
    checks.append(parity_found)
    latency = measure_latency(
        candidate.onnx_bytes, inputs, data.frame, rows=policy.latency_rows, repeats=policy.latency_repeats
    )
    checks += budget_checks(policy, latency, len(candidate.onnx_bytes))
    latency_info = {
        "candidate_ms_per_1k": latency,
        "champion_ms_per_1k": None if comparison is None else comparison.latency,
        "rows": policy.latency_rows,
        "repeats": policy.latency_repeats,
        "threads": 1,
    }
    sections = {
        "bootstrap": bootstrap,
        "slices": slices,
        "baseline": baseline,
        "parity": parity,
        "latency": latency_info,
    }
    return checks, sections


def _compare_champion(
    candidate: ModelUnderTest,
    champion: ModelUnderTest,
    task: gm.Task,
    data: EvaluationData,
    policy: GatePolicy,
    n_classes: int,
) -> ChampionComparison:
    """The champion scored on the candidate's evaluation rows, with its latency; or why it cannot be."""
    info = model_info(champion)
    reason = _compatibility(candidate.spec, champion.spec)
    if reason is not None:
        return ChampionComparison(info, None, None, reason)
    try:
        champion_inputs = inputs_from_spec(champion.spec)
        champion_model = OnnxModel(champion.onnx_bytes, champion_inputs, expected_sha256=champion.expected_sha256)
        prediction = score(champion_model, task, data.frame, n_classes)
    except DataError as exc:
        return ChampionComparison(info, None, None, f"the champion cannot score the evaluation data: {exc}")
    scored = Scored(prediction, gm.compute_all(gm.metrics_for(task), data.y, prediction))
    latency = measure_latency(
        champion.onnx_bytes, champion_inputs, data.frame, rows=policy.latency_rows, repeats=policy.latency_repeats
    )
    return ChampionComparison(info, scored, latency, None)


def _compatibility(candidate: Mapping[str, Any], champion: Mapping[str, Any]) -> str | None:
    """Why the champion cannot be compared with the candidate, or None when it can."""
    try:
        c_task, c_target, c_classes = _task_of(candidate)
        h_task, h_target, h_classes = _task_of(champion)
    except SpecError as exc:
        return f"the champion's training spec is unusable: {exc}"
    if (c_task, c_target) != (h_task, h_target):
        return f"the champion is a {h_task} model of {h_target!r}, the candidate a {c_task} model of {c_target!r}"
    if [_label_key(c) for c in c_classes] != [_label_key(c) for c in h_classes]:
        return f"the champion's classes {h_classes!r} differ from the candidate's {c_classes!r}"
    return None
