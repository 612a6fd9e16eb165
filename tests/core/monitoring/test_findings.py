"""The verdict type of the monitoring checks (core.monitoring.findings)."""

from __future__ import annotations

from airflow_mlops.core import monitoring as m


def test_worst_orders_severities() -> None:
    findings = [m.Finding("a", "ok", ""), m.Finding("b", "alert", ""), m.Finding("c", "warn", "")]
    assert m.worst(findings) == "alert" and m.worst([]) == "ok"
