"""Extra links from a drift check task to its HTML reports (drift, and quality when labels arrived)."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops.links.base import StorageLink


class DriftReportLink(StorageLink):
    """ "Drift report" button on a drift check task: the data drift report the check wrote."""

    name = "Drift report"
    key: ClassVar[str] = "mlops_drift_report"


class QualityReportLink(StorageLink):
    """ "Quality report" button: the model quality report, written when the batch's labels had arrived."""

    name = "Quality report"
    key: ClassVar[str] = "mlops_quality_report"
