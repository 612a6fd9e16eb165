"""A drift result as the policy sees it (:func:`observe`), and the small receipt a check returns."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.drift.policy import Observation, PolicyDecision

if TYPE_CHECKING:
    from airflow_mlops.core.drift.columns import ColumnDrift
    from airflow_mlops.core.drift.compare import DriftResult
    from airflow_mlops.core.drift.report import DriftOutputs


def observe(result: DriftResult, batch_id: str, as_of: str | datetime, reference_id: str) -> Observation:
    """The policy's view of a drift result. Drifted columns include prediction and target columns, so
    ``trigger_columns`` can name them."""
    drifted = [*result.drifted_columns]
    drifted += [c.column for c in (*result.predictions, *([result.target] if result.target else [])) if c.drifted]
    quality = result.quality
    return Observation.create(
        batch_id,
        as_of,
        reference_id,
        drift_share=result.drift_share,
        weighted_drift_share=result.weighted_drift_share if result.weighting == "importance" else None,
        drifted_columns=tuple(drifted),
        input_drifted_columns=tuple(c.column for c in result.input_drift),
        quality_drop=quality.drop if quality else None,
        quality_metric=quality.metric if quality else None,
        labelled_rows=result.labelled_rows,
    )


def input_drift(column: ColumnDrift) -> dict[str, Any]:
    """How a drifted monitored column (one the model does not read) is reported and notified."""
    return {
        "column": column.column,
        "test": column.method,
        "score": column.score,
        "threshold": column.threshold,
        "severity": "input_drift",
    }


def receipt(
    result: DriftResult, decision: PolicyDecision, outputs: DriftOutputs, reference: Mapping[str, Any], batch_id: str
) -> dict[str, Any]:
    """The small JSON-able summary a drift check returns (its XCom): verdict, decision, figures, URIs."""
    quality = result.quality
    return {
        "verdict": result.verdict,
        "retrain": decision.retrain,
        "decision": decision.status,
        "reasons": list(decision.reasons),
        "findings": list(result.reasons),
        "drift_share": result.drift_share,
        "weighted_drift_share": result.weighted_drift_share,
        "weighting": result.weighting,
        "left_out": {"constant in the reference": list(result.left_out)},
        "drifted_columns": list(result.drifted_columns),
        "input_drift": [input_drift(c) for c in result.input_drift],
        "prediction_drift": result.prediction_drift,
        "scores": result.scores(),
        "quality_status": "unknown (no labels in this batch)" if quality is None else "measured",
        "quality": None
        if quality is None
        else {
            "metric": quality.metric,
            "current": quality.current,
            "baseline": quality.baseline,
            "drop": quality.drop,
            "labelled_rows": quality.labelled_rows,
            "business": quality.business,
        },
        "schema_skew": result.schema_skew.to_dict() if result.schema_skew.any else None,
        "rows": {"reference": result.reference_rows, "current": result.current_rows},
        "report_uri": outputs.report_uri,
        "quality_report_uri": outputs.quality_report_uri,
        "summary_uri": outputs.summary_uri,
        "reference": dict(reference),
        "batch_id": batch_id,
        "as_of": decision.as_of,
        "next_eligible_at": decision.next_eligible_at,
        "asset_event": None,
    }
