"""Extra links from a gate task to the evidence it wrote."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops.links.base import StorageLink


class ModelCardLink(StorageLink):
    """ "Model card" button: the candidate's model card (one self-contained HTML page)."""

    name = "Model card"
    key: ClassVar[str] = "mlops_model_card"


class GateEvidenceLink(StorageLink):
    """ "Gate evidence" button: the decision record (JSON) with every check, both metric sets and reasons."""

    name = "Gate evidence"
    key: ClassVar[str] = "mlops_gate_evidence"
