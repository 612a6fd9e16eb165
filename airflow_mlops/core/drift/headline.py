"""The policy's decision at the top of a drift check's outputs.

The reports and the summary are written before the policy decides (the decision needs the check's
figures), so the decision is added afterwards: a small HTML block, every value escaped, inserted
before the report's title, and a ``decision`` entry in the JSON summary. A reader of either sees
first whether the batch asks for retraining, and why.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.core.drift.compare import DriftResult
    from airflow_mlops.core.drift.policy import PolicyDecision
    from airflow_mlops.core.drift.report import DriftOutputs
    from airflow_mlops.core.storage import StorageRoot

_BODY = re.compile(r"<body[^>]*>", re.IGNORECASE)


def headline(decision: PolicyDecision, result: DriftResult) -> dict[str, Any]:
    """The decision, its reasons and the figures behind them, as the summary records them."""
    return {
        "status": decision.status,
        "retrain": decision.retrain,
        "reasons": list(decision.reasons),
        "conditions": dict(decision.conditions),
        "drift_share": result.drift_share,
        "weighted_drift_share": result.weighted_drift_share,
        "weighting": result.weighting,
        "left_out": {"constant in the reference": list(result.left_out)},
        "input_drift": [c.column for c in result.input_drift],
        "quality": "unknown (no labels in this batch)" if result.quality is None else "measured",
    }


def decision_html(summary: Mapping[str, Any]) -> str:
    """The HTML block of a :func:`headline` (escaped)."""

    def item(text: str) -> str:
        return f"<li>{html.escape(text)}</li>"

    lines: list[str] = [*summary["reasons"]] or ["no condition is on"]
    facts = [
        f"drift share {_figure(summary['drift_share'])}, weighted {_figure(summary['weighted_drift_share'])} "
        f"({summary['weighting']})",
        f"quality {summary['quality']}",
    ]
    left_out = summary["left_out"]["constant in the reference"]
    if left_out:
        facts.append(f"left out: constant in the reference: {', '.join(left_out)}")
    if summary["input_drift"]:
        facts.append(f"input drift (not read by the model): {', '.join(summary['input_drift'])}")
    title = f"Drift policy: {summary['status']}" + (" (retrain)" if summary["retrain"] else "")
    return (
        '<section id="mlops-drift-decision" style="font-family:sans-serif;padding:12px;margin:8px;'
        'border:2px solid #5e35b1;border-radius:6px">'
        f"<h2>{html.escape(title)}</h2><ul>{''.join(item(t) for t in lines)}</ul>"
        f"<ul>{''.join(item(t) for t in facts)}</ul></section>"
    )


def _figure(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def insert_block(page: str, block: str) -> str:
    """``page`` with ``block`` right after its ``<body>`` tag (at its start without one)."""
    match = _BODY.search(page)
    at = match.end() if match else 0
    return page[:at] + block + page[at:]


def write_decision(
    root: StorageRoot, outputs: DriftOutputs, decision: PolicyDecision, result: DriftResult
) -> dict[str, Any]:
    """Put the decision at the top of the check's HTML reports and into its JSON summary; return it."""
    summary = headline(decision, result)
    block = decision_html(summary)
    reports: Sequence[str | None] = (outputs.report_uri, outputs.quality_report_uri)
    for uri in (u for u in reports if u):
        page = root.read_bytes(uri).decode("utf-8")
        root.write_bytes(uri, insert_block(page, block).encode("utf-8"))
    record = json.loads(root.read_bytes(outputs.summary_uri))
    record["decision"] = summary
    root.write_bytes(outputs.summary_uri, json.dumps(record, indent=2, sort_keys=True, default=str).encode("utf-8"))
    return summary
