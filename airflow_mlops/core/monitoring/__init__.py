"""Monitoring: the production-readiness checks (the monitoring tests of the ML Test Score) as pure
functions returning a :class:`Finding` (``ok``, ``warn`` or ``alert``), and what they read from MLflow and
storage. Public API: ``Finding``, ``Severity``, ``worst``, the checks ``check_staleness``, ``age_cost``
(with ``StalenessImpactPolicy``, ``AgedQuality``), ``check_dependencies``, ``check_feature_importance``,
``check_schema_change``,
``check_personal_data``, ``check_finite``, ``check_metrics_finite``, ``check_performance``, the argument
parsers ``parse_duration``, ``parse_timestamp``, ``parse_fraction``, and the readers ``ModelVersionFacts``,
``model_version_facts``, ``read_columns``, ``parquet_schema`` ... (modules: ``findings`` holds the verdict
type, ``arguments`` parses templated arguments, ``model`` checks the champion model, ``data`` checks the
data it reads, ``serving`` checks a running pipeline's numbers and speed, ``staleness`` measures what model age costs,
``versions`` scores earlier versions on a batch for it, ``facts`` reads MLflow and storage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.monitoring.arguments import parse_duration, parse_fraction, parse_timestamp
    from airflow_mlops.core.monitoring.data import check_personal_data, check_schema_change
    from airflow_mlops.core.monitoring.facts import (
        ARTIFACT_IMPORTANCE,
        ModelVersionFacts,
        labelled_batches,
        locate,
        metric_key,
        model_version_facts,
        monitoring_run,
        monitoring_series,
        parquet_schema,
        performance_run,
        read_columns,
        read_text_columns,
        receipt_value,
        record_metric,
        run_feature_importance,
        snapshot_watermark,
        step_of,
    )
    from airflow_mlops.core.monitoring.findings import SEVERITIES, Finding, Severity, worst
    from airflow_mlops.core.monitoring.model import (
        check_dependencies,
        check_feature_importance,
        check_staleness,
        installed_versions,
    )
    from airflow_mlops.core.monitoring.serving import (
        check_finite,
        check_metrics_finite,
        check_performance,
        count_non_finite,
        loss_metrics,
    )
    from airflow_mlops.core.monitoring.staleness import AgedQuality, StalenessImpactPolicy, age_cost
    from airflow_mlops.core.monitoring.versions import data_end, quality_on_batch, versions_to_compare

__all__ = [
    "ARTIFACT_IMPORTANCE",
    "SEVERITIES",
    "AgedQuality",
    "Finding",
    "ModelVersionFacts",
    "Severity",
    "StalenessImpactPolicy",
    "age_cost",
    "check_dependencies",
    "check_feature_importance",
    "check_finite",
    "check_metrics_finite",
    "check_performance",
    "check_personal_data",
    "check_schema_change",
    "check_staleness",
    "count_non_finite",
    "data_end",
    "installed_versions",
    "labelled_batches",
    "locate",
    "loss_metrics",
    "metric_key",
    "model_version_facts",
    "monitoring_run",
    "monitoring_series",
    "parquet_schema",
    "parse_duration",
    "parse_fraction",
    "parse_timestamp",
    "performance_run",
    "quality_on_batch",
    "read_columns",
    "read_text_columns",
    "receipt_value",
    "record_metric",
    "run_feature_importance",
    "snapshot_watermark",
    "step_of",
    "versions_to_compare",
    "worst",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "Finding": "findings",
        "SEVERITIES": "findings",
        "Severity": "findings",
        "worst": "findings",
        "parse_duration": "arguments",
        "parse_fraction": "arguments",
        "parse_timestamp": "arguments",
        "check_dependencies": "model",
        "check_feature_importance": "model",
        "check_staleness": "model",
        "installed_versions": "model",
        "AgedQuality": "staleness",
        "StalenessImpactPolicy": "staleness",
        "age_cost": "staleness",
        "data_end": "versions",
        "quality_on_batch": "versions",
        "versions_to_compare": "versions",
        "check_personal_data": "data",
        "check_schema_change": "data",
        "check_finite": "serving",
        "check_metrics_finite": "serving",
        "check_performance": "serving",
        "count_non_finite": "serving",
        "loss_metrics": "serving",
        "ARTIFACT_IMPORTANCE": "facts",
        "ModelVersionFacts": "facts",
        "labelled_batches": "facts",
        "locate": "facts",
        "metric_key": "facts",
        "model_version_facts": "facts",
        "monitoring_run": "facts",
        "monitoring_series": "facts",
        "parquet_schema": "facts",
        "performance_run": "facts",
        "read_columns": "facts",
        "read_text_columns": "facts",
        "receipt_value": "facts",
        "record_metric": "facts",
        "run_feature_importance": "facts",
        "snapshot_watermark": "facts",
        "step_of": "facts",
    },
)
