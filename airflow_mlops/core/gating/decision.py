"""The gate's result types: one :class:`Check` per policy check, and the :class:`GateDecision` that
holds them with everything the verdict rests on. A leaf module: the checks, the evidence writer and the
model card all import it, and it imports none of them."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

Status = Literal["passed", "failed", "skipped"]
Verdict = Literal["passed", "rejected", "forced"]
Scalar = float | int | str | bool | None


def _clean(value: Any) -> Any:
    """JSON-safe: NaN and infinities become None, numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


@dataclass(frozen=True)
class Check:
    """One check of the gate: what was observed, the bound it was held to, and the verdict."""

    name: str
    status: Status
    observed: Scalar
    threshold: Scalar
    message: str

    @property
    def passed(self) -> bool:
        return self.status != "failed"

    def to_dict(self) -> dict[str, Any]:
        return cast(
            dict[str, Any],
            _clean(
                {
                    "name": self.name,
                    "passed": self.passed,
                    "status": self.status,
                    "observed": self.observed,
                    "threshold": self.threshold,
                    "message": self.message,
                }
            ),
        )


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict with everything it rests on.

    ``passed`` is what downstream acts on; it is true when every check passed, or when ``forced``.
    ``verdict`` spells out which (``passed``, ``rejected``, ``forced``); a forced decision keeps its
    failed checks in ``reasons``.
    """

    passed: bool
    verdict: Verdict
    forced: bool
    force_reason: str | None
    first_run: bool
    reasons: tuple[Check, ...]
    candidate: dict[str, Any]
    champion: dict[str, Any] | None
    candidate_metrics: dict[str, float]
    champion_metrics: dict[str, float] | None
    baseline: dict[str, Any] | None
    slices: list[dict[str, Any]]
    parity: dict[str, Any]
    latency: dict[str, Any]
    bootstrap: list[dict[str, Any]]
    data: dict[str, Any]
    policy: dict[str, Any]
    task: str
    primary_metric: str
    created_at: str
    evidence_uri: str = ""

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.reasons if not c.passed]

    def summary(self) -> str:
        """One line: the verdict, the primary metric of both models, the failed checks."""
        primary = self.primary_metric
        candidate = _fmt(self.candidate_metrics.get(primary))
        champion = "none" if self.champion_metrics is None else _fmt(self.champion_metrics.get(primary))
        failed = ", ".join(c.name for c in self.failed_checks) or "none"
        return (
            f"{self.verdict.upper()}: {primary} candidate {candidate} vs champion {champion}; failed checks: {failed}"
        )

    def to_dict(self) -> dict[str, Any]:
        payload = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        payload["reasons"] = [c.to_dict() for c in self.reasons]
        return cast(dict[str, Any], _clean(payload))


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
