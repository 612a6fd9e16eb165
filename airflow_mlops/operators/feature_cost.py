"""Feature cost: what each feature of a trained model costs to serve and to hold, against its importance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.monitoring import MonitoringOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckFeatureCostOperator(MonitoringOperator):
    """Warn when a feature of a training run costs more than it brings (see ``core/feature_cost/``).

    Measures each feature's share of the run's ONNX model (tree nodes splitting on it, bytes) and of the
    time per row: serving (coercion into the feed and graph nodes, per 1,000 rows of the run's reference
    sample) and computation upstream (the version's feature transforms on a sample of its training
    snapshot, bound to its pipeline's dimensions), compares it with the importance share training logged,
    judges the freshness of every joined dimension, logs the table on the run
    (``feature_cost/feature_cost.json`` and ``feature_cost.*`` metrics), and warns about features whose
    cost share is over ``max_cost_ratio`` times their importance share, over a budget, or whose dimension
    is stale or leaves too many rows unmatched.

    :param run_id: the training run (``TrainModelOperator``'s ``run_id``). (templated)
    :param max_cost_ratio: largest cost share a feature may have per unit of importance share, 3. (templated)
    :param min_cost_share: cost share below which a feature is not worth a warning, 0.02. (templated)
    :param max_serving_ms_per_1k: serving-time budget per feature, in ms per 1,000 rows. (templated)
    :param max_model_bytes: budget of ONNX bytes per feature. (templated)
    :param max_dimension_lag: how far a joined dimension's newest row may end before the newest row
        joined to it ("36h", "2d"); the join's as-of tolerance by default. (templated)
    :param max_unmatched_share: share of rows a join may leave without a match, 0.1. (templated)
    :param rows: rows timed (the reference sample repeated up to this many), 10000. (templated)
    :param repeats: timing rounds, the fastest kept, 5. (templated)
    :param log_to_run: log the table on the training run, True. (templated)
    :param storage_root: storage root holding the run's snapshot and its pipeline's dimensions;
        ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = (
        "run_id", "max_cost_ratio", "min_cost_share", "max_serving_ms_per_1k", "max_model_bytes", "max_dimension_lag",
        "max_unmatched_share", "rows", "repeats", "log_to_run", "storage_root", "mlflow_conn_id", "aws_conn_id",
    )  # fmt: skip
    default_fail_on = "never"

    def __init__(
        self,
        *,
        run_id: str,
        max_cost_ratio: float | str | None = None,
        min_cost_share: float | str | None = None,
        max_serving_ms_per_1k: float | str | None = None,
        max_model_bytes: float | str | None = None,
        max_dimension_lag: str | float | None = None,
        max_unmatched_share: float | str | None = None,
        rows: int | str = 10_000,
        repeats: int | str = 5,
        log_to_run: bool | str = True,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.max_cost_ratio = max_cost_ratio
        self.min_cost_share = min_cost_share
        self.max_serving_ms_per_1k = max_serving_ms_per_1k
        self.max_model_bytes = max_model_bytes
        self.max_dimension_lag = max_dimension_lag
        self.max_unmatched_share = max_unmatched_share
        self.rows = rows
        self.repeats = repeats
        self.log_to_run = log_to_run
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import feature_cost as fc
        from airflow_mlops.core.monitoring import run_feature_importance
        from airflow_mlops.core.params import parse_flag, parse_number
        from airflow_mlops.hooks.ingestion import sql_engine

        policy = fc.CostPolicy.from_mapping(
            {
                "max_cost_ratio": self.max_cost_ratio,
                "min_cost_share": self.min_cost_share,
                "max_serving_ms_per_1k": self.max_serving_ms_per_1k,
                "max_model_bytes": self.max_model_bytes,
                "max_dimension_lag": self.max_dimension_lag,
                "max_unmatched_share": self.max_unmatched_share,
            }
        )
        rows = int(parse_number(self.rows, "rows", low=1, integer=True))
        repeats = int(parse_number(self.repeats, "repeats", low=1, high=50, integer=True))
        log_to_run = parse_flag(self.log_to_run, "The 'log_to_run' argument")
        client = self.mlflow_client
        importance = run_feature_importance(client, self.run_id)
        measurement = fc.measure_run(
            client, self.run_id, rows=rows, repeats=repeats, root=self.storage, sql_engine=sql_engine
        )
        finding = fc.check_feature_cost(measurement, importance, policy)
        if log_to_run:
            fc.log_cost_table(client, self.run_id, finding)
        artifact = f"runs:/{self.run_id}/{fc.ARTIFACT_FEATURE_COST}" if log_to_run else None
        return self.conclude(context, finding, run_id=self.run_id, table_uri=artifact)
