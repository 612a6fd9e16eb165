"""Drift: compare a current batch with the champion's training reference using Evidently's stattests, measure quality
once labels arrive, render HTML reports from the verdicts, and decide when drift asks for retraining. Public API:
``DriftSpec``,
``compute_drift``, ``DriftResult``, ``ColumnDrift``, ``SchemaSkew``, ``QualityResult``, ``quality_metrics``,
``check_batch``, ``CheckOutcome``, ``render_reports``, ``write_outputs``, ``DriftOutputs``, ``open_table``,
``sample_rows``, ``Table``, ``fetch_champion_reference``, ``ChampionReference``, ``monitoring_run``,
``log_drift_metrics``, ``LabelSpec``, ``LabelJoinResult``, ``join_labels``, ``join_label_files``, ``DriftPolicy``,
``Observation``, ``PolicyDecision``, ``decide``, ``decide_and_save``, ``observe``, ``receipt``, ``state_uri``,
``champion_importance``, ``ended_run``, ``write_decision``, ``with_champion_transforms``, ``PreparedBatch``
(modules: ``spec`` is the check's spec, ``tables`` reads
the inputs column by column, ``columns`` chooses the columns and tests each, ``quality`` measures the model on
labelled rows, ``compare`` gives the verdict, ``pages`` draws the HTML pages, ``report`` renders and writes the
reports, ``tracking`` talks to MLflow,
``labels`` joins late ground truth, ``policy`` turns verdicts into retrain decisions, ``state`` keeps the policy's
state, ``observation`` gives the policy's view of a result and the check's receipt, ``headline`` puts the decision at
the top of the outputs, ``transformed`` runs a raw batch through the champion's feature transforms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.drift.columns import ColumnDrift, SchemaSkew
    from airflow_mlops.core.drift.compare import DriftResult, compute_drift
    from airflow_mlops.core.drift.headline import write_decision
    from airflow_mlops.core.drift.labels import LabelJoinResult, LabelSpec, join_label_files, join_labels
    from airflow_mlops.core.drift.observation import observe, receipt
    from airflow_mlops.core.drift.policy import DriftPolicy, Observation, PolicyDecision, decide
    from airflow_mlops.core.drift.quality import QualityResult, quality_metrics
    from airflow_mlops.core.drift.report import CheckOutcome, DriftOutputs, check_batch, render_reports, write_outputs
    from airflow_mlops.core.drift.spec import DriftSpec
    from airflow_mlops.core.drift.state import decide_and_save, state_uri
    from airflow_mlops.core.drift.tables import Table, open_table, sample_rows
    from airflow_mlops.core.drift.tracking import (
        ChampionReference,
        champion_importance,
        ended_run,
        fetch_champion_reference,
        log_drift_metrics,
        monitoring_run,
    )
    from airflow_mlops.core.drift.transformed import PreparedBatch, with_champion_transforms

__all__ = [
    "ChampionReference",
    "CheckOutcome",
    "ColumnDrift",
    "DriftOutputs",
    "DriftPolicy",
    "DriftResult",
    "DriftSpec",
    "LabelJoinResult",
    "LabelSpec",
    "Observation",
    "PolicyDecision",
    "PreparedBatch",
    "QualityResult",
    "SchemaSkew",
    "Table",
    "champion_importance",
    "check_batch",
    "compute_drift",
    "decide",
    "decide_and_save",
    "ended_run",
    "fetch_champion_reference",
    "join_label_files",
    "join_labels",
    "log_drift_metrics",
    "monitoring_run",
    "observe",
    "open_table",
    "quality_metrics",
    "receipt",
    "render_reports",
    "sample_rows",
    "state_uri",
    "with_champion_transforms",
    "write_decision",
    "write_outputs",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ChampionReference": "tracking",
        "CheckOutcome": "report",
        "ColumnDrift": "columns",
        "DriftOutputs": "report",
        "DriftPolicy": "policy",
        "DriftResult": "compare",
        "DriftSpec": "spec",
        "LabelJoinResult": "labels",
        "LabelSpec": "labels",
        "Observation": "policy",
        "PolicyDecision": "policy",
        "PreparedBatch": "transformed",
        "QualityResult": "quality",
        "SchemaSkew": "columns",
        "Table": "tables",
        "champion_importance": "tracking",
        "check_batch": "report",
        "compute_drift": "compare",
        "decide": "policy",
        "decide_and_save": "state",
        "ended_run": "tracking",
        "fetch_champion_reference": "tracking",
        "join_label_files": "labels",
        "join_labels": "labels",
        "log_drift_metrics": "tracking",
        "monitoring_run": "tracking",
        "observe": "observation",
        "open_table": "tables",
        "quality_metrics": "quality",
        "receipt": "observation",
        "render_reports": "report",
        "sample_rows": "tables",
        "state_uri": "state",
        "with_champion_transforms": "transformed",
        "write_decision": "headline",
        "write_outputs": "report",
    },
)
