"""The policy's checks, one function each: the candidate's predictions and metrics in, :class:`Check`
results out (in the order the decision lists them).

- **champion**: the champion can be compared on the same rows (or, with none, ``first_run: reject``);
- **floors**: absolute bounds per metric (a ceiling for metrics where lower is better);
- **non-regression**: the candidate is preferred to the champion on the primary metric together with a
  proper scoring rule (:mod:`~airflow_mlops.core.gating.comparison`), gains at least ``min_gain``, and
  is not worse beyond a tolerance on any further compared metric; optionally the same with a
  confidence, by a seeded paired bootstrap;
- **slices**: per-slice floors (e.g. per origin airport) and the largest gap between slices;
- **baseline**: the candidate beats a simpler (linear) model by ``min_gain`` on the primary metric, and
  neither it nor a constant model is ahead on another compared metric beyond the margin;
- **parity**: ONNX outputs against the native model when one is given, else the parity the training
  run logged;
- **budgets**: scoring latency per 1,000 rows and model size.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.gating.comparison import Preference, min_gain_check, prefer, preference_check
from airflow_mlops.core.gating.decision import Check, Status, _fmt
from airflow_mlops.core.gating.models import PARITY_MEASURES, parity_difference

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.core.gating.data import EvaluationData
    from airflow_mlops.core.gating.models import ChampionComparison, ModelUnderTest, Scored
    from airflow_mlops.core.gating.policy import GatePolicy
    from airflow_mlops.core.gating.section_policies import SlicePolicy

MISSING_SLICE = "<missing>"


def champion_checks(
    champion: ModelUnderTest | None, comparison: ChampionComparison | None, policy: GatePolicy
) -> list[Check]:
    """The champion, resolved by the caller, was scored on the very same rows; with none, the first-run policy."""
    if champion is not None and comparison is not None:
        comparable = comparison.scored is not None
        return [
            Check(
                "champion_comparable",
                "passed" if comparable else "failed",
                champion.version,
                None,
                comparison.reason or f"champion version {champion.version} scored on the same rows",
            )
        ]
    if policy.first_run == "reject":
        return [
            Check(
                "champion_required", "failed", None, None, "there is no champion and the policy's first_run is 'reject'"
            )
        ]
    return []


def floor_checks(policy: GatePolicy, metrics: dict[str, float]) -> list[Check]:
    """Absolute floors (ceilings for metrics where lower is better) on the candidate's metrics."""
    checks = []
    for name, bound in policy.floors.items():
        spec = gm.METRICS[name]
        value = metrics[name]
        ok = not math.isnan(value) and spec.better_or_equal(value, bound)
        op = ">=" if spec.higher_is_better else "<="
        checks.append(
            Check(
                f"floor:{name}",
                "passed" if ok else "failed",
                value,
                bound,
                f"candidate {name} {_fmt(value)} must be {op} {bound:g}",
            )
        )
    return checks


def non_regression_checks(
    policy: GatePolicy, primary: str, scoring_rule: str | None, data: EvaluationData, candidate: Scored,
    champion: Scored | None, *, first_run: bool,
) -> tuple[list[Check], list[dict[str, Any]], Preference | None]:  # fmt: skip
    """The candidate against the champion: the primary metric by the comparison rule
    (:mod:`~airflow_mlops.core.gating.comparison`) and its minimum gain, then plain non-regression on
    each of ``compare_metrics``; each followed by its bootstrap confidence when enabled.

    :return: the checks, the bootstrap results and the comparison's figures, for the decision.
    """
    checks: list[Check] = []
    bootstrap: list[dict[str, Any]] = []
    preference = None
    for name in (primary, *policy.compare_metrics):
        check_name = f"non_regression:{name}"
        value = candidate.metrics[name]
        if champion is None:
            why = "no champion: first-run policy (absolute checks only)" if first_run else "champion not comparable"
            checks.append(Check(check_name, "skipped", value, None, why))
            if name == primary:
                gain = min_gain_check(policy.compare, primary, candidate.metrics, None, why)
                checks += [] if gain is None else [gain]
            continue
        if name == primary:
            preference = prefer(policy.compare, primary, scoring_rule, candidate.metrics, champion.metrics)
            tolerance = preference.tolerance[primary]
            checks.append(preference_check(preference, policy.compare))
            gain = min_gain_check(policy.compare, primary, candidate.metrics, champion.metrics, "")
            checks += [] if gain is None else [gain]
        else:
            tolerance = policy.tolerance_for(name)
            checks.append(_non_regression_check(name, tolerance, value, champion.metrics[name]))
        if policy.bootstrap.enabled:
            result, check = _bootstrap_check(policy, name, tolerance, data, candidate, champion)
            bootstrap.append(result)
            checks.append(check)
    return checks, bootstrap, preference


def _non_regression_check(name: str, tolerance: float, value: float, champion: float) -> Check:
    spec = gm.METRICS[name]
    bound = spec.shift_worse(champion, tolerance)
    ok = not math.isnan(value) and spec.better_or_equal(value, bound)
    return Check(
        f"non_regression:{name}",
        "passed" if ok else "failed",
        value,
        bound,
        f"candidate {name} {_fmt(value)} vs champion {_fmt(champion)} (tolerance {tolerance:g})",
    )


def _bootstrap_check(
    policy: GatePolicy, name: str, tolerance: float, data: EvaluationData, candidate: Scored, champion: Scored
) -> tuple[dict[str, Any], Check]:
    result = gm.paired_bootstrap(
        name,
        data.y,
        candidate.prediction,
        champion.prediction,
        samples=policy.bootstrap.samples,
        confidence=policy.bootstrap.confidence,
        seed=policy.bootstrap.seed,
        tolerance=tolerance,
    )
    check = Check(
        f"bootstrap:{name}",
        "passed" if result.passed else "failed",
        result.lower,
        -tolerance if tolerance else 0.0,  # never "-0"
        f"with {policy.bootstrap.confidence:.0%} confidence the candidate's {name} improvement over the "
        f"champion is >= {_fmt(result.lower)} (mean {_fmt(result.mean)}, "
        f"{result.samples} paired resamples)",
    )
    return result.to_dict(), check


def slice_checks(
    policy: SlicePolicy, metric: gm.Metric, data: EvaluationData, candidate: np.ndarray, champion: np.ndarray | None
) -> tuple[list[dict[str, Any]], list[Check]]:
    """Per-slice floors and the largest gap between slices, for each slice column.

    :return: one table of per-slice metrics per column (for the decision), and the checks.
    :raises DataError: a slice column is not in the evaluation data.
    """
    tables: list[dict[str, Any]] = []
    checks: list[Check] = []
    for column in policy.columns:
        table = _slice_table(policy, column, metric, data, candidate, champion)
        tables.append(table)
        judged = [r for r in table["slices"] if r["judged"]]
        if policy.floor is not None:
            checks.append(_slice_floor_check(policy, policy.floor, column, metric, judged))
        if policy.max_gap is not None:
            checks.append(_slice_gap_check(policy, policy.max_gap, column, metric, judged))
    return tables, checks


def _slice_table(
    policy: SlicePolicy, column: str, metric: gm.Metric, data: EvaluationData, candidate: np.ndarray,
    champion: np.ndarray | None,
) -> dict[str, Any]:  # fmt: skip
    """Both models' metric on the ``max_slices`` largest slices of ``column``; a slice is judged when it
    has ``min_rows`` rows and a defined metric."""
    import numpy as np

    if column not in data.frame.columns:
        raise DataError(
            f"The slice column {column!r} is not in the evaluation data. "
            f"Columns present: {sorted(map(str, data.frame.columns))}."
        )
    raw = data.frame[column]
    keys = raw.astype("object").where(raw.notna(), MISSING_SLICE).astype(str).to_numpy()
    values, counts = np.unique(keys, return_counts=True)
    order = np.argsort(-counts, kind="mergesort")[: policy.max_slices]
    rows: list[dict[str, Any]] = []
    for i in order:
        mask = keys == values[i]
        value_candidate = gm.compute(metric.name, data.y[mask], candidate[mask])
        value_champion = None if champion is None else gm.compute(metric.name, data.y[mask], champion[mask])
        is_judged = bool(counts[i] >= policy.min_rows and not math.isnan(value_candidate))
        rows.append(
            {
                "value": str(values[i]),
                "rows": int(counts[i]),
                "candidate": value_candidate,
                "champion": value_champion,
                "judged": is_judged,
            }
        )
    return {"column": column, "metric": metric.name, "slices": rows, "slices_total": len(values)}


def _slice_floor_check(
    policy: SlicePolicy, floor: float, column: str, metric: gm.Metric, judged: list[dict[str, Any]]
) -> Check:
    name = f"slice_floor:{column}"
    if not judged:
        return Check(
            name,
            "skipped",
            None,
            floor,
            f"no slice of {column!r} has {policy.min_rows}+ rows and a defined {metric.name}",
        )
    worst = min(judged, key=lambda r: metric.improvement(r["candidate"], 0.0))
    ok = metric.better_or_equal(worst["candidate"], floor)
    op = ">=" if metric.higher_is_better else "<="
    return Check(
        name,
        "passed" if ok else "failed",
        worst["candidate"],
        floor,
        f"worst {column} slice {worst['value']!r} ({worst['rows']} rows) has {metric.name} "
        f"{_fmt(worst['candidate'])}; every slice must be {op} {floor:g}",
    )


def _slice_gap_check(
    policy: SlicePolicy, max_gap: float, column: str, metric: gm.Metric, judged: list[dict[str, Any]]
) -> Check:
    name = f"slice_gap:{column}"
    if len(judged) < 2:
        return Check(
            name,
            "skipped",
            None,
            max_gap,
            f"fewer than two slices of {column!r} have {policy.min_rows}+ rows",
        )
    best = max(judged, key=lambda r: metric.improvement(r["candidate"], 0.0))
    worst = min(judged, key=lambda r: metric.improvement(r["candidate"], 0.0))
    gap = abs(best["candidate"] - worst["candidate"])
    return Check(
        name,
        "passed" if gap <= max_gap else "failed",
        gap,
        max_gap,
        f"{metric.name} ranges from {_fmt(worst['candidate'])} ({worst['value']!r}) to "
        f"{_fmt(best['candidate'])} ({best['value']!r}) across {column} slices",
    )


def baseline_checks(baseline: dict[str, Any], metrics: dict[str, float]) -> list[Check]:
    """The candidate against the baselines (:func:`~airflow_mlops.core.gating.baseline.evaluate_baseline`):
    ``baseline:<metric>`` against the simpler model, which the candidate must beat by ``min_gain`` on the
    primary metric and not trail by more than ``margin`` on the others; ``baseline:<kind>:<metric>``
    against the constant second baseline, within ``margin``."""
    fitted = (
        "fitted on the candidate's training sample"
        if baseline["fit_on"] == "train_sample"
        else "cross-fitted on the evaluation rows"
    )
    checks = []
    constant = baseline.get("constant")
    for name in baseline["compared"]:
        primary = name == baseline.get("primary") and baseline.get("min_gain", 0.0) > 0
        checks.append(
            _beats(
                f"baseline:{name}", name, metrics[name], baseline["kind"], baseline["metrics"][name],
                gain=baseline["min_gain"] if primary else -baseline["margin"], fitted=fitted,
            )
        )  # fmt: skip
        if constant is not None:
            checks.append(
                _beats(
                    f"baseline:{constant['kind']}:{name}", name, metrics[name], constant["kind"],
                    constant["metrics"][name], gain=-constant["margin"], fitted=fitted,
                )
            )  # fmt: skip
    return checks


def _beats(check: str, name: str, value: float, kind: str, reference: float, *, gain: float, fitted: str) -> Check:
    """The candidate's ``value`` of metric ``name`` is better than a baseline's ``reference`` by ``gain``
    (a negative gain: the baseline may be that far ahead)."""
    spec = gm.METRICS[name]
    bound = spec.shift_worse(reference, -gain)
    ok = not math.isnan(value) and (math.isnan(bound) or spec.better_or_equal(value, bound))
    required = f", required gain {_fmt(gain)}" if gain > 0 else ""
    return Check(
        check,
        "passed" if ok else "failed",
        value,
        bound,
        f"candidate {name} {_fmt(value)} vs {kind} baseline {_fmt(reference)} {fitted}{required}",
    )


def parity_check(
    candidate: ModelUnderTest, task: gm.Task, data: EvaluationData, onnx_prediction: np.ndarray, threshold: float
) -> tuple[dict[str, Any], Check]:
    """ONNX against the native model on the evaluation rows when there is one, else the parity the
    training run logged; with neither, parity is unproven and the check fails.

    :return: what the decision records of parity, and the check.
    """
    import numpy as np

    measure = PARITY_MEASURES[task]
    if candidate.native_predict is not None:
        rows = min(len(data.frame), 5000)
        native = np.asarray(candidate.native_predict(data.frame.head(rows)), dtype=np.float64)
        expected = onnx_prediction[:rows]
        if native.shape != expected.shape:
            native = native.reshape(expected.shape)
        value = parity_difference(task, native, expected)
        source, message = "native", f"ONNX against the native model on {rows} evaluation rows"
    elif candidate.logged_parity is not None:
        value, source, rows = float(candidate.logged_parity), "logged", 0
        message = "parity the training run measured on its test split"
    else:
        info = {"source": "none", "measure": measure, "value": None, "threshold": threshold, "rows": 0}
        message = "no native model and no parity logged by the training run: ONNX parity is unproven"
        return info, Check("parity", "failed", None, threshold, message)
    info = {"source": source, "measure": measure, "value": value, "threshold": threshold, "rows": rows}
    status: Status = "passed" if value <= threshold else "failed"
    return info, Check("parity", status, value, threshold, f"{message}: {measure} {value:.3g} (budget {threshold:g})")


def budget_checks(policy: GatePolicy, latency: float, size: int) -> list[Check]:
    """The scoring latency (ms per 1,000 rows) and the ONNX file size against the policy's budgets."""
    checks = []
    if policy.max_latency_ms_per_1k is not None:
        ok = latency <= policy.max_latency_ms_per_1k
        checks.append(
            Check(
                "latency_ms_per_1k",
                "passed" if ok else "failed",
                latency,
                policy.max_latency_ms_per_1k,
                f"median of {policy.latency_repeats} runs of {policy.latency_rows} rows in ONNX Runtime",
            )
        )
    if policy.max_model_bytes is not None:
        checks.append(
            Check(
                "model_size_bytes",
                "passed" if size <= policy.max_model_bytes else "failed",
                size,
                policy.max_model_bytes,
                f"ONNX file of {size} bytes",
            )
        )
    return checks
