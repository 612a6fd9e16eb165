"""The gate's evidence: the decision record (JSON) and its model card (Markdown, HTML), written under
``{root}/{pipeline}/evidence/{partition}/gate/{run_id}``."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops.core.contracts import KIND_EVIDENCE
from airflow_mlops.core.gating.card import render_html, render_markdown
from airflow_mlops.core.gating.decision import GateDecision

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot

DECISION_FILE = "decision.json"
CARD_MARKDOWN_FILE = "model_card.md"
CARD_HTML_FILE = "model_card.html"


@dataclass(frozen=True)
class Evidence:
    """Where the decision record and the model card were written, and their content."""

    decision_uri: str
    markdown_uri: str
    html_uri: str
    files: dict[str, bytes]  # file name -> content, for logging the same files as run artifacts

    def to_dict(self) -> dict[str, str]:
        return {"decision_uri": self.decision_uri, "markdown_uri": self.markdown_uri, "html_uri": self.html_uri}


def evidence_location(storage: StorageRoot, pipeline: str, partition: str, run_id: str) -> str:
    """Folder of a candidate's gate evidence: ``{root}/{pipeline}/evidence/{partition}/gate/{run_id}``."""
    return storage.layout(pipeline, KIND_EVIDENCE, partition, "gate", run_id)


def write_evidence(
    storage: StorageRoot, decision: GateDecision, folder: str, plots: Mapping[str, bytes] | None = None
) -> tuple[GateDecision, Evidence]:
    """Write the model card (Markdown, HTML) and then the decision record (JSON) under ``folder``.

    ``plots`` are the candidate run's training plots (PNG bytes by file name, :func:`training_plots`),
    embedded in the HTML card.

    Each file is written atomically; the decision record goes last, so when it exists the cards
    beside it are complete. A rerun of the same partition replaces the same files.

    :return: the decision with ``evidence_uri`` set to the decision record, and where things went.
    """
    decision_uri = f"{folder}/{DECISION_FILE}"
    decision = dataclasses.replace(decision, evidence_uri=decision_uri)
    files = {
        CARD_MARKDOWN_FILE: render_markdown(decision, plots).encode(),
        CARD_HTML_FILE: render_html(decision, plots).encode(),
        DECISION_FILE: json.dumps(decision.to_dict(), indent=2, sort_keys=True).encode(),
    }
    for name, content in files.items():
        storage.write_bytes(f"{folder}/{name}", content)
    evidence = Evidence(decision_uri, f"{folder}/{CARD_MARKDOWN_FILE}", f"{folder}/{CARD_HTML_FILE}", files)
    return decision, evidence


GATE_HISTORY_KEEP = 20  # entries kept in the run's gate history tag (MLflow caps a tag's length)


def gate_history(previous: str | None, decision: GateDecision) -> str:
    """The run's gate history with ``decision`` appended, as the JSON kept in one run tag.

    A candidate run can be gated more than once (rejected, then forced; or judged against a champion
    that moved). The verdict tags say what the last gate decided; this list keeps every decision, oldest
    first, so an earlier rejection is not lost behind a later pass. An unreadable previous value starts
    a new list rather than failing the gate that is being recorded.
    """
    try:
        entries = json.loads(previous) if previous else []
    except ValueError:
        entries = []
    if not isinstance(entries, list):
        entries = []
    champion = decision.champion or {}
    entries.append(
        {
            "at": decision.created_at,
            "verdict": decision.verdict,
            "champion_version": champion.get("version"),
            "evidence_uri": decision.evidence_uri,
        }
    )
    return json.dumps(entries[-GATE_HISTORY_KEEP:], separators=(",", ":"))
