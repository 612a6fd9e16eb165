"""Extra link from a validation task to its HTML report."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops.links.base import StorageLink


class ValidationReportLink(StorageLink):
    """The "Validation report" button: the HTML page the task wrote, stored as its key under the root."""

    name = "Validation report"
    key: ClassVar[str] = "validation_report_url"
