"""The impact of staleness measured across models, not over time: the champion and the earlier versions
still registered score the same labelled batch, and the quality each reaches is set against the age of
the data it learned from (the batch's time less the end of that version's training data).

On one batch the season, the traffic and the labels are the same for every model, so the difference in
quality between an older and a newer model is what their age costs; one model's quality over its age,
measured batch after batch, would mix that cost with the season's. :func:`age_cost` fits the quality
against the age (least squares; with two models, their difference) and reports the quality lost per
month of age (``MONTH_DAYS`` days); above the pipeline's ``max_cost_per_month`` it alerts: retraining
more often would pay.

Pure: numbers in, a :class:`~airflow_mlops.core.monitoring.findings.Finding` out. Parsing uses the
standard library only (pipeline files are read at every DAG parse).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.monitoring.findings import Finding
from airflow_mlops.core.params import parse_number

MONTH_DAYS = 30.0  # one month of age, as the cost is reported


@dataclass(frozen=True)
class StalenessImpactPolicy:
    """The pipeline file's ``monitoring.staleness_impact``: how much age may cost, and which models compare.

    :param max_cost_per_month: quality (the primary metric, in its own units) lost per month of model age
        above which the finding alerts; 0.01 ROC AUC by default.
    :param max_versions: the champion and at most ``max_versions - 1`` earlier versions are scored (each is
        loaded and scores the whole batch), 4 by default.
    :param min_versions: models of distinct ages needed before the cost is judged, 2 by default.
    """

    max_cost_per_month: float = 0.01
    max_versions: int = 4
    min_versions: int = 2

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> StalenessImpactPolicy:
        """:raises SpecError: an unknown key, or a value out of range, named with what was expected (the
        pipeline file prefixes where: ``monitoring.staleness_impact``)."""
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SpecError(f"It must be a mapping of {list(cls.__dataclass_fields__)}. Got {raw!r} instead.")
        unknown = sorted(str(k) for k in raw if k not in cls.__dataclass_fields__)
        if unknown:
            raise SpecError(f"Unknown key(s) {unknown}; allowed: {list(cls.__dataclass_fields__)}.")
        cost = parse_number(raw.get("max_cost_per_month", cls.max_cost_per_month), "max_cost_per_month", low=0.0)
        most = int(parse_number(raw.get("max_versions", cls.max_versions), "max_versions", low=2, integer=True))
        least = int(parse_number(raw.get("min_versions", cls.min_versions), "min_versions", low=2, integer=True))
        if least > most:
            raise SpecError(f"min_versions ({least}) cannot exceed max_versions ({most}).")
        return cls(cost, most, least)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class AgedQuality:
    """One model version's quality on the batch, and the age of its data when the batch was served.

    :param data_end: when the version's training data ends (ISO 8601), and ``data_end_from`` where that
        came from (``tag``: recorded at training; ``receipt``: the snapshot's watermark; ``registered``:
        the registration time, when nothing better is known).
    """

    version: str
    data_end: str
    data_end_from: str
    age_days: float
    quality: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def age_cost(
    points: Sequence[AgedQuality],
    *,
    metric: str,
    higher_is_better: bool,
    rows: int,
    policy: StalenessImpactPolicy,
) -> Finding:
    """The quality lost per month of model age, from models of different ages scored on the same ``rows``.

    A version whose quality is undefined on the batch (one class only) is left out; with fewer than
    ``policy.min_versions`` distinct ages there is nothing to compare: ``ok``, said so.
    """
    import numpy as np

    usable = [p for p in points if p.quality is not None and math.isfinite(p.quality) and math.isfinite(p.age_days)]
    details: dict[str, Any] = {
        "metric": metric,
        "higher_is_better": higher_is_better,
        "rows": rows,
        "points": [p.to_dict() for p in sorted(points, key=lambda p: p.age_days)],
        **policy.to_dict(),
    }
    ages = np.array([p.age_days for p in usable], dtype="float64")
    if len(set(ages.tolist())) < policy.min_versions:
        message = (
            f"{len(usable)} model(s) at {len(set(ages.tolist()))} distinct age(s) scored {rows} labelled rows: "
            f"{policy.min_versions} ages are needed to measure what age costs."
        )
        return Finding("staleness_impact", "ok", message, details)
    quality = np.array([float(p.quality) for p in usable if p.quality is not None], dtype="float64")
    slope = float(np.polyfit(ages, quality, 1)[0])
    cost = (-slope if higher_is_better else slope) * MONTH_DAYS
    details.update(slope_per_day=slope, cost_per_month=cost, age_span_days=[float(ages.min()), float(ages.max())])
    ordered = sorted(zip(ages.tolist(), quality.tolist(), [p.version for p in usable], strict=True))
    listed = ", ".join(f"v{version} {age:.0f} d {value:.4f}" for age, value, version in ordered)
    text = (
        f"On the same {rows} labelled rows, {metric} loses {cost:+.4f} per month of model age across "
        f"{len(usable)} versions ({listed})"
    )
    if cost > policy.max_cost_per_month:
        return Finding(
            "staleness_impact",
            "alert",
            f"{text}: more than {policy.max_cost_per_month:g}; retrain more often.",
            details,
        )
    return Finding("staleness_impact", "ok", text + ".", details)
