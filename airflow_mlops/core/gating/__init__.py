"""Gating: a candidate model against the champion on the same evaluation rows, decided by a policy
(floors, the champion comparison, bootstrap, slices, baseline, parity, latency and size budgets, first-run
policy), with the decision saved as evidence and a model card. Public API: ``GatePolicy``,
``ModelUnderTest``, ``GateDecision``, ``Check``, ``read_evaluation_frame``, ``prepare_data``,
``EvaluationData``, ``measure_latency``, ``write_evidence``, ``evidence_location``, ``Evidence``,
``load_run_model``, ``download_run_artifact``, ``training_plots``, ``load_native_model``, ``render_markdown``,
``render_html``.
The gate itself is ``evaluate`` (module ``gate``). (modules: ``gate`` runs the checks and decides,
``checks`` holds one function per policy check, ``comparison`` the candidate against the champion (the
primary metric with a proper scoring rule, the minimum gain, calibration), ``decision`` the result
types, ``data`` the evaluation rows, ``models`` the models under test and how they are scored,
``baseline`` the simple model to beat, ``policy`` the policy (``coercion`` its values), ``evidence`` and
``card`` the decision record and model card, ``inputs`` fetches both models from MLflow, ``metrics`` the
metrics)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.gating.card import render_html, render_markdown
    from airflow_mlops.core.gating.data import EvaluationData, prepare_data, read_evaluation_frame
    from airflow_mlops.core.gating.decision import Check, GateDecision
    from airflow_mlops.core.gating.evidence import Evidence, evidence_location, write_evidence
    from airflow_mlops.core.gating.gate import evaluate
    from airflow_mlops.core.gating.inputs import (
        download_run_artifact,
        load_native_model,
        load_run_model,
        training_plots,
    )
    from airflow_mlops.core.gating.models import ModelUnderTest, measure_latency
    from airflow_mlops.core.gating.policy import GatePolicy

__all__ = [
    "Check",
    "EvaluationData",
    "Evidence",
    "GateDecision",
    "GatePolicy",
    "ModelUnderTest",
    "download_run_artifact",
    "evaluate",
    "evidence_location",
    "load_native_model",
    "load_run_model",
    "measure_latency",
    "prepare_data",
    "read_evaluation_frame",
    "render_html",
    "render_markdown",
    "training_plots",
    "write_evidence",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "render_html": "card",
        "render_markdown": "card",
        "EvaluationData": "data",
        "prepare_data": "data",
        "read_evaluation_frame": "data",
        "Check": "decision",
        "GateDecision": "decision",
        "Evidence": "evidence",
        "evidence_location": "evidence",
        "write_evidence": "evidence",
        "evaluate": "gate",
        "download_run_artifact": "inputs",
        "load_native_model": "inputs",
        "load_run_model": "inputs",
        "training_plots": "inputs",
        "ModelUnderTest": "models",
        "measure_latency": "models",
        "GatePolicy": "policy",
    },
)
