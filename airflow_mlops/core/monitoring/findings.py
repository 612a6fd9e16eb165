"""The verdict type every monitoring check returns: a :class:`Finding` with a severity (``ok``, ``warn``
or ``alert``), and :func:`worst` to summarise several."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["ok", "warn", "alert"]
SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "alert")


@dataclass(frozen=True)
class Finding:
    """The verdict of one check: its name, severity, a one-line message and JSON-able details."""

    check: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_alert(self) -> bool:
        return self.severity == "alert"

    @property
    def needs_notification(self) -> bool:
        return self.severity != "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity, "message": self.message, "details": self.details}


def worst(findings: Sequence[Finding]) -> Severity:
    """The most severe of ``findings`` (``ok`` when there are none)."""
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")
