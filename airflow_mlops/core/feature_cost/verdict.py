"""The rule on feature costs: a :class:`CostPolicy` and :func:`check_feature_cost`, which warns about
features whose cost is not paid for by their importance, or is over a budget."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.feature_cost.measurement import CostMeasurement
from airflow_mlops.core.monitoring import Finding
from airflow_mlops.core.params import parse_duration, parse_number

CHECK = "feature_cost"


@dataclass(frozen=True)
class CostPolicy:
    """When a feature costs too much.

    :param max_cost_ratio: a feature's cost share may be at most this many times its importance share.
    :param min_cost_share: below this cost share a feature is too cheap to be worth a warning, whatever
        its importance (the importance check covers features that buy nothing).
    :param max_serving_ms_per_1k: absolute budget of serving time per feature (None: no budget).
    :param max_model_bytes: absolute budget of ONNX bytes per feature (None: no budget).
    :param max_dimension_lag_hours: how far a joined dimension's newest row may end before the rows joined
        to it (None: the join's own as-of tolerance, beyond which the newest rows find no match).
    :param max_unmatched_share: share of rows a join may leave without a match (its features null), 0.1.
    """

    max_cost_ratio: float = 3.0
    min_cost_share: float = 0.02
    max_serving_ms_per_1k: float | None = None
    max_model_bytes: float | None = None
    max_dimension_lag_hours: float | None = None
    max_unmatched_share: float = 0.1

    SETTINGS: ClassVar[tuple[str, ...]] = (
        "max_cost_ratio", "min_cost_share", "max_serving_ms_per_1k", "max_model_bytes", "max_dimension_lag",
        "max_unmatched_share",
    )  # fmt: skip

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> CostPolicy:
        """Read a policy from strings or numbers (templated operator arguments, the pipeline file)."""
        raw = dict(raw or {})
        allowed = set(cls.SETTINGS)
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise SpecError(f"Unknown feature cost setting(s) {unknown}; allowed: {sorted(allowed)}.")

        def number(name: str, default: float | None, low: float, high: float = math.inf) -> float | None:
            value = raw.get(name)
            if value is None or value == "" or str(value).lower() == "none":
                return default
            return parse_number(value, name, low=low, high=high)

        ratio = number("max_cost_ratio", 3.0, 1.0)
        floor = number("min_cost_share", 0.02, 0.0, 1.0)
        unmatched = number("max_unmatched_share", 0.1, 0.0, 1.0)
        lag = raw.get("max_dimension_lag")
        lag = None if lag is None or str(lag).strip().lower() in ("", "none") else lag
        limit = parse_duration(lag, "max_dimension_lag", allow_zero=True)
        return cls(
            max_cost_ratio=3.0 if ratio is None else ratio,
            min_cost_share=0.02 if floor is None else floor,
            max_serving_ms_per_1k=number("max_serving_ms_per_1k", None, 0.0),
            max_model_bytes=number("max_model_bytes", None, 0.0),
            max_dimension_lag_hours=None if limit is None else limit.total_seconds() / 3600.0,
            max_unmatched_share=0.1 if unmatched is None else unmatched,
        )


def check_feature_cost(measurement: CostMeasurement, importance: Mapping[str, float], policy: CostPolicy) -> Finding:
    """Warn about features whose cost is not paid for by their importance, or is over a budget.

    A feature is flagged when its cost share is at least ``min_cost_share`` and more than
    ``max_cost_ratio`` times its importance share (a feature with no importance and a real cost has an
    infinite ratio), or when its serving time or model bytes exceed the absolute budgets.

    :raises SpecError: the importance is empty (the estimator exposes none), or names other features.
    """
    if not importance:
        raise SpecError("The run records no feature importance: a feature's cost has nothing to be compared with.")
    unknown = sorted(set(importance) - set(measurement.features))
    if unknown:
        raise SpecError(f"The importance names feature(s) {unknown} that the ONNX model has no input for.")
    table = measurement.table(importance)
    flagged: dict[str, list[str]] = {}
    for row in table:
        reasons = []
        share, cost = row["importance_share"], row["cost_share"]
        if cost >= policy.min_cost_share and cost > policy.max_cost_ratio * share:
            reasons.append(f"{cost:.1%} of the cost for {share:.1%} of the importance")
        budget = policy.max_serving_ms_per_1k
        if budget is not None and row["serving_ms_per_1k"] > budget:
            reasons.append(f"{row['serving_ms_per_1k']:.3f} ms per 1k rows to serve (budget {budget:g})")
        if policy.max_model_bytes is not None and row["model_bytes"] > policy.max_model_bytes:
            reasons.append(f"{row['model_bytes']:.0f} bytes of the model (budget {policy.max_model_bytes:g})")
        reasons += _upstream_reasons(row, measurement, policy)
        if reasons:
            flagged[row["feature"]] = reasons
    upstream = measurement.upstream
    details = {
        "policy": asdict(policy),
        "features": table,
        "flagged": flagged,
        "rows": measurement.rows,
        "repeats": measurement.repeats,
        "model_bytes": measurement.model_bytes,
        "seconds": round(measurement.seconds, 3),
        "upstream": None
        if upstream is None
        else {
            "rows": upstream.rows,
            "seconds": round(upstream.seconds, 3),
            "transforms": upstream.transforms,
            "dimensions": {name: d.to_dict() for name, d in upstream.dimensions.items()},
        },
    }
    if flagged:
        listed = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in flagged.items())
        message = f"{len(flagged)} feature(s) cost more than they bring, or hang on a stale dimension: {listed}."
        return Finding(CHECK, "warn", message, details)
    costliest = table[0]
    return Finding(
        CHECK,
        "ok",
        f"Every one of {len(table)} features pays for its cost; the costliest, {costliest['feature']}, takes "
        f"{costliest['cost_share']:.1%} of the cost for {costliest['importance_share']:.1%} of the importance.",
        details,
    )


def _upstream_reasons(row: Mapping[str, Any], measurement: CostMeasurement, policy: CostPolicy) -> list[str]:
    """A joined feature whose dimension ends too long before the rows, or leaves too many of them unmatched."""
    if measurement.upstream is None or row["dimension"] is None:
        return []
    dimension = measurement.upstream.dimensions[row["dimension"]]
    reasons = []
    limit = policy.max_dimension_lag_hours
    limit = dimension.tolerance_hours if limit is None else limit
    if dimension.lag_hours is not None and limit is not None and dimension.lag_hours > limit:
        reasons.append(
            f"its dimension {dimension.join!r} is stale: its newest row ({dimension.newest}) is "
            f"{dimension.lag_hours:.1f} h behind the rows (limit {limit:g} h)"
        )
    if dimension.unmatched_share > policy.max_unmatched_share:
        reasons.append(
            f"{dimension.unmatched_share:.1%} of rows find no {dimension.join!r} row "
            f"(limit {policy.max_unmatched_share:.1%})"
        )
    return reasons
