"""Monitoring operators: the shared base (notify, fail), numerical stability, computational performance.

The other monitoring operators build on :class:`MonitoringOperator`: staleness and its impact in
:mod:`~airflow_mlops.operators.monitoring_staleness`; dependencies, upstream schema, feature
importance and personal data in :mod:`~airflow_mlops.operators.monitoring_data`; training/serving
skew and reproducibility in :mod:`~airflow_mlops.operators.reproducibility`.

Each runs one check of :mod:`airflow_mlops.core.monitoring` and returns its finding
(``{"check", "severity", "message", "details"}``). A finding that is not ``ok`` is sent to every
notifier in ``notifiers`` (for instance :class:`~airflow_mlops.notifiers.webhook.WebhookNotifier`),
with the finding in the context under ``mlops_alert``. Where the check is blocking (``fail_on``), the
finding is pushed to XCom first and the task then fails without retry.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import MlopsBaseOperator, batch_time

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context

ALERT_CONTEXT_KEY = "mlops_alert"  # the same key as airflow_mlops.notifiers.webhook.ALERT_CONTEXT_KEY


class MonitoringOperator(MlopsBaseOperator):
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

        fail_on = self.fail_on or self.default_fail_on
        if fail_on not in ("alert", "warn", "never"):
            raise SpecError(f"'fail_on' must be 'alert', 'warn' or 'never'. Got {fail_on!r} instead.")
        receipt = {**finding.to_dict(), **extra}
        self.log.info("%s check: %s: %s", finding.check, finding.severity, finding.message)
        if finding.needs_notification:
            for notifier in self.notifiers:
                try:
                    # A copy: the notifier renders its templates against it and must not leak into the task's.
                    notifier({**context, ALERT_CONTEXT_KEY: receipt})  # type: ignore[arg-type]
                except Exception:  # a broken alert channel must not hide or replace the verdict
                    self.log.exception("Notifier %s failed for the %s finding", type(notifier).__name__, finding.check)
        blocking = fail_on != "never" and (finding.is_alert or (fail_on == "warn" and finding.needs_notification))
        if blocking:
            context["ti"].xcom_push(key="return_value", value=receipt)
            raise MlopsVerdictFailure(finding.message)
        return receipt


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
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.errors import SpecError

        if not (self.predictions_uri or self.features_uri or self.training_run_id):
            raise SpecError(
                "Give 'predictions_uri', 'features_uri' and/or 'training_run_id': there is nothing to check."
            )
        findings = []
        if self.predictions_uri:
            findings.append(self._check_predictions())
        if self.features_uri:
            findings.append(self._check_features())
        if self.training_run_id:
            run = self.mlflow_client.get_run(self.training_run_id)
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

    def _check_predictions(self) -> Any:
        from airflow_mlops.core import contracts
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.monitoring.facts import read_columns

        outputs = read_columns(
            self.storage,
            str(self.predictions_uri),
            lambda name: name == contracts.PREDICTION_COLUMN or name.startswith(contracts.PROBABILITY_COLUMN_PREFIX),
        )
        if not outputs:
            raise SpecError(f"{self.predictions_uri!r} has no numeric prediction or probability column.")
        return m.check_finite(outputs, what="predictions", rows=len(next(iter(outputs.values()))))

    def _check_features(self) -> Any:
        from airflow_mlops.core import monitoring as m
        from airflow_mlops.core.monitoring.facts import read_columns

        columns = read_columns(self.storage, str(self.features_uri))
        allowed = self.allow_missing_features
        names = [c.strip() for c in allowed.split(",")] if isinstance(allowed, str) else list(allowed)
        allow = set(columns) if "*" in names else set(names)
        return m.check_finite(columns, what="features", allow_nan=allow)


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
        from airflow_mlops.core import monitoring as reg
        from airflow_mlops.core.params import parse_flag, parse_number

        receipt = json.loads(self.receipt) if isinstance(self.receipt, str) else dict(self.receipt)
        value = reg.receipt_value(receipt, self.value_path)
        client = self.mlflow_client
        experiment = self.mlflow_hook.ensure_experiment(f"{self.pipeline}-monitoring")
        run_id = reg.performance_run(client, experiment, self.pipeline)
        step = reg.step_of(batch_time(context))
        history = reg.record_metric(client, run_id, self.metric, value, step)
        finding = m.check_performance(
            history,
            value,
            metric=self.metric,
            higher_is_better=parse_flag(self.higher_is_better, "The 'higher_is_better' argument"),
            max_drop=parse_number(self.max_drop, "max_drop"),
            window=int(parse_number(self.window, "window", low=1, integer=True)),
        )
        return self.conclude(context, finding, mlflow_run_id=run_id, step=step)
