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
    :param mlflow_conn_id: MLflow connection. (templated)

    A finding notifies but does not fail the task unless ``fail_on`` says so (``never`` by default).
    """

    template_fields: Sequence[str] = (
        "model_name", "business_metric", "alias", "metric", "min_batches", "min_correlation", "min_models", "window",
        "mlflow_conn_id",
    )  # fmt: skip
    template_fields_renderers = {"business_metric": "json"}
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
        mlflow_conn_id: str | None = None,
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
        self.mlflow_conn_id = mlflow_conn_id

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
        finding = business.proxy_correlation(
            reg.labelled_batches(client, self.model_name, metric, cost),
            metric=metric,
            higher_is_better=higher_is_better,
            business=cost.name,
            check=check,
        )
        return self.conclude(context, finding, **facts.identity(), business_metric=cost.describe())
