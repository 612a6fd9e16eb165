"""Judge a challenger on its shadow batches: promote it, drop it, or let it wait for more batches.

A shadow batch is what one shadow report (:mod:`airflow_mlops.core.scoring.shadow`) says about one
scored partition, reduced to the figures the policy needs: rows, agreement, and on labelled rows both
models' value of the policy's metric. The batches of one challenger version against one champion
version are pooled, weighted by rows; a batch the challenger could not score drops it at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from airflow_mlops.core.canary.policy import CanaryPolicy, worse_by

Decision = Literal["wait", "promote", "drop"]


@dataclass(frozen=True)
class ShadowBatch:
    """One partition scored by the champion and, in its shadow, by the challenger."""

    partition: str
    status: str  # the report's: ok | failed | skipped
    champion_version: str
    challenger_version: str
    rows: int
    agreement: float | None
    labelled_rows: int = 0
    champion_metric: float | None = None
    challenger_metric: float | None = None
    reason: str | None = None

    @classmethod
    def from_report(cls, report: Mapping[str, Any], metric: str) -> ShadowBatch:
        """The figures of a shadow report (``report.json``) for ``metric``."""
        quality = report.get("quality") or {}
        return cls(
            partition=str(report.get("partition", "")),
            status=str(report.get("status", "")),
            champion_version=str((report.get("champion") or {}).get("version", "")),
            challenger_version=str((report.get("challenger") or {}).get("version", "")),
            rows=int(report.get("rows") or 0),
            agreement=_number(report.get("agreement_rate")),
            labelled_rows=int(quality.get("rows") or 0) if "champion" in quality and "challenger" in quality else 0,
            champion_metric=_number((quality.get("champion") or {}).get(metric)),
            challenger_metric=_number((quality.get("challenger") or {}).get(metric)),
            reason=None if report.get("error") is None else str(report.get("error")),
        )

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ShadowBatch:
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class CanaryVerdict:
    """The decision on one challenger, with the pooled figures and the reasons behind it."""

    decision: Decision
    reasons: tuple[str, ...]
    challenger_version: str
    champion_version: str
    batches: int
    rows: int
    agreement: float | None
    metric: str
    labelled_rows: int
    quality_drop: float | None  # how much worse the challenger is on ``metric`` (negative: better)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reasons": list(self.reasons)}


def merge(recorded: Iterable[ShadowBatch], new: Iterable[ShadowBatch]) -> list[ShadowBatch]:
    """``recorded`` with ``new`` added, one batch per partition (a rescored partition replaces its figures),
    in partition order."""
    batches = {b.partition: b for b in recorded}
    batches.update({b.partition: b for b in new})
    return [batches[key] for key in sorted(batches)]


def judge(
    policy: CanaryPolicy, batches: Iterable[ShadowBatch], *, challenger: str, champion: str, metric: str
) -> CanaryVerdict:
    """Decide on ``challenger`` from its shadow batches against ``champion`` (others are not counted).

    Drop at once when a batch failed in the challenger's shadow; otherwise wait for ``policy.batches``
    batches, then drop below ``min_agreement`` or beyond ``max_quality_drop``, promote when both hold, and
    (``require_labels``) wait for labelled rows until ``max_batches`` before dropping for want of them.
    """
    mine = [b for b in batches if b.challenger_version == challenger and b.champion_version == champion]
    failed = [b for b in mine if b.status == "failed"]
    counted = [b for b in mine if b.status == "ok" and b.rows > 0]
    rows = sum(b.rows for b in counted)
    agreement = sum((b.agreement or 0.0) * b.rows for b in counted) / rows if rows else None
    gaps = [
        (worse_by(metric, b.champion_metric, b.challenger_metric), b.labelled_rows)
        for b in counted
        if b.labelled_rows and b.champion_metric is not None and b.challenger_metric is not None
    ]
    labelled_rows = sum(n for _, n in gaps)
    drop = sum(gap * n for gap, n in gaps) / labelled_rows if labelled_rows else None
    decision, reasons = _decide(policy, failed, len(counted), agreement, drop)
    return CanaryVerdict(
        decision=decision,
        reasons=tuple(reasons),
        challenger_version=challenger,
        champion_version=champion,
        batches=len(counted),
        rows=rows,
        agreement=agreement,
        metric=metric,
        labelled_rows=labelled_rows,
        quality_drop=drop,
    )


def _decide(
    policy: CanaryPolicy, failed: list[ShadowBatch], count: int, agreement: float | None, drop: float | None
) -> tuple[Decision, list[str]]:
    if failed:
        return "drop", [f"the challenger could not score batch {b.partition}: {b.reason}" for b in failed]
    if count < policy.batches:
        return "wait", [f"{count} of {policy.batches} shadow batches scored"]
    reasons = []
    if agreement is None or agreement < policy.min_agreement:
        shown = "unknown" if agreement is None else f"{agreement:.3f}"
        reasons.append(f"agreement {shown} over {count} batches is below min_agreement {policy.min_agreement:g}")
    if drop is not None and drop > policy.max_quality_drop:
        reasons.append(f"the challenger is {drop:.4f} worse on the labelled rows than the champion, beyond "
                       f"max_quality_drop {policy.max_quality_drop:g}")  # fmt: skip
    if reasons:
        return "drop", reasons
    if drop is None and policy.require_labels:
        if count >= policy.max_batches:
            return "drop", [f"no labelled row in {count} shadow batches (max_batches {policy.max_batches}): "
                            "its quality is unknown and require_labels is set"]  # fmt: skip
        return "wait", [f"agreement holds over {count} batches; waiting for labelled rows (require_labels)"]
    quality = "quality not judged (no labels)" if drop is None else f"{-drop:+.4f} on the labelled rows"
    return "promote", [f"agreement {agreement:.3f} over {count} batches, {quality}"]
