"""Provider metadata read by Airflow's providers manager (entry point ``apache_airflow_provider``).

Every hook, operator, sensor, trigger and extra-link module is listed here as it is added; a test
imports each listed module and checks that every Hook/Trigger/Link class in the package is listed.
"""

from __future__ import annotations

from typing import Any

from airflow_mlops import __version__

INTEGRATION = "MLOps"

# One entry per line, kept sorted: adding a module is adding a line.
HOOK_MODULES = [
    "airflow_mlops.hooks.ingestion",
    "airflow_mlops.hooks.mlflow",
    "airflow_mlops.hooks.storage",
    "airflow_mlops.hooks.webhook",
]
OPERATOR_MODULES = [
    "airflow_mlops.operators.backtest",
    "airflow_mlops.operators.base",
    "airflow_mlops.operators.branching",
    "airflow_mlops.operators.business",
    "airflow_mlops.operators.drift",
    "airflow_mlops.operators.explain",
    "airflow_mlops.operators.feature_cost",
    "airflow_mlops.operators.gating",
    "airflow_mlops.operators.ingestion",
    "airflow_mlops.operators.monitoring",
    "airflow_mlops.operators.monitoring_data",
    "airflow_mlops.operators.monitoring_staleness",
    "airflow_mlops.operators.provenance",
    "airflow_mlops.operators.registry",
    "airflow_mlops.operators.reproducibility",
    "airflow_mlops.operators.scoring",
    "airflow_mlops.operators.training",
    "airflow_mlops.operators.validation",
]
SENSOR_MODULES = [
    "airflow_mlops.sensors.ingestion",
    "airflow_mlops.sensors.registry",
]
TRIGGER_MODULES = [
    "airflow_mlops.triggers.ingestion",
    "airflow_mlops.triggers.registry",
]
EXTRA_LINKS = [
    "airflow_mlops.links.drift.DriftReportLink",
    "airflow_mlops.links.registry.MlflowModelVersionLink",
    "airflow_mlops.links.training.MlflowTrainingRunLink",
    "airflow_mlops.links.validation.ValidationReportLink",
]
CONNECTION_TYPES = [
    {"hook-class-name": "airflow_mlops.hooks.mlflow.MlflowHook", "connection-type": "mlflow"},
    {"hook-class-name": "airflow_mlops.hooks.ingestion.SqlSourceHook", "connection-type": "mlops_sql"},
    {"hook-class-name": "airflow_mlops.hooks.webhook.WebhookHook", "connection-type": "mlops_webhook"},
]
NOTIFIERS = [
    "airflow_mlops.notifiers.webhook.WebhookNotifier",
]
PLUGINS = [
    {"name": "airflow_mlops", "plugin-class": "airflow_mlops.plugins.mlops.MlopsPlugin"},
]


def _option(description: str, default: str | None, example: str | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": "string",
        "example": example,
        "default": default,
    }


CONFIG = {
    "mlops": {
        "description": "Deployment-wide defaults of the airflow-mlops provider.",
        "options": {
            "storage_root": _option(
                "Root of every artifact: a local folder or s3://bucket/prefix. "
                "Defaults to $AIRFLOW_HOME/mlops/storage.",
                None,
                "s3://ml-artifacts/pipelines",
            ),
            "pipelines_folder": _option(
                "Folder of the pipeline files (*.yaml) the reference DAGs read; relative paths inside a file "
                "are relative to the folder's grandparent. Defaults to the DAG files' include/pipelines.",
                None,
                "/opt/ml/include/pipelines",
            ),
            "storage_conn_id": _option("AWS connection used when storage_root is on S3.", "aws_default"),
            "mlflow_conn_id": _option(
                "MLflow connection; when it does not exist the embedded store is used.", "mlflow_default"
            ),
            "mlflow_tracking_uri": _option(
                "Tracking URI of the embedded store, used when the MLflow connection does not exist. "
                "Defaults to sqlite:///$AIRFLOW_HOME/mlops/mlflow.db.",
                None,
            ),
            "mlflow_artifact_root": _option(
                "Artifact root for experiments created in the embedded store. "
                "Defaults to $AIRFLOW_HOME/mlops/mlartifacts.",
                None,
            ),
            "mlflow_ui_url": _option(
                "Address of the MLflow UI used by extra links when the store is embedded.",
                "http://127.0.0.1:5000",
            ),
            "report_base_url": _option(
                "Browser address that serves the storage root, for the validation and drift report links "
                "(the Airflow UI shows only http(s) links). Empty: file:// or S3 console links.",
                "",
                "http://127.0.0.1:8765/",
            ),
        },
    }
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "airflow-mlops",
        "name": "MLOps",
        "description": "Ingest, validate, train, gate, register, promote, score and monitor tabular ML models.",
        "versions": [__version__],
        "integrations": [{"integration-name": INTEGRATION, "tags": ["software"]}],
        "operators": [{"integration-name": INTEGRATION, "python-modules": OPERATOR_MODULES}],
        "sensors": [{"integration-name": INTEGRATION, "python-modules": SENSOR_MODULES}],
        "hooks": [{"integration-name": INTEGRATION, "python-modules": HOOK_MODULES}],
        "triggers": [{"integration-name": INTEGRATION, "python-modules": TRIGGER_MODULES}],
        "connection-types": CONNECTION_TYPES,
        "notifications": NOTIFIERS,
        "extra-links": EXTRA_LINKS,
        "config": CONFIG,
        "plugins": PLUGINS,
    }
