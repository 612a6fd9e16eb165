"""Feature cost: what each feature costs the served model (tree nodes and ONNX bytes attributed to it,
milliseconds per 1,000 rows to coerce and run it) and upstream (milliseconds to compute it through the
feature transforms, the freshness of the dimension it is joined from), measured on a training run's own
ONNX graph, reference sample and snapshot without retraining, and whether its importance pays for it.
Public API:
``measure_feature_cost``, ``FeatureCost``, ``CostMeasurement``, ``GRAPH_ROWS``, ``CostPolicy``,
``check_feature_cost``, ``CHECK``, ``measure_run``, ``log_cost_table``, ``ARTIFACT_FEATURE_COST``,
``measure_upstream``, ``UpstreamCost``, ``DimensionFreshness`` (modules: ``measurement`` measures the
costs, using ``graph`` to attribute the graph's nodes to its inputs and ``timing`` to time them;
``upstream`` times the feature transforms and judges the freshness of the joined dimensions; ``verdict``
holds the rule; ``run`` reads a training run's artifacts and logs the table back on it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.feature_cost.measurement import (
        GRAPH_ROWS,
        CostMeasurement,
        FeatureCost,
        measure_feature_cost,
    )
    from airflow_mlops.core.feature_cost.run import ARTIFACT_FEATURE_COST, log_cost_table, measure_run
    from airflow_mlops.core.feature_cost.upstream import DimensionFreshness, UpstreamCost, measure_upstream
    from airflow_mlops.core.feature_cost.verdict import CHECK, CostPolicy, check_feature_cost

__all__ = [
    "ARTIFACT_FEATURE_COST",
    "CHECK",
    "GRAPH_ROWS",
    "CostMeasurement",
    "CostPolicy",
    "DimensionFreshness",
    "FeatureCost",
    "UpstreamCost",
    "check_feature_cost",
    "log_cost_table",
    "measure_feature_cost",
    "measure_run",
    "measure_upstream",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ARTIFACT_FEATURE_COST": "run",
        "CHECK": "verdict",
        "GRAPH_ROWS": "measurement",
        "CostMeasurement": "measurement",
        "CostPolicy": "verdict",
        "DimensionFreshness": "upstream",
        "UpstreamCost": "upstream",
        "measure_upstream": "upstream",
        "FeatureCost": "measurement",
        "check_feature_cost": "verdict",
        "log_cost_table": "run",
        "measure_feature_cost": "measurement",
        "measure_run": "run",
    },
)
