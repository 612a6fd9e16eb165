"""The Evidently HTML reports of a drift check, and the check end to end: compare, render, and write
reports and JSON summary under the storage root.

The HTML report is Evidently's ``Report`` (``DataDriftPreset`` with the resolved methods and
thresholds, ``ValueDrift`` for predictions and target, ``ClassificationPreset`` or
``RegressionPreset`` for quality) on at most ``report_sample_size`` rows per side; the JSON summary
is the record of the verdict.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.drift.compare import compute_drift
from airflow_mlops.core.drift.spec import PREDICTION_COLUMN, PROBABILITY_PREFIX
from airflow_mlops.core.drift.tables import categorical_values, open_table, sample_rows

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.drift.columns import ColumnDrift
    from airflow_mlops.core.drift.compare import DriftResult
    from airflow_mlops.core.drift.spec import DriftSpec
    from airflow_mlops.core.drift.tables import Table
    from airflow_mlops.core.storage import StorageRoot


# -- the HTML reports (Evidently's Report API) ---------------------------------------------------
def render_reports(
    reference: Any, current: Any, result: DriftResult, spec: DriftSpec, *, root: StorageRoot | None = None
) -> dict[str, str]:
    """Evidently HTML reports for a result: ``{"drift": html}`` and, with labels, ``{"quality": html}``.

    Only columns with a verdict of ``tested`` go in (Evidently refuses empty columns); each keeps the
    method and threshold the verdict used. Each side is cut to ``report_sample_size`` rows.
    """
    if result.verdict == "insufficient_data":
        return {}
    ref_table = open_table(reference, root=root, role="reference")
    cur_table = open_table(current, root=root, role="current batch")
    ref_rows = sample_rows(ref_table.num_rows, spec.report_sample_size, spec.seed)
    cur_rows = sample_rows(cur_table.num_rows, spec.report_sample_size, spec.seed)
    metadata = {"reference_rows": ref_table.num_rows, "current_rows": cur_table.num_rows}
    reports: dict[str, str] = {}
    drift_html = _drift_report(ref_table, cur_table, ref_rows, cur_rows, result, spec, metadata)
    if drift_html is not None:
        reports["drift"] = drift_html
    if result.quality is not None and result.target is not None:
        quality_html = _quality_report(ref_table, cur_table, ref_rows, cur_rows, result, spec, metadata)
        if quality_html is not None:
            reports["quality"] = quality_html
    return reports


def _drift_report(
    ref_table: Table,
    cur_table: Table,
    ref_rows: np.ndarray | None,
    cur_rows: np.ndarray | None,
    result: DriftResult,
    spec: DriftSpec,
    metadata: Mapping[str, Any],
) -> str | None:
    """``DataDriftPreset`` over the tested features, ``ValueDrift`` per tested output and target."""
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    tested = [c for c in result.features if c.status == "tested"]
    others = [c for c in (*result.predictions, *([result.target] if result.target else [])) if c.status == "tested"]
    columns = [c.column for c in (*tested, *others)]
    ref_frame = _report_frame(ref_table, columns, ref_rows, [*tested, *others])
    cur_frame = _report_frame(cur_table, columns, cur_rows, [*tested, *others])
    definition = DataDefinition(
        numerical_columns=[c.column for c in (*tested, *others) if c.kind == "numeric"],
        categorical_columns=[c.column for c in (*tested, *others) if c.kind == "categorical"],
    )
    metrics: list[Any] = []
    if tested:
        metrics.append(
            DataDriftPreset(
                columns=[c.column for c in tested],
                drift_share=spec.drift_share,
                per_column_method={c.column: c.method for c in tested},
                per_column_threshold={c.column: c.threshold for c in tested},
            )
        )
    metrics += [ValueDrift(column=c.column, method=c.method, threshold=c.threshold) for c in others]
    if not metrics:
        return None
    snapshot = Report(metrics, metadata=dict(metadata)).run(
        current_data=Dataset.from_pandas(cur_frame, data_definition=definition),
        reference_data=Dataset.from_pandas(ref_frame, data_definition=definition),
    )
    return str(snapshot.get_html_str(as_iframe=False))


def _quality_report(
    ref_table: Table,
    cur_table: Table,
    ref_rows: np.ndarray | None,
    cur_rows: np.ndarray | None,
    result: DriftResult,
    spec: DriftSpec,
    metadata: Mapping[str, Any],
) -> str | None:
    """``ClassificationPreset`` or ``RegressionPreset`` on both sides' labelled rows (None if a side has none)."""
    from evidently import DataDefinition, Dataset, Report

    quality, target_drift = result.quality, result.target
    if quality is None or target_drift is None:
        return None
    target = target_drift.column
    wanted = [target, PREDICTION_COLUMN] + [c.column for c in result.predictions if c.column != PREDICTION_COLUMN]
    labelled = []
    for table, rows in ((ref_table, ref_rows), (cur_table, cur_rows)):
        frame = table.frame(wanted, rows)
        frame = frame[frame[target].notna() & frame[PREDICTION_COLUMN].notna()].reset_index(drop=True)
        if quality.task != "regression":
            frame[target] = categorical_values(frame[target])
            frame[PREDICTION_COLUMN] = categorical_values(frame[PREDICTION_COLUMN])
        labelled.append(frame)
    if not all(len(frame) for frame in labelled):
        return None
    task_definition, preset = _quality_task(quality.task, target, result, spec)
    snapshot = Report([preset], metadata=dict(metadata)).run(
        current_data=Dataset.from_pandas(labelled[1], data_definition=DataDefinition(**task_definition)),
        reference_data=Dataset.from_pandas(labelled[0], data_definition=DataDefinition(**task_definition)),
    )
    return str(snapshot.get_html_str(as_iframe=False))


def _quality_task(task: str, target: str, result: DriftResult, spec: DriftSpec) -> tuple[dict[str, Any], Any]:
    """Evidently's data definition of the model's task, and the preset that reports its quality."""
    from evidently import BinaryClassification, MulticlassClassification, Regression
    from evidently.presets import ClassificationPreset, RegressionPreset

    if task == "regression":
        return {"regression": [Regression(target=target, prediction=PREDICTION_COLUMN)]}, RegressionPreset()
    if task == "binary":
        probability = next((c.column for c in result.predictions if c.column.startswith(PROBABILITY_PREFIX)), None)
        positive = spec.classes[-1] if spec.classes else "1"
        binary = BinaryClassification(
            target=target, prediction_labels=PREDICTION_COLUMN if probability is None else None,
            prediction_probas=probability, pos_label=positive,
        )  # fmt: skip
        return {"classification": [binary]}, ClassificationPreset()
    multiclass = MulticlassClassification(target=target, prediction_labels=PREDICTION_COLUMN)
    return {"classification": [multiclass]}, ClassificationPreset()


def _report_frame(
    table: Table, columns: Sequence[str], rows: np.ndarray | None, items: Sequence[ColumnDrift]
) -> pd.DataFrame:
    import numpy as np

    frame = table.frame(columns, rows)
    for item in items:
        if item.kind == "numeric":
            values = frame[item.column].to_numpy(dtype="float64", na_value=np.nan)
            values[np.isinf(values)] = np.nan
            frame[item.column] = values
        else:
            present = frame[item.column].notna()
            text = frame[item.column].astype(object)
            text[present] = categorical_values(frame[item.column]).to_numpy()
            frame[item.column] = text
    return frame


# -- outputs under the storage root ----------------------------------------------------------------
@dataclass(frozen=True)
class DriftOutputs:
    summary_uri: str
    report_uri: str | None
    quality_report_uri: str | None


def write_outputs(
    root: StorageRoot,
    pipeline: str,
    partition: str,
    result: DriftResult,
    reports: Mapping[str, str],
    metadata: Mapping[str, Any],
    folder: str | None = None,
) -> DriftOutputs:
    """Write the HTML reports, then the JSON summary, each atomically, under ``{pipeline}/drift/{partition}``.

    The summary goes last and names the reports, so a reader that finds a summary finds its reports.
    A rerun of the partition replaces them in place.
    """

    def uri(name: str) -> str:
        return root.layout(pipeline, contracts.KIND_DRIFT, partition, *([folder] if folder else []), name)

    report_uri = uri("report.html") if "drift" in reports else None
    quality_uri = uri("quality.html") if "quality" in reports else None
    if report_uri:
        root.write_bytes(report_uri, reports["drift"].encode("utf-8"))
    if quality_uri:
        root.write_bytes(quality_uri, reports["quality"].encode("utf-8"))
    summary_uri = uri("summary.json")
    summary = {
        **dict(metadata),
        "result": result.to_dict(),
        "report_uri": report_uri,
        "quality_report_uri": quality_uri,
        "written_at": datetime.now(UTC).isoformat(),
    }
    root.write_bytes(summary_uri, json.dumps(summary, indent=2, sort_keys=True, default=str).encode("utf-8"))
    return DriftOutputs(summary_uri, report_uri, quality_uri)


# -- one check, end to end (what the operator runs) -----------------------------------------------------
@dataclass(frozen=True)
class CheckOutcome:
    result: DriftResult
    outputs: DriftOutputs


def check_batch(
    root: StorageRoot,
    reference: Any,
    current: Any,
    spec: DriftSpec,
    *,
    pipeline: str,
    partition: str,
    metadata: Mapping[str, Any] | None = None,
    importance: Mapping[str, float] | None = None,
) -> CheckOutcome:
    """Compare, render the Evidently reports, and write reports and summary under the storage root.

    A labelled batch (one carrying the target) writes under ``{partition}/labelled/`` so that it does
    not replace the check of the same partition's serving log. ``importance`` (the champion's feature
    importance) weighs the weighted drift share.
    """
    result = compute_drift(reference, current, spec, root=root, importance=importance)
    reports = render_reports(reference, current, result, spec, root=root) if spec.html_report else {}
    folder = "labelled" if result.target is not None else None
    outputs = write_outputs(
        root, pipeline, partition, result, reports, {**dict(metadata or {}), "spec": spec.to_dict()}, folder
    )
    return CheckOutcome(result, outputs)
