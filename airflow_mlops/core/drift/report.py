"""The HTML reports of a drift check, and the check end to end: compare, render, and write reports
and JSON summary under the storage root.

The HTML pages (:mod:`~airflow_mlops.core.drift.pages`) show the verdicts the check computed, with
each tested column's distributions drawn from at most ``report_sample_size`` rows per side; they are
rendered per ``html_report``: ``always``, ``on_alert`` (default: only when the check found drift,
schema skew or worse quality) or ``never``. The JSON summary is the record of the verdict, always written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.drift import pages
from airflow_mlops.core.drift.compare import compute_drift
from airflow_mlops.core.drift.tables import open_table, sample_rows

if TYPE_CHECKING:
    from airflow_mlops.core.drift.compare import DriftResult
    from airflow_mlops.core.drift.spec import DriftSpec
    from airflow_mlops.core.storage import StorageRoot


# -- the HTML reports (drawn from the computed verdicts) ------------------------------------------
def wants_report(result: DriftResult, mode: str) -> bool:
    """Whether a check renders its HTML pages under ``html_report`` = ``mode``.

    ``on_alert`` renders when the check found something to look at: a drifted column of any role
    (feature, input, prediction, target), schema skew, or worse quality than the baseline."""
    if mode == "always":
        return True
    if mode == "never" or result.verdict == "insufficient_data":
        return False
    columns = (*result.features, *result.predictions, *([result.target] if result.target else []), *result.inputs)
    worse = result.quality is not None and result.quality.drop is not None and result.quality.drop > 0
    return result.verdict != "ok" or worse or any(c.drifted for c in columns)


def render_reports(
    reference: Any, current: Any, result: DriftResult, spec: DriftSpec, *, root: StorageRoot | None = None
) -> dict[str, str]:
    """The HTML pages of a result: ``{"drift": html}`` and, with measured quality, ``{"quality": html}``.

    Every figure is the result's (nothing is tested again); the distribution charts are drawn from at
    most ``report_sample_size`` rows per side.
    """
    if result.verdict == "insufficient_data":
        return {}
    ref_table = open_table(reference, root=root, role="reference")
    cur_table = open_table(current, root=root, role="current batch")
    ref_rows = sample_rows(ref_table.num_rows, spec.report_sample_size, spec.seed)
    cur_rows = sample_rows(cur_table.num_rows, spec.report_sample_size, spec.seed)
    metadata = {"reference_rows": ref_table.num_rows, "current_rows": cur_table.num_rows}
    reports = {"drift": pages.drift_page(result, ref_table, cur_table, ref_rows, cur_rows, metadata)}
    if result.quality is not None:
        reports["quality"] = pages.quality_page(result.quality, metadata)
    return reports


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
    """Compare, render the HTML reports (per ``html_report``), and write reports and summary under the storage root.

    A labelled batch (one carrying the target) writes under ``{partition}/labelled/`` so that it does
    not replace the check of the same partition's serving log. ``importance`` (the champion's feature
    importance) weighs the weighted drift share.
    """
    result = compute_drift(reference, current, spec, root=root, importance=importance)
    wanted = wants_report(result, spec.html_report)
    reports = render_reports(reference, current, result, spec, root=root) if wanted else {}
    folder = "labelled" if result.target is not None else None
    outputs = write_outputs(
        root, pipeline, partition, result, reports, {**dict(metadata or {}), "spec": spec.to_dict()}, folder
    )
    return CheckOutcome(result, outputs)
