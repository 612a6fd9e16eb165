"""Business-impact operators: does the offline proxy metric still track what the model costs the business?"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.monitoring import MonitoringOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckProxyCorrelationOperator(MonitoringOperator):
    """Alert when the proxy metric (ROC AUC, RMSE) stops tracking the business metric across the
    labelled batches that every version of the model has served.

    The drift checks log, for each labelled batch, the served ``quality.<metric>`` and the
    ``business.<name>`` cost on the serving version's monitoring run; training logs the version's
    ``test_<metric>``. This check ranks those batches (the last ``window``) and computes two Spearman
    correlations, proxy oriented so that higher is better, cost negated: the served proxy against the
    batch's cost, and the serving version's training-time proxy against the batch's cost (judged once
    ``min_models`` versions have served). A judged correlation below ``min_correlation`` alerts: a
    better proxy no longer means a cheaper model, so gating and monitoring on the proxy alone misleads.

    :param model_name: registered model name. (templated)
    :param business_metric: the pipeline's business metric
        (:class:`~airflow_mlops.core.pipeline.business.BusinessMetric` mapping, as the pipeline file
        declares it). (templated)
    :param alias: the alias whose training spec gives the task and primary metric, ``champion``. (templated)
    :param metric: proxy metric, the training spec's primary metric by default. (templated)
    :param min_batches: labelled batches needed before judging, 5. (templated)
    :param min_correlation: the weakest correlation accepted, 0.3. (templated)
    :param min_models: served versions needed before the training-time proxy is judged, 3. (templated)
    :param window: the last labelled batches that count, 24. (templated)
    :param outcome: a business outcome measured after serving
        (:class:`~airflow_mlops.core.pipeline.outcome.Outcome` mapping, the pipeline file's
        ``business.outcome``): when given, the check measures it on ``batches`` and runs on it instead of
        the business metric's cost table. (templated)
    :param batches: the scoring receipts of this run's partitions, whose served output the outcome is
        measured on (logged as ``outcome.<name>`` on the serving version's monitoring run at the batch's
        time, beside the quality the drift check logged). (templated)
    :param storage_root: storage root of the served outputs and the outcome source. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)

    A finding notifies but does not fail the task unless ``fail_on`` says so (``never`` by default).
    """

    template_fields: Sequence[str] = (
        "model_name", "business_metric", "alias", "metric", "min_batches", "min_correlation", "min_models", "window",
        "outcome", "batches", "storage_root", "mlflow_conn_id", "aws_conn_id",
    )  # fmt: skip
    template_fields_renderers = {"business_metric": "json", "outcome": "json"}
    default_fail_on = "never"

    def __init__(
        self,
        *,
        model_name: str,
        business_metric: Mapping[str, Any],
        alias: str = "champion",
        metric: str | None = None,
        min_batches: int | str | None = None,
        min_correlation: float | str | None = None,
        min_models: int | str | None = None,
        window: int | str | None = None,
        outcome: Mapping[str, Any] | None = None,
        batches: Sequence[Mapping[str, Any]] | None = None,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.business_metric = business_metric
        self.alias = alias
        self.metric = metric
        self.min_batches = min_batches
        self.min_correlation = min_correlation
        self.min_models = min_models
        self.window = window
        self.outcome = outcome
        self.batches = batches
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import monitoring as reg
        from airflow_mlops.core.pipeline import business

        client = self.mlflow_client
        facts = reg.model_version_facts(client, self.model_name, alias=self.alias)
        task, metric, higher_is_better = facts.proxy_metric(self.metric)
        cost = business.BusinessMetric.from_mapping(self.business_metric, task)
        settings = {"min_batches": self.min_batches, "min_correlation": self.min_correlation,
                    "min_models": self.min_models, "window": self.window}  # fmt: skip
        check = business.ProxyCheck.from_mapping({k: v for k, v in settings.items() if v not in (None, "")})
        series, name, described, extra = cost.series_key, cost.name, cost.describe(), {}
        if self.outcome:
            measured = self._measure_outcome(context, cost)
            series, name, described = measured["series_key"], measured["name"], measured["description"]
            extra = {"outcome": measured}
        finding = business.proxy_correlation(
            reg.labelled_batches(client, self.model_name, metric, series),
            metric=metric,
            higher_is_better=higher_is_better,
            business=name,
            check=check,
            business_higher_is_better=bool(self.outcome),
        )
        return self.conclude(context, finding, **facts.identity(), business_metric=described, **extra)

    def _measure_outcome(self, context: Context, cost: Any) -> dict[str, Any]:
        """Measure the outcome on this run's served batches and log it per serving version, at the batch's
        time on that version's monitoring run (where the drift check logs the batch's quality)."""
        from airflow_mlops.core import monitoring as reg
        from airflow_mlops.core.monitoring.outcomes import measure_outcomes
        from airflow_mlops.core.pipeline.outcome import Outcome
        from airflow_mlops.operators.base import batch_time, input_failures

        outcome = Outcome.from_mapping(self.outcome, cost)
        client, when = self.mlflow_client, batch_time(context)
        receipts = [] if self.batches in (None, "") else list(self.batches or [])
        with input_failures():  # a missing column or a doubled key fails the same way on every try
            measured = measure_outcomes(self.storage, receipts, outcome)
        for version, value in measured.items():
            if value["value"] is None:
                continue
            served = reg.model_version_facts(client, self.model_name, version=version)
            run_id = reg.monitoring_run(client, served.experiment_id, f"{self.model_name}/v{version}", "drift")
            reg.record_metric(client, run_id, outcome.series_key, value["value"], int(when.timestamp()))
        return {
            "name": outcome.name, "series_key": outcome.series_key, "description": outcome.describe(),
            "measured": measured,
        }  # fmt: skip
