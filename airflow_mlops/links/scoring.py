"""Extra links from a scoring task to what it wrote."""

from __future__ import annotations

from typing import ClassVar

from airflow_mlops.links.base import StorageLink


class PredictionsLink(StorageLink):
    """ "Predictions" button: the partition's predictions file (Parquet)."""

    name = "Predictions"
    key: ClassVar[str] = "mlops_predictions"


class ShadowReportLink(StorageLink):
    """ "Shadow report" button: the challenger scored in the shadow of the champion, when there is one."""

    name = "Shadow report"
    key: ClassVar[str] = "mlops_shadow_report"
