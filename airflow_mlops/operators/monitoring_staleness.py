"""Staleness operators: how old the champion and its data are, and how fast its quality decays with age."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import batch_time, input_failures
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
    """Measure what model age costs on labelled batches: the champion and the earlier versions still
    registered score the same rows, and the quality each reaches is set against the age of its training
    data (the batch's time less the end of that data); alert when a month of age costs more than the
    pipeline allows. See :mod:`airflow_mlops.core.monitoring.staleness`.

    :param model_name: registered model name. (templated)
    :param batches: the labelled batches: Parquet URIs holding the models' input columns and the target,
        or scoring receipts (their ``input_uri`` is read; a skipped partition is left out). (templated)
    :param policy: :class:`~airflow_mlops.core.monitoring.staleness.StalenessImpactPolicy` mapping
        (``max_cost_per_month`` 0.01, ``max_versions`` 4, ``min_versions`` 2). (templated)
    :param alias: the alias whose version is the newest compared, ``champion`` by default. (templated)
    :param metric: quality metric, the training spec's primary metric by default. (templated)
    :param storage_root: storage root of the batches and dimension tables. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)

    Each batch's figures go to the champion's training run as ``staleness.<metric>.v<version>`` and
    ``staleness.cost_per_month`` at the batch's step, and to the receipt. The worst batch is the verdict.
    """

    template_fields: Sequence[str] = (
        "model_name", "batches", "policy", "alias", "metric", "storage_root", "mlflow_conn_id", "aws_conn_id",
    )  # fmt: skip
    template_fields_renderers = {"policy": "json"}
    default_fail_on = "never"

    def __init__(
        self,
        *,
        model_name: str,
        batches: Sequence[Any] | str = (),
        policy: Mapping[str, Any] | None = None,
        alias: str = "champion",
        metric: str | None = None,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.batches = batches
        self.policy = policy
        self.alias = alias
        self.metric = metric
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.monitoring import staleness, versions

        client = self.mlflow_client
        policy = staleness.StalenessImpactPolicy.from_mapping(self.policy)
        champion = m.model_version_facts(client, self.model_name, alias=self.alias)
        _, metric, higher_is_better = champion.proxy_metric(self.metric)
        compared = versions.versions_to_compare(client, champion, policy.max_versions)
        root = self.storage
        ends = {f.version: versions.data_end(f, root) for f in compared}
        served_at = batch_time(context).astimezone(UTC)
        findings = []
        for uri in _batch_uris(self.batches):
            with input_failures():  # a batch without the target, or rows that differ, fails without retry
                quality, rows = versions.quality_on_batch(client, root, uri, compared, metric)
            points = [
                staleness.AgedQuality(
                    v, end.isoformat(), source, (served_at - end).total_seconds() / 86400.0, quality[v]
                )
                for v, (end, source) in ends.items()
            ]
            finding = staleness.age_cost(
                points, metric=metric, higher_is_better=higher_is_better, rows=rows, policy=policy
            )
            finding.details["batch_uri"] = uri
            self._record(champion, finding, m.step_of(served_at))
            findings.append(finding)
        if not findings:
            findings.append(m.Finding("staleness_impact", "ok", "No labelled batch to score.", {"batches": []}))
        worst = max(findings, key=lambda f: m.SEVERITIES.index(f.severity))
        extra = {"batches": [f.to_dict() for f in findings], "served_at": served_at.isoformat()}
        return self.conclude(context, worst, **champion.identity(), **extra)

    def _record(self, champion: Any, finding: Any, step: int) -> None:
        """The batch's figures on the champion's training run, one series per metric."""
        from airflow_mlops.core import monitoring as m

        details, client = finding.details, self.mlflow_client
        for point in details["points"]:
            if point["quality"] is not None:
                key = f"staleness.{details['metric']}.v{point['version']}"
                m.record_metric(client, champion.run_id, key, point["quality"], step)
        if "cost_per_month" in details:
            m.record_metric(client, champion.run_id, "staleness.cost_per_month", details["cost_per_month"], step)


def _batch_uris(batches: Sequence[Any] | str | None) -> list[str]:
    """The Parquet URIs of ``batches``: URIs as they are, scoring receipts by their ``input_uri``."""
    from airflow_mlops.core.errors import SpecError

    if batches in (None, ""):
        return []
    items = [batches] if isinstance(batches, str | Mapping) else list(batches)
    uris = []
    for item in items:
        if isinstance(item, Mapping):
            if item.get("skipped") or not item.get("output_uri"):
                continue  # an empty partition: nothing was scored
            item = item.get("input_uri")
        if not isinstance(item, str) or not item:
            raise SpecError(f"'batches' must hold Parquet URIs or scoring receipts with an input_uri. Got {item!r}.")
        uris.append(item)
    return uris
