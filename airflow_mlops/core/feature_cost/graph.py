"""Attribution of an ONNX graph to its inputs: which input feeds which column of the estimator's matrix,
the tree-ensemble nodes that split on each feature, and each feature's share of every node's bytes and
time (see :mod:`airflow_mlops.core.feature_cost.measurement` for the rules)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.onnx_model import OnnxInput

_TREE_ENSEMBLES = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
# Ops whose output has the columns of their first input, in the same order.
_SAME_COLUMNS = (
    "Cast", "Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Imputer", "Scaler", "Normalizer",
    "Binarizer", "Abs", "Neg", "Sqrt", "Log", "Exp", "Clip", "Add", "Sub", "Mul", "Div",
)  # fmt: skip


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
        elif node.op_type == "Gather" and known and known[0] is not None and len(known[0]) == 1:
            result = list(known[0])  # a column picked out of a one-column input (a lone categorical feature)
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


def _widest(columns: Mapping[str, list[str] | None], features: Sequence[str]) -> list[str] | None:
    """The widest traced tensor that covers every feature: the matrix a non-tree estimator reads."""
    covering = [c for c in columns.values() if c is not None and set(features) <= set(c)]
    return max(covering, key=len, default=None)
