"""Staleness operators: how old the champion and its data are, and how fast its quality decays with age."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import batch_time
from airflow_mlops.operators.drift import drift_alias, drift_asset
from airflow_mlops.operators.monitoring import MonitoringOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckModelStalenessOperator(MonitoringOperator):
    """Alert when the champion (or ``alias``) is older than ``max_model_age``, or the data it learned
    from is older than ``max_data_age``; optionally ask for retraining through the drift asset.

    :param model_name: registered model name. (templated)
    :param pipeline: pipeline name, for the retraining asset ``x-mlops://<pipeline>/drift``. (templated)
    :param alias: the alias checked, ``champion`` by default. (templated)
    :param max_model_age: e.g. ``30d``, ``36h`` or seconds. (templated)
    :param max_data_age: limit on the age of ``data_timestamp``. (templated)
    :param data_timestamp: the newest data the model learned from (ISO 8601 or epoch seconds); by
        default the ``source_watermark`` of the ingestion receipt beside the champion's snapshot. (templated)
    :param trigger_retraining: on a stale model, emit the ``x-mlops://<pipeline>/drift`` event that the
        continuous-training DAG is scheduled on. (templated)
    :param storage_root: storage root of the snapshot's receipt; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)

    A stale model notifies but does not fail the task unless ``fail_on`` says so (``never`` by default).
    """

    template_fields: Sequence[str] = (
        "model_name", "pipeline", "alias", "max_model_age", "max_data_age", "data_timestamp", "trigger_retraining",
        "storage_root", "mlflow_conn_id", "aws_conn_id"
    )  # fmt: skip
    default_fail_on = "never"

    def __init__(
        self,
        *,
        model_name: str,
        pipeline: str,
        alias: str = "champion",
        max_model_age: str | float | None = None,
        max_data_age: str | float | None = None,
        data_timestamp: str | float | None = None,
        trigger_retraining: bool | str = False,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [drift_alias(pipeline)])
        super().__init__(**kwargs)
        self.model_name = model_name
        self.pipeline = pipeline
        self.alias = alias
        self.max_model_age = max_model_age
        self.max_data_age = max_data_age
        self.data_timestamp = data_timestamp
        self.trigger_retraining = trigger_retraining
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.monitoring import model_version_facts, snapshot_watermark
        from airflow_mlops.core.params import parse_flag

        facts = model_version_facts(self.mlflow_client, self.model_name, alias=self.alias)
        data_timestamp = self.data_timestamp
        if data_timestamp in (None, "") and facts.dataset_uri:
            # The newest row of the champion's snapshot, from the ingestion receipt beside it.
            root = self.storage
            data_timestamp = snapshot_watermark(root, facts.dataset_uri)
        finding = m.check_staleness(
            model_created_at=facts.created_at,
            now=batch_time(context).astimezone(UTC),
            max_model_age=m.parse_duration(self.max_model_age, "max_model_age"),
            data_at=m.parse_timestamp(data_timestamp, "data_timestamp"),
            max_data_age=m.parse_duration(self.max_data_age, "max_data_age"),
        )
        extra: dict[str, Any] = facts.identity()
        if finding.is_alert and parse_flag(self.trigger_retraining, "The 'trigger_retraining' argument"):
            asset = drift_asset(self.pipeline)
            event = {"reason": finding.message, "pipeline": self.pipeline, "check": "staleness", **facts.identity()}
            context["outlet_events"][drift_alias(self.pipeline)].add(asset, extra=event)
            extra["asset_event"] = {"uri": asset.uri, "extra": event}
        return self.conclude(context, finding, **extra)


class MeasureStalenessImpactOperator(MonitoringOperator):
    """Measure how the champion's served quality decays with the age of its training data, from the
    quality the drift checks logged on labelled batches, and alert when it decays faster than allowed.

    :param model_name: registered model name. (templated)
    :param alias: alias measured, ``champion`` by default. (templated)
    :param metric: quality metric, the training spec's primary metric by default. (templated)
    :param max_loss_per_30_days: quality lost per 30 days of staleness that alerts, 0.01. (templated)
    :param data_timestamp: the newest data the model learned from; by default the watermark of the
        ingestion receipt beside its snapshot, else its registration time. (templated)
    :param storage_root: storage root of the snapshot's receipt. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name", "alias", "metric", "max_loss_per_30_days", "data_timestamp", "storage_root",
        "mlflow_conn_id", "aws_conn_id",
    )  # fmt: skip
    default_fail_on = "never"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        metric: str | None = None,
        max_loss_per_30_days: float | str = 0.01,
        data_timestamp: str | None = None,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.metric = metric
        self.max_loss_per_30_days = max_loss_per_30_days
        self.data_timestamp = data_timestamp
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core import monitoring as reg
        from airflow_mlops.core.params import parse_number

        client = self.mlflow_client
        facts = reg.model_version_facts(client, self.model_name, alias=self.alias)
        data_at = m.parse_timestamp(self.data_timestamp, "data_timestamp")
        if data_at is None and facts.dataset_uri:
            root = self.storage
            data_at = m.parse_timestamp(reg.snapshot_watermark(root, facts.dataset_uri), "source_watermark")
        data_at = data_at or facts.created_at
        _, metric, higher_is_better = facts.proxy_metric(self.metric)
        finding = m.staleness_impact(
            reg.quality_by_age(client, facts, metric, data_at),
            metric=metric,
            higher_is_better=higher_is_better,
            max_loss_per_30_days=parse_number(self.max_loss_per_30_days, "max_loss_per_30_days"),
        )
        return self.conclude(context, finding, **facts.identity(), data_at=data_at.isoformat())
