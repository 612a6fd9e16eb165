"""Pipeline: a pipeline file (``pipelines/<name>.yaml``) read and validated into the settings of one
pipeline's DAGs, its serving schedule, the feature requirements its training must meet, and the business
metric that prices its errors. Public API: ``PipelineFile``, ``discover``, ``pipeline_of_asset_uri``,
``parse_review``, ``ServingSchedule``, ``parse_schedule``, ``batch_dags``, ``FeatureRequirements``,
``refuse``, ``BusinessMetric``, ``Outcome``, ``ProxyCheck``, ``proxy_correlation`` ... (modules: ``file`` reads pipeline
files, ``schedule`` parses serving schedules and groups pipelines into batch DAGs, ``requirements`` checks
features against the declared requirements, ``business`` measures the cost of a model's errors and how well
a proxy metric tracks it, ``outcome`` measures a business outcome known only after serving).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.pipeline.business import (
        BusinessMetric,
        BusinessValue,
        LabelledBatch,
        ProxyCheck,
        proxy_correlation,
        spearman,
    )
    from airflow_mlops.core.pipeline.file import (
        PipelineFile,
        ReviewMode,
        discover,
        parse_review,
        pipeline_of_asset_uri,
        project_folder,
    )
    from airflow_mlops.core.pipeline.outcome import Outcome
    from airflow_mlops.core.pipeline.requirements import FeatureRequirements, Violation, refuse, suite_columns
    from airflow_mlops.core.pipeline.schedule import (
        DAG_ID_PREFIX,
        MONTHLY,
        ServingSchedule,
        batch_dags,
        check_batch_pattern,
        parse_schedule,
    )

__all__ = [
    "DAG_ID_PREFIX",
    "MONTHLY",
    "BusinessMetric",
    "BusinessValue",
    "FeatureRequirements",
    "LabelledBatch",
    "Outcome",
    "PipelineFile",
    "ProxyCheck",
    "ReviewMode",
    "ServingSchedule",
    "Violation",
    "batch_dags",
    "check_batch_pattern",
    "discover",
    "parse_review",
    "parse_schedule",
    "pipeline_of_asset_uri",
    "project_folder",
    "proxy_correlation",
    "refuse",
    "spearman",
    "suite_columns",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "PipelineFile": "file",
        "ReviewMode": "file",
        "discover": "file",
        "parse_review": "file",
        "pipeline_of_asset_uri": "file",
        "project_folder": "file",
        "DAG_ID_PREFIX": "schedule",
        "MONTHLY": "schedule",
        "ServingSchedule": "schedule",
        "batch_dags": "schedule",
        "check_batch_pattern": "schedule",
        "parse_schedule": "schedule",
        "FeatureRequirements": "requirements",
        "Violation": "requirements",
        "refuse": "requirements",
        "suite_columns": "requirements",
        "BusinessMetric": "business",
        "BusinessValue": "business",
        "LabelledBatch": "business",
        "ProxyCheck": "business",
        "proxy_correlation": "business",
        "spearman": "business",
        "Outcome": "outcome",
    },
)
