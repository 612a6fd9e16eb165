"""Monitoring operators: staleness, numerical stability, performance, dependencies, upstream schema,
feature importance.

Each runs one check of :mod:`airflow_mlops.core.monitoring` and returns its finding
(``{"check", "severity", "message", "details"}``). A finding that is not ``ok`` is sent to every
notifier in ``notifiers`` (for instance :class:`~airflow_mlops.notifiers.webhook.WebhookNotifier`),
with the finding in the context under ``mlops_alert``. Where the check is blocking (``fail_on``), the
finding is pushed to XCom first and the task then fails without retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops.operators.drift import batch_time, drift_alias, drift_asset

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context

ALERT_CONTEXT_KEY = "mlops_alert"  # the same key as airflow_mlops.notifiers.webhook.ALERT_CONTEXT_KEY
IMPORTANCE_ARTIFACT = "importance/feature_importance.json"  # written by training (core/training_tracking.py)


class MonitoringOperator(BaseOperator):
    """Base of the monitoring operators: notify on a non-ok finding, fail on a blocking one.

    :param notifiers: notifiers called with the finding when it is not ``ok``.
    :param fail_on: the severity from which the task fails (``alert``, ``warn``, or ``never``).
    """

    ui_color = "#fdecea"
    default_fail_on = "alert"

    def __init__(self, *, notifiers: Sequence[BaseNotifier] = (), fail_on: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.notifiers = notifiers
        self.fail_on = fail_on

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.exceptions import MlopsVerdictFailure

        try:
            return self.run_check(context)
        except SpecError as exc:  # a bad argument gives the same answer on every retry
            raise MlopsVerdictFailure(str(exc)) from exc

    def run_check(self, context: Context) -> dict[str, Any]:
        """Run the check and return :meth:`conclude`'s receipt."""
        raise NotImplementedError

    def conclude(self, context: Context, finding: Any, **extra: Any) -> dict[str, Any]:
        """Log, notify, push and (when blocking) fail, for a core ``Finding``; return the receipt."""
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.exceptions import MlopsVerdictFailure

        receipt = {**finding.to_dict(), **extra}
        self.log.info("%s check: %s: %s", finding.check, finding.severity, finding.message)
        if finding.needs_notification:
            for notifier in self.notifiers:
                # A copy: the notifier renders its templates against it and must not leak into the task's.
                notifier({**context, ALERT_CONTEXT_KEY: receipt})  # type: ignore[arg-type]
        fail_on = self.fail_on or self.default_fail_on
        if fail_on not in ("alert", "warn", "never"):
            raise SpecError(f"'fail_on' must be 'alert', 'warn' or 'never'. Got {fail_on!r} instead.")
        blocking = fail_on != "never" and (finding.is_alert or (fail_on == "warn" and finding.needs_notification))
        if blocking:
            context["ti"].xcom_push(key="return_value", value=receipt)
            raise MlopsVerdictFailure(finding.message)
        return receipt


def _client(mlflow_conn_id: str | None) -> Any:
    from airflow_mlops.hooks.mlflow import MlflowHook

    return MlflowHook(mlflow_conn_id).get_conn()


class CheckModelStalenessOperator(MonitoringOperator):
    """Alert when the champion (or ``alias``) is older than ``max_model_age``, or the data it learned
    from is older than ``max_data_age``; optionally ask for retraining through the drift asset.

    :param model_name: registered model name. (templated)
    :param pipeline: pipeline name, for the retraining asset ``mlops://<pipeline>/drift``. (templated)
    :param alias: the alias checked, ``champion`` by default. (templated)
    :param max_model_age: e.g. ``30d``, ``36h`` or seconds. (templated)
    :param max_data_age: limit on the age of ``data_timestamp``. (templated)
    :param data_timestamp: the newest data the model learned from (ISO 8601 or epoch seconds); by
        default the ``source_watermark`` of the ingestion receipt beside the champion's snapshot. (templated)
    :param trigger_retraining: on a stale model, emit the ``mlops://<pipeline>/drift`` event that the
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
        from airflow_mlops.core.monitoring_registry import model_version_facts, snapshot_watermark
        from airflow_mlops.core.scoring import as_flag
        from airflow_mlops.hooks.storage import StorageHook

        facts = model_version_facts(_client(self.mlflow_conn_id), self.model_name, alias=self.alias)
        data_timestamp = self.data_timestamp
        if data_timestamp in (None, "") and facts.dataset_uri:
            # The newest row of the champion's snapshot, from the ingestion receipt beside it.
            root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
            data_timestamp = snapshot_watermark(root, facts.dataset_uri)
        finding = m.check_staleness(
            model_created_at=facts.created_at,
            now=batch_time(context).astimezone(UTC),
            max_model_age=m.parse_duration(self.max_model_age, "max_model_age"),
            data_at=m.parse_timestamp(data_timestamp, "data_timestamp"),
            max_data_age=m.parse_duration(self.max_data_age, "max_data_age"),
        )
        extra: dict[str, Any] = facts.identity()
        if finding.is_alert and as_flag(self.trigger_retraining, "trigger_retraining"):
            asset = drift_asset(self.pipeline)
            event = {"reason": finding.message, "pipeline": self.pipeline, "check": "staleness", **facts.identity()}
            context["outlet_events"][drift_alias(self.pipeline)].add(asset, extra=event)
            extra["asset_event"] = {"uri": asset.uri, "extra": event}
        return self.conclude(context, finding, **extra)


class CheckNumericalStabilityOperator(MonitoringOperator):
    """Fail the batch when predictions, features or a training run's losses hold NaN or infinity.

    :param predictions_uri: a Parquet file of predictions (``ScoreBatchOperator``'s ``output_uri``). (templated)
    :param features_uri: a Parquet file with feature columns (the serving log sample, or the input). (templated)
    :param allow_missing_features: feature columns where NaN is a legitimate missing value ("*" for
        all numeric features; infinity is never allowed). (templated)
    :param training_run_id: an MLflow training run whose metrics (losses) must be finite. (templated)
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = (
        "predictions_uri", "features_uri", "allow_missing_features", "training_run_id", "storage_root",
        "mlflow_conn_id", "aws_conn_id"
    )  # fmt: skip

    def __init__(
        self,
        *,
        predictions_uri: str | None = None,
        features_uri: str | None = None,
        allow_missing_features: Sequence[str] | str = "*",
        training_run_id: str | None = None,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.predictions_uri = predictions_uri
        self.features_uri = features_uri
        self.allow_missing_features = allow_missing_features
        self.training_run_id = training_run_id
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import contracts
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.monitoring_registry import read_columns
        from airflow_mlops.hooks.storage import StorageHook

        if not (self.predictions_uri or self.features_uri or self.training_run_id):
            raise SpecError(
                "Give 'predictions_uri', 'features_uri' and/or 'training_run_id': there is nothing to check."
            )
        root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
        findings = []
        if self.predictions_uri:
            outputs = read_columns(
                root,
                self.predictions_uri,
                lambda name: (
                    name == contracts.PREDICTION_COLUMN or name.startswith(contracts.PROBABILITY_COLUMN_PREFIX)
                ),
            )
            if not outputs:
                raise SpecError(f"{self.predictions_uri!r} has no numeric prediction or probability column.")
            findings.append(m.check_finite(outputs, what="predictions", rows=len(next(iter(outputs.values())))))
        if self.features_uri:
            columns = read_columns(root, self.features_uri)
            allowed = self.allow_missing_features
            names = [c.strip() for c in allowed.split(",")] if isinstance(allowed, str) else list(allowed)
            allow = set(columns) if "*" in names else set(names)
            findings.append(m.check_finite(columns, what="features", allow_nan=allow))
        if self.training_run_id:
            run = _client(self.mlflow_conn_id).get_run(self.training_run_id)
            task = run.data.params.get("task", "binary")
            findings.append(
                m.check_metrics_finite(
                    run.data.metrics, m.loss_metrics(task), what=f"training run {self.training_run_id}"
                )
            )
        worst = max(findings, key=lambda f: m.SEVERITIES.index(f.severity))
        combined = m.Finding(
            "numerical_stability",
            worst.severity,
            " ".join(f.message for f in findings),
            {"checks": [f.details for f in findings]},
        )
        return self.conclude(context, combined)


class CheckPerformanceOperator(MonitoringOperator):
    """Record a run's computational performance (scoring throughput, training seconds) as an MLflow
    time series and alert when it drops beyond ``max_drop`` against the trailing median.

    :param pipeline: pipeline name: the series lives in the ``<pipeline>-monitoring`` experiment. (templated)
    :param metric: series name, e.g. ``scoring_throughput_rows_per_s`` or ``training_seconds``. (templated)
    :param receipt: the receipt holding the value (a scoring or training receipt from XCom). (templated)
    :param value_path: dotted path of the value in ``receipt`` (a dict of numbers is summed). (templated)
    :param higher_is_better: True for throughput, False for durations. (templated)
    :param max_drop: relative drop that alerts (0.5: half the median throughput, or 1.5x its time). (templated)
    :param window: how many earlier runs make the median (10). (templated)
    :param mlflow_conn_id: MLflow connection. (templated)

    Notifies on a drop; fails the task only with ``fail_on="alert"`` (``never`` by default: a slow run
    still produced correct output).
    """

    template_fields: Sequence[str] = (
        "pipeline", "metric", "receipt", "value_path", "higher_is_better", "max_drop", "window", "mlflow_conn_id",
    )  # fmt: skip
    default_fail_on = "never"

    def __init__(
        self,
        *,
        pipeline: str,
        metric: str,
        receipt: dict[str, Any] | str,
        value_path: str,
        higher_is_better: bool | str = True,
        max_drop: float | str = 0.5,
        window: int | str = 10,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.metric = metric
        self.receipt = receipt
        self.value_path = value_path
        self.higher_is_better = higher_is_better
        self.max_drop = max_drop
        self.window = window
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        import json

        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core import monitoring_registry as reg
        from airflow_mlops.core.scoring import as_flag
        from airflow_mlops.hooks.mlflow import MlflowHook

        receipt = json.loads(self.receipt) if isinstance(self.receipt, str) else dict(self.receipt)
        value = reg.receipt_value(receipt, self.value_path)
        hook = MlflowHook(self.mlflow_conn_id)
        client = hook.get_conn()
        run_id = reg.performance_run(client, hook.ensure_experiment(f"{self.pipeline}-monitoring"), self.pipeline)
        step = reg.step_of(batch_time(context))
        history = reg.record_metric(client, run_id, self.metric, value, step)
        finding = m.check_performance(
            history,
            value,
            metric=self.metric,
            higher_is_better=as_flag(self.higher_is_better, "higher_is_better"),
            max_drop=m.parse_number(self.max_drop, "max_drop"),
            window=int(m.parse_number(self.window, "window", low=1, integer=True)),
        )
        return self.conclude(context, finding, mlflow_run_id=run_id, step=step)


class CheckModelDependenciesOperator(MonitoringOperator):
    """Warn when the packages a model version was trained with differ from this environment's.

    :param model_name: registered model name. (templated)
    :param alias: alias checked, ``champion`` by default. (templated)
    :param model_version: a pinned version, which wins over ``alias``. (templated)
    :param packages: the packages compared (all recorded ones when omitted); serving through ONNX needs
        ``onnxruntime`` and ``airflow_mlops`` to match most. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = ("model_name", "alias", "model_version", "packages", "mlflow_conn_id")
    default_fail_on = "never"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        model_version: str | None = None,
        packages: Sequence[str] | str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.model_version = model_version
        self.packages = packages
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.errors import ArtifactError
        from airflow_mlops.core.monitoring_registry import model_version_facts

        facts = model_version_facts(
            _client(self.mlflow_conn_id), self.model_name, alias=self.alias, version=self.model_version
        )
        recorded = facts.spec.get("trained_with")
        if not isinstance(recorded, dict) or not recorded:
            raise ArtifactError(
                f"Model {self.model_name!r} v{facts.version} records no package versions (trained_with)."
            )
        packages = [p.strip() for p in self.packages.split(",")] if isinstance(self.packages, str) else self.packages
        names = list(packages) if packages else list(recorded)
        # Recorded under the import name for the package itself; its distribution is airflow-mlops.
        current = m.installed_versions([n.replace("airflow_mlops", "airflow-mlops") for n in names])
        current = {n: current[n.replace("airflow_mlops", "airflow-mlops")] for n in names}
        finding = m.check_dependencies(recorded, current, packages=names)
        return self.conclude(context, finding, **facts.identity())


class CheckSourceSchemaOperator(MonitoringOperator):
    """Notify when a new snapshot's columns or types differ from the champion's training snapshot.

    :param model_name: registered model name. (templated)
    :param snapshot_uri: the new snapshot (the ingestion receipt's ``uri``). (templated)
    :param alias: alias compared with, ``champion`` by default. (templated)
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)

    A removed or retyped model feature is an alert and fails the task (``fail_on="alert"``); other
    changes notify. Before the first promotion (no ``alias`` yet) the finding is ``ok``: nothing to compare.
    """

    template_fields: Sequence[str] = (
        "model_name", "snapshot_uri", "alias", "storage_root", "mlflow_conn_id", "aws_conn_id"
    )  # fmt: skip

    def __init__(
        self,
        *,
        model_name: str,
        snapshot_uri: str,
        alias: str = "champion",
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.snapshot_uri = snapshot_uri
        self.alias = alias
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core import registry
        from airflow_mlops.core.errors import SourceNotFoundError
        from airflow_mlops.core.monitoring_registry import model_version_facts, parquet_schema
        from airflow_mlops.hooks.storage import StorageHook

        root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
        client = _client(self.mlflow_conn_id)
        if registry.alias_version(client, self.model_name, self.alias) is None:
            # The first training of a model: there is no earlier schema to compare with.
            first = m.Finding(
                "source_schema", "ok", f"{self.model_name!r} has no {self.alias!r} yet: nothing to compare."
            )
            return self.conclude(context, first, snapshot_uri=self.snapshot_uri)
        facts = model_version_facts(client, self.model_name, alias=self.alias)
        if not facts.dataset_uri:
            raise SourceNotFoundError(f"Model {self.model_name!r} v{facts.version} records no training snapshot.")
        before = parquet_schema(root, facts.dataset_uri)
        after = parquet_schema(root, self.snapshot_uri)
        finding = m.check_schema_change(before, after, features=facts.features)
        return self.conclude(
            context, finding, **facts.identity(), training_snapshot=facts.dataset_uri, snapshot_uri=self.snapshot_uri
        )


class CheckFeatureImportanceOperator(MonitoringOperator):
    """Warn when a feature of a training run carries under ``min_share`` of the model's importance.

    Reads the run's ``importance/feature_importance.json`` (written by training).

    :param run_id: the training run (``TrainModelOperator``'s ``run_id``). (templated)
    :param min_share: smallest share of the total importance a feature must carry, 0.01. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = ("run_id", "min_share", "mlflow_conn_id")
    default_fail_on = "never"

    def __init__(
        self, *, run_id: str, min_share: float | str = 0.01, mlflow_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.min_share = min_share
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        import json

        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.gating_models import download_run_artifact

        content = download_run_artifact(_client(self.mlflow_conn_id), self.run_id, IMPORTANCE_ARTIFACT)
        finding = m.check_feature_importance(
            json.loads(content), min_share=m.parse_fraction(self.min_share, "min_share", default=0.01)
        )
        return self.conclude(context, finding, run_id=self.run_id)


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
        from airflow_mlops.core import monitoring_registry as reg
        from airflow_mlops.core.training_spec import METRIC_DIRECTIONS
        from airflow_mlops.hooks.storage import StorageHook

        client = _client(self.mlflow_conn_id)
        facts = reg.model_version_facts(client, self.model_name, alias=self.alias)
        data_at = m.parse_timestamp(self.data_timestamp, "data_timestamp")
        if data_at is None and facts.dataset_uri:
            root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
            data_at = m.parse_timestamp(reg.snapshot_watermark(root, facts.dataset_uri), "source_watermark")
        data_at = data_at or facts.created_at
        task = str(facts.spec.get("task", "binary"))
        metric = self.metric or str(facts.spec.get("primary_metric") or "roc_auc")
        finding = m.staleness_impact(
            reg.quality_by_age(client, facts, metric, data_at),
            metric=metric,
            higher_is_better=bool(METRIC_DIRECTIONS[task].get(metric, True)),
            max_loss_per_30_days=m.parse_number(self.max_loss_per_30_days, "max_loss_per_30_days"),
        )
        return self.conclude(context, finding, **facts.identity(), data_at=data_at.isoformat())


class CheckPersonalDataOperator(MonitoringOperator):
    """Fail when a snapshot's text columns look like personal data (see ``check_personal_data``).

    :param snapshot_uri: the snapshot (the ingestion receipt's ``uri``). (templated)
    :param allow_columns: columns reviewed and allowed (a list or a comma-separated string). (templated)
    :param sample_rows: rows inspected (the first ones), 10000. (templated)
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = ("snapshot_uri", "allow_columns", "sample_rows", "storage_root", "aws_conn_id")

    def __init__(
        self,
        *,
        snapshot_uri: str,
        allow_columns: Sequence[str] | str = (),
        sample_rows: int | str = 10_000,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot_uri = snapshot_uri
        self.allow_columns = allow_columns
        self.sample_rows = sample_rows
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.monitoring_registry import read_text_columns
        from airflow_mlops.hooks.storage import StorageHook

        root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
        rows = int(m.parse_number(self.sample_rows, "sample_rows", low=1, integer=True))
        allowed = self.allow_columns
        allow = [c.strip() for c in allowed.split(",") if c.strip()] if isinstance(allowed, str) else list(allowed)
        finding = m.check_personal_data(read_text_columns(root, self.snapshot_uri, rows), allow=allow)
        return self.conclude(context, finding, snapshot_uri=self.snapshot_uri)
