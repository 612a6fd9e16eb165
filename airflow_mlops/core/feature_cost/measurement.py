"""What each feature costs the served model, measured on its exported ONNX graph and a sample of rows,
and whether that cost is paid for by the feature's importance.

No retraining: the costs come from the artifacts one training run already logged.

- **Model size.** The tree-ensemble nodes that split on the feature (its share of the ensemble), and
  the bytes of the graph attributed to it: the nodes that read only that input (a one-hot encoder and
  its vocabulary) plus its share of the shared nodes (the ensemble by split share, concatenations and
  casts by the share of matrix columns the feature fills). A model without a tree ensemble is split by
  columns (one coefficient per column for a linear model).
- **Serving time.** Milliseconds per 1,000 rows, measured the way scoring does it on the sample read
  as ``score_partition`` reads a batch (strings as dictionaries): coercing the column into the ONNX
  feed (:func:`~airflow_mlops.core.onnx_model.feed_arrow`), and running the graph, whose per-node times
  come from ONNX Runtime's profiler and are attributed like the bytes. Each timing is the fastest of
  ``repeats`` rounds, the features interleaved: on a shared machine the fastest round is the one least
  disturbed by other work. Decoding the column from Parquet is not timed: scoring reads all columns in
  one call, and a per-column read would time mostly the file's footer.
- **Computation upstream** (:mod:`.upstream`, when the run's snapshot and dimensions are at hand): the
  time the version's feature transforms spend producing the feature, in the same milliseconds per 1,000
  rows, so that a row's whole scoring cost is its transforms plus its coercion plus the graph.
- **Missing rate** of the sample: reported; a joined feature's unmatched share and its dimension's lag
  are judged by the verdict against their own limits.

A feature's cost share is the mean of its model-size share and its share of the time per row (serving
plus computation upstream); it is compared with its share of the model's importance (the gain share
training logs). Static split counts weigh a split deep in a tree like one at the root, so the ensemble's
time is attributed by what the model holds, not by how often each node is visited.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from airflow_mlops.core.errors import ArtifactError, DataError, SpecError
from airflow_mlops.core.feature_cost.graph import _attribute, _shares
from airflow_mlops.core.feature_cost.timing import _coercion_seconds, _profile, _sample_table
from airflow_mlops.core.feature_cost.upstream import UpstreamCost
from airflow_mlops.core.onnx_model import OnnxInput

# Rows the graph is profiled on. Its time is linear in rows well before this, and a large ensemble
# takes ~0.15 ms per row (1,000 trees of 63 leaves): more rows would make the check cost seconds.
GRAPH_ROWS = 2_000


@dataclass(frozen=True)
class FeatureCost:
    """The measured cost of one feature (see the module docstring)."""

    feature: str
    columns: int  # columns of the matrix the estimator reads (one-hot columns of a categorical)
    split_nodes: int  # tree-ensemble nodes splitting on it (0 for other estimators)
    model_bytes: float  # bytes of the ONNX graph attributed to it
    coerce_ms_per_1k: float
    graph_ms_per_1k: float
    missing_rate: float

    @property
    def serving_ms_per_1k(self) -> float:
        return self.coerce_ms_per_1k + self.graph_ms_per_1k


@dataclass(frozen=True)
class CostMeasurement:
    """Per-feature costs of one model on one sample, and the totals the shares are taken of."""

    features: dict[str, FeatureCost]
    model_bytes: int
    rows: int
    repeats: int
    seconds: float
    upstream: UpstreamCost | None = None  # the transforms' computation and the dimensions' freshness

    def compute_ms_per_1k(self, feature: str) -> float:
        return self.upstream.compute_ms_per_1k.get(feature, 0.0) if self.upstream else 0.0

    def table(self, importance: Mapping[str, float]) -> list[dict[str, Any]]:
        """One row per feature: its costs, its shares and its importance share, costliest first."""
        size = _shares({n: c.model_bytes for n, c in self.features.items()})
        per_row = _shares({n: c.serving_ms_per_1k + self.compute_ms_per_1k(n) for n, c in self.features.items()})
        joined = {f: d for d in (self.upstream.dimensions.values() if self.upstream else ()) for f in d.features}
        rows = []
        for name, cost in self.features.items():
            row = {k: _round(v) for k, v in asdict(cost).items()}
            cost_share = (size[name] + per_row[name]) / 2.0
            share = float(importance.get(name, 0.0))
            dimension = joined.get(name)
            row.update(
                serving_ms_per_1k=_round(cost.serving_ms_per_1k),
                compute_ms_per_1k=_round(self.compute_ms_per_1k(name)),
                model_bytes_share=_round(size[name]),
                time_share=_round(per_row[name]),
                dimension=dimension.join if dimension else None,
                dimension_lag_hours=dimension.lag_hours if dimension else None,
                unmatched_share=dimension.unmatched_share if dimension else None,
                cost_share=_round(cost_share),
                importance_share=_round(share),
                cost_to_importance=_round(cost_share / share) if share > 0 else None,
            )
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["cost_share"], r["feature"]))


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def measure_feature_cost(
    model_bytes: bytes, inputs: Sequence[OnnxInput], sample: bytes, *, rows: int = 10_000, repeats: int = 5
) -> CostMeasurement:
    """Measure what each input of an ONNX model costs (see the module docstring).

    :param model_bytes: the exported ONNX graph, following the contract of :mod:`~airflow_mlops.core.contracts`.
    :param inputs: its inputs (the training spec's ``onnx_inputs``).
    :param sample: a Parquet file holding the feature columns (the run's reference sample).
    :param rows: rows whose coercion is timed (the sample is repeated up to this many); the graph is
        profiled on the first :data:`GRAPH_ROWS` of them.
    :param repeats: timing rounds; the fastest is kept.
    :raises DataError: the sample lacks a feature or has no rows, or is not Parquet.
    :raises ArtifactError: the graph cannot be loaded, or its columns cannot be traced to its inputs.
    """
    import onnx
    import pyarrow as pa

    from airflow_mlops.core.onnx_model import feed_arrow

    if repeats < 1 or rows < 1:
        raise SpecError(f"'rows' and 'repeats' must be integers >= 1. Got {rows!r} and {repeats!r} instead.")
    started = time.perf_counter()
    try:
        model = onnx.load_from_string(model_bytes)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ArtifactError(f"The ONNX model cannot be parsed: {exc}") from exc
    try:
        table = _sample_table(sample, inputs, rows)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"The sample is not a readable Parquet file holding the model's features: {exc}") from exc
    if table.num_rows == 0:
        raise DataError("The sample has no rows: there is nothing to time the features on.")
    coerce = _coercion_seconds(table, inputs, repeats)
    graph_rows = min(table.num_rows, GRAPH_ROWS)
    node_seconds = _profile(model_bytes, feed_arrow(table.slice(0, graph_rows), inputs), repeats)
    splits, size, graph_seconds, matrix_columns = _attribute(model.graph, inputs, node_seconds)
    per_1k = 1e6 / table.num_rows  # seconds for the table's rows -> milliseconds per 1,000 rows
    graph_per_1k = 1e6 / graph_rows
    result = {
        f.name: FeatureCost(
            feature=f.name,
            columns=matrix_columns.count(f.name) if matrix_columns else 1,
            split_nodes=splits[f.name],
            model_bytes=size[f.name],
            coerce_ms_per_1k=coerce[f.name] * per_1k,
            graph_ms_per_1k=graph_seconds[f.name] * graph_per_1k,
            missing_rate=table.column(f.column).null_count / table.num_rows,
        )
        for f in inputs
    }
    return CostMeasurement(result, len(model_bytes), table.num_rows, repeats, time.perf_counter() - started)
