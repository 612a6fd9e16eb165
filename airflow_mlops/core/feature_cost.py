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
- **Missing rate** of the sample: reported, not priced (a feature that is often missing is an upstream
  quality cost, not a serving one).

A feature's cost share is the mean of its model-size share and its serving-time share; it is compared
with its share of the model's importance (the gain share training logs). Static split counts weigh a
split deep in a tree like one at the root, so the ensemble's time is attributed by what the model holds,
not by how often each node is visited.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import ArtifactError, DataError, SpecError
from airflow_mlops.core.monitoring import Finding
from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.params import parse_number

if TYPE_CHECKING:
    import pyarrow as pa

CHECK = "feature_cost"
# Rows the graph is profiled on. Its time is linear in rows well before this, and a large ensemble
# takes ~0.15 ms per row (1,000 trees of 63 leaves): more rows would make the check cost seconds.
GRAPH_ROWS = 2_000
ARTIFACT_FEATURE_COST = "feature_cost/feature_cost.json"  # logged on the training run by the operator
_TREE_ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
# Ops whose output has the columns of their first input, in the same order.
_SAME_COLUMNS = (
    "Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Imputer", "Scaler", "Normalizer",
    "Binarizer", "Abs", "Neg", "Sqrt", "Log", "Exp", "Clip", "Add", "Sub", "Mul", "Div",
)  # fmt: skip


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

    def table(self, importance: Mapping[str, float]) -> list[dict[str, Any]]:
        """One row per feature: its costs, its shares and its importance share, costliest first."""
        size = _shares({n: c.model_bytes for n, c in self.features.items()})
        serving = _shares({n: c.serving_ms_per_1k for n, c in self.features.items()})
        rows = []
        for name, cost in self.features.items():
            row = {k: _round(v) for k, v in asdict(cost).items()}
            cost_share = (size[name] + serving[name]) / 2.0
            share = float(importance.get(name, 0.0))
            row.update(
                serving_ms_per_1k=_round(cost.serving_ms_per_1k),
                model_bytes_share=_round(size[name]),
                serving_share=_round(serving[name]),
                cost_share=_round(cost_share),
                importance_share=_round(share),
                cost_to_importance=_round(cost_share / share) if share > 0 else None,
            )
            rows.append(row)
        return sorted(rows, key=lambda r: (-r["cost_share"], r["feature"]))


def _round(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def _shares(values: Mapping[str, float]) -> dict[str, float]:
    total = sum(values.values())
    return {k: (v / total if total > 0 else 0.0) for k, v in values.items()}


# -- which input feeds which column of the estimator's matrix --------------------------------------------
def _columns_of(graph: Any, inputs: Sequence[OnnxInput]) -> dict[str, list[str] | None]:
    """For every tensor of the graph, the input feature behind each of its columns (None: unknown)."""
    from onnx import helper

    columns: dict[str, list[str] | None] = {i.name: [i.name] for i in inputs}
    for node in graph.node:
        known = [columns.get(name) for name in node.input if name]
        result: list[str] | None = None
        if node.op_type == "OneHotEncoder" and known and known[0] is not None and len(known[0]) == 1:
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            width = len(attrs.get("cats_strings") or attrs.get("cats_int64s") or [])
            result = known[0] * width
        elif node.op_type == "Concat" and known and all(k is not None for k in known):
            result = [name for k in known for name in (k or [])]
        elif node.op_type in _SAME_COLUMNS and known and known[0] is not None:
            result = list(known[0])
        for output in node.output:
            columns[output] = result
    return columns


def _owners(graph: Any, inputs: Sequence[OnnxInput]) -> list[frozenset[str]]:
    """For every node, in graph order, the graph inputs it depends on."""
    depends: dict[str, frozenset[str]] = {i.name: frozenset([i.name]) for i in inputs}
    owners: list[frozenset[str]] = []
    for node in graph.node:
        found = frozenset().union(*(depends.get(name, frozenset()) for name in node.input if name))
        owners.append(found)
        for output in node.output:
            depends[output] = found
    return owners


def _split_counts(node: Any, columns: list[str]) -> dict[str, int]:
    """Branch nodes of a tree ensemble per input feature."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    modes = [m.decode() if isinstance(m, bytes) else str(m) for m in attrs.get("nodes_modes", [])]
    counts = dict.fromkeys(dict.fromkeys(columns), 0)
    for mode, feature_id in zip(modes, attrs.get("nodes_featureids", []), strict=True):
        if mode != "LEAF":
            if not 0 <= feature_id < len(columns):
                raise ArtifactError(
                    f"Tree node splits on column {feature_id}, but the ensemble's input has {len(columns)} columns."
                )
            counts[columns[feature_id]] += 1
    return counts


def _by_columns(columns: list[str] | None, features: Sequence[str]) -> dict[str, float]:
    if not columns:
        return dict.fromkeys(features, 1.0 / len(features))
    return {f: columns.count(f) / len(columns) for f in features}


def _attribute(
    graph: Any, inputs: Sequence[OnnxInput], node_seconds: Mapping[str, float]
) -> tuple[dict[str, int], dict[str, float], dict[str, float], list[str] | None]:
    """Split counts, bytes and graph seconds per feature, and the columns of the estimator's matrix.

    A node that reads one input belongs to it; a tree ensemble is shared by split count; any other
    shared node (concatenations, casts, a linear model) by the columns each feature fills.
    """
    features = [i.name for i in inputs]
    columns = _columns_of(graph, inputs)
    ensembles = [n for n in graph.node if n.op_type in _TREE_ENSEMBLES and n.domain == "ai.onnx.ml"]
    ensemble_ids = {id(n) for n in ensembles}
    splits = dict.fromkeys(features, 0)
    for node in ensembles:
        matrix = columns.get(node.input[0])
        if matrix is None:
            raise ArtifactError(
                f"Cannot trace the columns of {node.op_type} {node.name!r} back to the model's inputs: the graph "
                "has an operator this check does not know how to follow."
            )
        for name, count in _split_counts(node, matrix).items():
            splits[name] += count
    split_share = _shares({f: float(n) for f, n in splits.items()})
    size = dict.fromkeys(features, 0.0)
    graph_seconds = dict.fromkeys(features, 0.0)
    for node, owned in zip(graph.node, _owners(graph, inputs), strict=True):
        if len(owned) == 1:
            share = {next(iter(owned)): 1.0}
        elif id(node) in ensemble_ids and sum(splits.values()) > 0:
            share = split_share
        else:
            filled = columns.get(node.output[0]) if node.output else None
            filled = filled or next((columns[n] for n in node.input if columns.get(n)), None)
            share = _by_columns(filled, features)
        seconds = node_seconds.get(node.name, 0.0) if node.name else 0.0
        for name, part in share.items():
            size[name] += part * node.ByteSize()
            graph_seconds[name] += part * seconds
    matrix_columns = next((columns.get(n.input[0]) for n in ensembles), None) or _widest(columns, features)
    return splits, size, graph_seconds, matrix_columns


# -- timing -----------------------------------------------------------------------------------------
def _profile(model_bytes: bytes, feed: Mapping[str, Any], repeats: int) -> dict[str, float]:
    """Seconds per node (the fastest of ``repeats`` runs of the graph), from ONNX Runtime's profiler."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mlops-feature-cost-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.intra_op_num_threads = 1  # one thread: node times add up to the graph's time
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors share no useful base class
            raise ArtifactError(f"The ONNX model could not be loaded by ONNX Runtime: {exc}") from exc
        for _ in range(repeats):
            session.run(None, dict(feed))
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
    fastest: dict[str, float] = {}
    suffix = "_kernel_time"
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and name.endswith(suffix):
            node = name[: -len(suffix)]
            seconds = float(event.get("dur", 0)) / 1e6
            fastest[node] = min(fastest.get(node, seconds), seconds)
    return fastest


def _sample_table(parquet: bytes, inputs: Sequence[OnnxInput], rows: int) -> pa.Table:
    """The sample's feature columns as scoring reads them (strings as dictionaries), repeated up to
    ``rows`` rows: a reference sample of a few hundred rows would time mostly the per-call overhead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = [i.column for i in inputs if i.type == "string"]
    table = pq.read_table(io.BytesIO(parquet), columns=[i.column for i in inputs], read_dictionary=strings)
    if 0 < table.num_rows < rows:
        table = pa.concat_tables([table] * math.ceil(rows / table.num_rows))
    return table.slice(0, rows).combine_chunks()


def _coercion_seconds(table: pa.Table, inputs: Sequence[OnnxInput], repeats: int) -> dict[str, float]:
    """The fastest time to coerce each feature column into the ONNX feed, as scoring does."""
    from airflow_mlops.core.onnx_model import feed_arrow

    fastest: dict[str, float] = {}
    for _ in range(repeats):
        for item in inputs:  # interleaved: a slow moment of the machine hits every feature alike
            started = time.perf_counter()
            feed_arrow(table, [item])
            seconds = time.perf_counter() - started
            fastest[item.name] = min(fastest.get(item.name, seconds), seconds)
    return fastest


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


def _widest(columns: Mapping[str, list[str] | None], features: Sequence[str]) -> list[str] | None:
    """The widest traced tensor that covers every feature: the matrix a non-tree estimator reads."""
    covering = [c for c in columns.values() if c is not None and set(features) <= set(c)]
    return max(covering, key=len, default=None)


# -- the rule ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CostPolicy:
    """When a feature costs too much.

    :param max_cost_ratio: a feature's cost share may be at most this many times its importance share.
    :param min_cost_share: below this cost share a feature is too cheap to be worth a warning, whatever
        its importance (the importance check covers features that buy nothing).
    :param max_serving_ms_per_1k: absolute budget of serving time per feature (None: no budget).
    :param max_model_bytes: absolute budget of ONNX bytes per feature (None: no budget).
    """

    max_cost_ratio: float = 3.0
    min_cost_share: float = 0.02
    max_serving_ms_per_1k: float | None = None
    max_model_bytes: float | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> CostPolicy:
        """Read a policy from strings or numbers (templated operator arguments, the pipeline file)."""
        raw = dict(raw or {})
        allowed = {"max_cost_ratio", "min_cost_share", "max_serving_ms_per_1k", "max_model_bytes"}
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise SpecError(f"Unknown feature cost setting(s) {unknown}; allowed: {sorted(allowed)}.")

        def number(name: str, default: float | None, low: float, high: float = math.inf) -> float | None:
            value = raw.get(name)
            if value is None or value == "" or str(value).lower() == "none":
                return default
            return parse_number(value, name, low=low, high=high)

        ratio = number("max_cost_ratio", 3.0, 1.0)
        floor = number("min_cost_share", 0.02, 0.0, 1.0)
        return cls(
            max_cost_ratio=3.0 if ratio is None else ratio,
            min_cost_share=0.02 if floor is None else floor,
            max_serving_ms_per_1k=number("max_serving_ms_per_1k", None, 0.0),
            max_model_bytes=number("max_model_bytes", None, 0.0),
        )


def check_feature_cost(measurement: CostMeasurement, importance: Mapping[str, float], policy: CostPolicy) -> Finding:
    """Warn about features whose cost is not paid for by their importance, or is over a budget.

    A feature is flagged when its cost share is at least ``min_cost_share`` and more than
    ``max_cost_ratio`` times its importance share (a feature with no importance and a real cost has an
    infinite ratio), or when its serving time or model bytes exceed the absolute budgets.

    :raises SpecError: the importance is empty (the estimator exposes none), or names other features.
    """
    if not importance:
        raise SpecError("The run records no feature importance: a feature's cost has nothing to be compared with.")
    unknown = sorted(set(importance) - set(measurement.features))
    if unknown:
        raise SpecError(f"The importance names feature(s) {unknown} that the ONNX model has no input for.")
    table = measurement.table(importance)
    flagged: dict[str, list[str]] = {}
    for row in table:
        reasons = []
        share, cost = row["importance_share"], row["cost_share"]
        if cost >= policy.min_cost_share and cost > policy.max_cost_ratio * share:
            reasons.append(f"{cost:.1%} of the cost for {share:.1%} of the importance")
        budget = policy.max_serving_ms_per_1k
        if budget is not None and row["serving_ms_per_1k"] > budget:
            reasons.append(f"{row['serving_ms_per_1k']:.3f} ms per 1k rows to serve (budget {budget:g})")
        if policy.max_model_bytes is not None and row["model_bytes"] > policy.max_model_bytes:
            reasons.append(f"{row['model_bytes']:.0f} bytes of the model (budget {policy.max_model_bytes:g})")
        if reasons:
            flagged[row["feature"]] = reasons
    details = {
        "policy": asdict(policy),
        "features": table,
        "flagged": flagged,
        "rows": measurement.rows,
        "repeats": measurement.repeats,
        "model_bytes": measurement.model_bytes,
        "seconds": round(measurement.seconds, 3),
    }
    if flagged:
        listed = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in flagged.items())
        return Finding(CHECK, "warn", f"{len(flagged)} feature(s) cost more than they bring: {listed}.", details)
    costliest = table[0]
    return Finding(
        CHECK,
        "ok",
        f"Every one of {len(table)} features pays for its cost; the costliest, {costliest['feature']}, takes "
        f"{costliest['cost_share']:.1%} of the cost for {costliest['importance_share']:.1%} of the importance.",
        details,
    )


# -- a training run's artifacts in, its cost table out ----------------------------------------------------
def measure_run(client: Any, run_id: str, *, rows: int = 10_000, repeats: int = 5) -> CostMeasurement:
    """Measure the feature costs of a training run's ONNX model on its reference sample.

    :raises SourceNotFoundError: the run lacks its spec, ONNX or reference artifact.
    :raises IntegrityError: the ONNX artifact does not hash to the run's recorded sha256.
    """
    from airflow_mlops.core import contracts
    from airflow_mlops.core.errors import IntegrityError
    from airflow_mlops.core.gating.inputs import download_run_artifact
    from airflow_mlops.core.onnx_model import inputs_from_spec
    from airflow_mlops.core.storage import sha256_bytes

    try:
        spec = json.loads(download_run_artifact(client, run_id, contracts.ARTIFACT_SPEC))
    except ValueError as exc:
        raise ArtifactError(f"The training spec of run {run_id} is not valid JSON: {exc}") from exc
    model_bytes = download_run_artifact(client, run_id, contracts.ARTIFACT_ONNX)
    recorded = client.get_run(run_id).data.tags.get(contracts.TAG_ONNX_SHA256)
    if recorded and sha256_bytes(model_bytes) != recorded:
        raise IntegrityError(
            f"The ONNX artifact of run {run_id} hashes to {sha256_bytes(model_bytes)}, not the recorded {recorded}."
        )
    sample = download_run_artifact(client, run_id, contracts.ARTIFACT_REFERENCE)
    return measure_feature_cost(model_bytes, inputs_from_spec(spec), sample, rows=rows, repeats=repeats)


def log_cost_table(client: Any, run_id: str, finding: Finding) -> None:
    """Put the finding on the training run: the whole table as :data:`ARTIFACT_FEATURE_COST`, and per
    feature the metrics ``feature_cost.<feature>.cost_share``, ``.serving_ms_per_1k`` and ``.model_bytes``,
    so that runs can be compared in the MLflow UI."""
    from mlflow.entities import Metric

    from airflow_mlops.core.monitoring import metric_key

    client.log_dict(run_id, finding.to_dict(), ARTIFACT_FEATURE_COST)
    now = int(time.time() * 1000)
    metrics = [
        Metric(metric_key(f"feature_cost.{row['feature']}.{name}"), float(row[name]), now, 0)
        for row in finding.details["features"]
        for name in ("cost_share", "serving_ms_per_1k", "model_bytes")
    ]
    metrics.append(Metric("feature_cost.flagged", float(len(finding.details["flagged"])), now, 0))
    for start in range(0, len(metrics), 1000):  # MLflow takes at most 1000 metrics per batch
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
