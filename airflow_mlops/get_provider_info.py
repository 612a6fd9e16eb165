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
    "airflow_mlops.operators.approval",
    "airflow_mlops.operators.backtest",
    "airflow_mlops.operators.base",
    "airflow_mlops.operators.branching",
    "airflow_mlops.operators.business",
    "airflow_mlops.operators.canary",
    "airflow_mlops.operators.drift",
    "airflow_mlops.operators.explain",
    "airflow_mlops.operators.feature_cost",
    "airflow_mlops.operators.gating",
    "airflow_mlops.operators.ingestion",
    "airflow_mlops.operators.lineage",
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
    "airflow_mlops.links.drift.QualityReportLink",
    "airflow_mlops.links.gating.GateEvidenceLink",
    "airflow_mlops.links.gating.ModelCardLink",
    "airflow_mlops.links.registry.MlflowModelVersionLink",
    "airflow_mlops.links.scoring.PredictionsLink",
    "airflow_mlops.links.scoring.ShadowReportLink",
    "airflow_mlops.links.training.MlflowTrainingRunLink",
    "airflow_mlops.links.validation.ValidationReportLink",
]


def _field(label: str, description: str, kind: str = "string", **schema: Any) -> dict[str, Any]:
    """One extra field of a connection form; its value is stored in the connection's extra under its name."""
    return {"label": label, "description": description, "schema": {"type": [kind, "null"], **schema}}


# The connection forms, declared as metadata: Airflow's UI reads them from here without importing the hooks
# (and without flask_appbuilder). Each extra field is one of the allowlisted extras its hook reads.
CONNECTION_TYPES = [
    {
        "hook-class-name": "airflow_mlops.hooks.mlflow.MlflowHook",
        "hook-name": "MLflow",
        "connection-type": "mlflow",
        "ui-field-behaviour": {
            "hidden-fields": ["login"],
            "relabeling": {"host": "Tracking URI", "schema": "Scheme", "password": "Token"},
            "placeholders": {
                "host": "https://mlflow.example.com or mlflow.example.com",
                "schema": "https (used when the tracking URI has no scheme)",
                "port": "5000",
                "password": "bearer token, empty when the server needs none",
            },
        },
        "conn-fields": {
            "ui_url": _field(
                "MLflow UI URL",
                "Address people open in a browser, when it differs from the tracking URI; "
                "[mlops] mlflow_ui_url wins over it for links.",
            ),
            "registry_uri": _field("Registry URI", "Model registry, when it is not the tracking server."),
            "path": _field("Path prefix", "URL path the server is mounted under, e.g. /mlflow."),
        },
    },
    {
        "hook-class-name": "airflow_mlops.hooks.ingestion.SqlSourceHook",
        "hook-name": "MLOps SQL source (SQLAlchemy)",
        "connection-type": "mlops_sql",
        "ui-field-behaviour": {
            "hidden-fields": [],
            "relabeling": {"schema": "Database", "login": "User"},
            "placeholders": {
                "host": "db.example.com",
                "schema": "analytics",
                "port": "5432",
                "login": "reader",
            },
        },
        "conn-fields": {
            "sqlalchemy_scheme": _field(
                "SQLAlchemy driver",
                "Driver name when not postgresql+psycopg2, e.g. postgresql+psycopg or mysql+pymysql.",
            ),
            "sslmode": _field("SSL mode", "PostgreSQL sslmode, e.g. require or verify-full."),
        },
    },
    {
        "hook-class-name": "airflow_mlops.hooks.webhook.WebhookHook",
        "hook-name": "MLOps webhook",
        "connection-type": "mlops_webhook",
        "ui-field-behaviour": {
            "hidden-fields": ["login"],
            "relabeling": {"host": "URL or host", "schema": "Scheme", "password": "Bearer token"},
            "placeholders": {
                "host": "https://hooks.example.com/services/T000/B000",
                "schema": "https",
                "password": "sent as Authorization: Bearer, never in the payload",
            },
        },
        "conn-fields": {
            "endpoint": _field("Endpoint path", "Path appended to the host, when the host is not a full URL."),
            "timeout": _field("Timeout (seconds)", "How long one post may take.", "number", default=10),
        },
    },
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
            "checked_pipelines_folder": _option(
                "Folder where the reference DAGs record the pipeline files that passed their costly checks "
                "(feature requirements, business metric), so that parsing an unchanged file skips them; 'off' "
                "checks every file in full at every parse. Defaults to $AIRFLOW_HOME/mlops/checked_pipelines.",
                None,
                "off",
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
                "Address of the MLflow UI for extra links (MLflow run, model version). Empty: the MLflow "
                "connection's ui_url extra, else its host (tracking URI); http://127.0.0.1:5000 for the "
                "embedded store.",
                "",
                "https://mlflow.example.com",
            ),
            "reports_url": _option(
                "Browser address of a server that serves the storage root, for the links to reports, model "
                "cards and predictions, read when a link is clicked. Empty: the provider plugin's own pages "
                "on the api-server, behind Airflow's sign-in.",
                "",
                "http://127.0.0.1:8765/",
            ),
            "report_base_url": _option("Earlier name of reports_url, read when reports_url is empty.", ""),
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
