"""What each feature costs before the model sees it: the time the version's feature transforms spend
computing it, and the freshness of the dimensions its joins read.

Both are measured through the one transform code path (:class:`~airflow_mlops.core.features.Transformer`,
bound by :func:`~airflow_mlops.core.features.bind`) on a bounded sample of the run's training snapshot:

- **Computation.** Each transform (a join, a derived column) is run alone on the sample, after the whole
  set has run once so that a derived column finds the columns it reads. Its time is the fastest of
  ``repeats`` interleaved rounds, less the time of a query that computes nothing (the per-call cost every
  transform pays: registering the batch, ordering the rows). A join's time is shared equally by the model
  features it brings; a derived column that is not a feature itself passes its time to the features
  computed from it. Milliseconds per 1,000 rows, comparable with the serving time.
- **Freshness**, per joined dimension: how far its newest row lags behind the newest row joined to it
  (a dimension that stopped being updated leaves the newest rows without a match, or with an old one),
  and the share of rows the join leaves unmatched (null features). The sample keeps the snapshot's newest
  row of every as-of column, so the lag is that of the newest data the model was trained on.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa

    from airflow_mlops.core.features import Dimension, FeatureTransforms, JoinSpec, Transformer

_NOTHING = "__mlops_nothing"  # the derived column of the query that computes nothing (the per-call time)


@dataclass(frozen=True)
class DimensionFreshness:
    """One joined dimension against the rows joined to it (times in UTC, ISO 8601)."""

    join: str
    features: tuple[str, ...]  # the model features it brings
    newest: str | None  # the dimension's newest as-of time (None: a key lookup, no time)
    rows_newest: str | None  # the newest as-of time of the rows joined to it
    lag_hours: float | None  # how far the dimension ends before the rows (0 when it reaches them)
    tolerance_hours: float | None  # the join's as-of tolerance
    unmatched_share: float  # rows the join leaves without a match (its features null)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "features": list(self.features)}


@dataclass(frozen=True)
class UpstreamCost:
    """Computation per feature and per transform, and the freshness of every joined dimension."""

    compute_ms_per_1k: dict[str, float]  # per model feature; 0 for a column read as it is
    transforms: dict[str, dict[str, Any]]  # "join weather" / "derived sched_dow" -> ms_per_1k, features
    dimensions: dict[str, DimensionFreshness]
    rows: int
    seconds: float


def sample_rows(table: pa.Table, rows: int, newest: Sequence[str] = ()) -> pa.Table:
    """At most ``rows`` rows spread evenly over ``table``, plus its newest row of each ``newest`` column."""
    import numpy as np
    import pyarrow.compute as pc

    if table.num_rows == 0:
        raise DataError("The training snapshot has no rows: there is nothing to time the feature transforms on.")
    picked = set(np.linspace(0, table.num_rows - 1, min(rows, table.num_rows)).round().astype(int).tolist())
    for column in newest:
        latest = pc.max(table.column(column))
        if latest.is_valid:
            picked.add(int(pc.index(table.column(column), latest).as_py()))
    return table.take(sorted(picked))


def _feeds(transforms: FeatureTransforms, features: Sequence[str]) -> dict[str, list[str]]:
    """Each produced column -> the model features computed from it (itself, or derived columns reading it)."""
    wanted = set(features)
    feeds: dict[str, list[str]] = {}
    for derived in reversed(transforms.derived):
        found = [derived.name] if derived.name in wanted else []
        found += [f for later in transforms.derived if derived.name in later.reads for f in feeds.get(later.name, [])]
        feeds[derived.name] = list(dict.fromkeys(found))
    for join in transforms.joins:
        for column in join.columns:
            readers = [f for d in transforms.derived if column in d.reads for f in feeds[d.name]]
            feeds[column] = list(dict.fromkeys([*([column] if column in wanted else []), *readers]))
    return feeds


def _parts(transforms: FeatureTransforms) -> dict[str, FeatureTransforms]:
    """Every transform alone (its time zones kept), and the query that computes nothing."""
    from airflow_mlops.core.features import FeatureTransforms

    parts = {f"join {j.name}": replace(transforms, joins=(j,), derived=()) for j in transforms.joins}
    parts.update({f"derived {d.name}": replace(transforms, joins=(), derived=(d,)) for d in transforms.derived})
    parts[_NOTHING] = FeatureTransforms.from_mapping({"derived": {_NOTHING: "0"}})
    return parts


def _fastest(runners: Mapping[str, Transformer], table: pa.Table, repeats: int) -> dict[str, float]:
    fastest: dict[str, float] = {}
    for _ in range(repeats):
        for name, runner in runners.items():  # interleaved: a slow moment of the machine hits every part alike
            started = time.perf_counter()
            runner.apply(table, count=False)
            seconds = time.perf_counter() - started
            fastest[name] = min(fastest.get(name, seconds), seconds)
    return fastest


def measure_upstream(transformer: Transformer, sample: pa.Table, features: Sequence[str], repeats: int) -> UpstreamCost:
    """Time each of ``transformer``'s transforms on ``sample`` (raw input columns) and judge the freshness
    of its dimensions (see the module docstring). ``features`` are the model's inputs."""
    from airflow_mlops.core.features import Transformer

    started = time.perf_counter()
    transforms, dimensions = transformer.transforms, transformer.dimensions
    counting = Transformer(transforms, dimensions)
    try:
        joined = counting.apply(sample)
        instants = counting.as_of_instants(sample)
    finally:
        counting.close()
    runners = {name: Transformer(part, dimensions) for name, part in _parts(transforms).items()}
    try:
        fastest = _fastest(runners, joined, repeats)
    finally:
        for runner in runners.values():
            runner.close()
    per_1k = 1e6 / sample.num_rows  # seconds for the sample -> milliseconds per 1,000 rows
    nothing = fastest.pop(_NOTHING)
    feeds = _feeds(transforms, features)
    compute = dict.fromkeys(features, 0.0)
    table: dict[str, dict[str, Any]] = {}
    for name, seconds in fastest.items():
        kind, produced = name.split(" ", 1)
        columns = next(j.columns for j in transforms.joins if j.name == produced) if kind == "join" else [produced]
        fed = list(dict.fromkeys(f for c in columns for f in feeds.get(c, [])))
        ms = max(seconds - nothing, 0.0) * per_1k
        table[name] = {"ms_per_1k": round(ms, 6), "features": fed}
        for feature in fed:
            compute[feature] += ms / len(fed)
    freshness = {
        join.name: _freshness(join, dimensions[join.name], counting, instants.get(join.name), feeds)
        for join in transforms.joins
    }
    return UpstreamCost(compute, table, freshness, sample.num_rows, time.perf_counter() - started)


def _freshness(
    join: JoinSpec, dimension: Dimension, counted: Transformer, instants: Any, feeds: Mapping[str, list[str]]
) -> DimensionFreshness:
    """A join's lag (None without an as-of time, or for an empty dimension) and unmatched share."""
    import pyarrow.compute as pc

    from airflow_mlops.core.features.dimensions import TIME_COLUMN

    fed = tuple(dict.fromkeys(f for c in join.columns for f in feeds.get(c, [])))
    unmatched = 1.0 - counted.matched[join.name] / counted.rows if counted.rows else 0.0
    if join.as_of is None or instants is None:
        return DimensionFreshness(join.name, fed, None, None, None, None, round(unmatched, 6))
    newest = pc.max(dimension.table.column(TIME_COLUMN)).as_py()
    rows_newest = pc.max(instants).as_py()
    lag = None if rows_newest is None or newest is None else max(rows_newest - newest, 0) / 3.6e9  # us -> h
    return DimensionFreshness(
        join.name,
        fed,
        _iso(newest),
        _iso(rows_newest),
        None if lag is None else round(lag, 3),
        join.as_of.tolerance_seconds / 3600.0,
        round(unmatched, 6),
    )


def _iso(microseconds: int | None) -> str | None:
    return None if microseconds is None else datetime.fromtimestamp(microseconds / 1e6, UTC).isoformat()


def measure_run_upstream(
    client: Any, run_id: str, spec: Any, root: Any, *, rows: int, repeats: int, sql_engine: Any = None
) -> UpstreamCost | None:
    """The upstream cost of a training run's transforms on a sample of its snapshot (the run's
    ``mlops.dataset_uri``, checked against its sha256), bound to its pipeline's dimensions; None when the
    version has no transforms.

    :raises SourceNotFoundError: the run records no snapshot, or it is gone.
    :raises IntegrityError: the snapshot changed since training.
    """
    import pyarrow as pa

    from airflow_mlops.core import contracts
    from airflow_mlops.core.errors import SourceNotFoundError
    from airflow_mlops.core.features import bind
    from airflow_mlops.core.training import read_snapshot

    transforms = spec.transforms
    if not transforms:
        return None
    tags = client.get_run(run_id).data.tags
    uri = tags.get(contracts.TAG_DATASET_URI)
    if not uri:
        raise SourceNotFoundError(
            f"Run {run_id} has no {contracts.TAG_DATASET_URI!r} tag: there is no snapshot to time its feature "
            "transforms on."
        )
    frame, _ = read_snapshot(root, uri, tags.get(contracts.TAG_DATASET_SHA256))
    table = pa.Table.from_pandas(frame[[c for c in transforms.inputs() if c in frame.columns]], preserve_index=False)
    newest = [j.as_of.column for j in transforms.joins if j.as_of is not None]
    transformer = bind(transforms, root, tags.get(contracts.TAG_PIPELINE, ""), sql_engine)
    try:
        return measure_upstream(transformer, sample_rows(table, rows, newest), spec.features, repeats)
    finally:
        transformer.close()
