"""The scoring request: one partition to score, built from rendered operator arguments.

Numbers go through :func:`airflow_mlops.core.params.parse_number`, as every bounded number of the
package does; the passthrough columns arrive as a tuple, a comma-separated string or a JSON list.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_number
from airflow_mlops.core.scoring.inputs import _parse_uri
from airflow_mlops.core.serving.compiled import RUNTIMES, Runtime
from airflow_mlops.core.storage import validate_segment

DEFAULT_CHUNK_ROWS = 65_536
MAX_CHUNK_ROWS = 4_194_304
DEFAULT_SERVING_LOG_ROWS = 10_000
MAX_SERVING_LOG_ROWS = 1_000_000
MAX_THREADS = 256
MAX_EXPLAIN_TOP_K = 1000
MAX_SEED = 2**32 - 1

InvalidValues = Literal["refuse", "count"]
OnEmpty = Literal["fail", "skip"]
INVALID_VALUES: tuple[InvalidValues, ...] = ("refuse", "count")
ON_EMPTY: tuple[OnEmpty, ...] = ("fail", "skip")  # ingestion's choices, and its default first


def _integer(raw: Any, name: str, low: int, high: int) -> int:
    """``raw`` as an int in [low, high]; rendered templates give strings, which are parsed.

    :func:`parse_number` parses; the message is ours because it prints the upper bound exactly (with
    ``:g``, parse_number would round 4194304 to 4.1943e+06).
    """
    with contextlib.suppress(SpecError):
        value = parse_number(raw, name, low=low, integer=True)
        if value <= high:
            return int(value)
    raise SpecError(f"The {name!r} parameter must be an integer >= {low} and <= {high}. Got {raw!r} instead.")


def _check_integer(value: Any, name: str, low: int, high: int) -> None:
    """A built spec holds real ints: strings are parsed by :meth:`ScoringSpec.from_mapping` only."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise SpecError(f"The {name!r} parameter must be an integer >= {low} and <= {high}. Got {value!r} instead.")
    _integer(value, name, low, high)


def _as_columns(raw: Any) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        text = raw.strip()
        items = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",")]
    else:
        items = list(raw)
    columns = tuple(str(c) for c in items if str(c).strip())
    if len(set(columns)) != len(columns):
        raise SpecError(f"The 'passthrough_columns' parameter lists a column twice: {list(columns)!r}.")
    return columns


def _choice(raw: Any, name: str, allowed: tuple[str, ...]) -> Any:
    """``raw`` as one of ``allowed`` (case and surrounding spaces ignored: templates render strings)."""
    text = raw.strip().lower() if isinstance(raw, str) else None
    if text not in allowed:
        expected = " or ".join(repr(a) for a in allowed)
        raise SpecError(f"The {name!r} parameter of the scoring spec must be {expected}. Got {raw!r} instead.")
    return text


def _as_datetime(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SpecError(f"The 'scored_at' parameter must be an ISO 8601 timestamp. Got {raw!r} instead.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class ScoringSpec:
    """One partition to score.

    :param pipeline: pipeline name (first segment of the storage layout).
    :param partition: partition key: where the outputs go, ``{root}/{pipeline}/predictions/{partition}/``.
    :param input_uri: a Parquet file, a folder of Parquet files or a glob; local or ``s3://``.
    :param scored_at: the run's logical date, written to every row (UTC).
    :param passthrough_columns: input columns copied to the output as they are (ids, keys).
    :param chunk_rows: rows per record batch; memory grows with it, throughput barely beyond 64 Ki.
    :param threads: ONNX Runtime intra-op threads.
    :param serving_log_rows: size of the serving log sample (0 turns it off).
    :param explain_top_k: per-row top-k feature contributions (0 turns them off).
    :param seed: seed of the serving log and shadow samples.
    :param monitor_columns: input columns the model does not read that the serving log keeps, so drift
        monitoring can watch them; ``None`` keeps every such column (ids and features are kept anyway).
    :param invalid_values: what +inf, -inf and values beyond float32's range in a numeric feature do:
        ``count`` (score them, count them per column in the receipt and log a warning) or ``refuse``
        (fail the partition naming the columns and counts). Missing values (null, NaN) are always
        scored and counted: models read them as missing.
    :param on_empty: what an input with no rows does, as ingestion's ``on_empty``: ``fail`` (raise
        :class:`~airflow_mlops.core.errors.EmptySourceError`) or ``skip`` (write nothing and return a
        receipt that says so).
    :param runtime: what computes the model: ``onnx`` (the registered ONNX graph in ONNX Runtime) or
        ``compiled`` (LightGBM models only: the trees compiled on the worker, checked against the graph
        at load; needs the ``compiled`` extra). See :mod:`airflow_mlops.core.serving.compiled`.
    """

    pipeline: str
    partition: str
    input_uri: str
    scored_at: datetime
    passthrough_columns: tuple[str, ...] = ()
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    threads: int = 1
    serving_log_rows: int = DEFAULT_SERVING_LOG_ROWS
    explain_top_k: int = 0
    seed: int = 0
    invalid_values: InvalidValues = "count"
    on_empty: OnEmpty = "fail"
    monitor_columns: tuple[str, ...] | None = None
    runtime: Runtime = "onnx"

    def __post_init__(self) -> None:
        validate_segment(self.pipeline, "pipeline name")
        validate_segment(self.partition, "partition key")
        _parse_uri(self.input_uri)
        _check_integer(self.chunk_rows, "chunk_rows", 1, MAX_CHUNK_ROWS)
        _check_integer(self.threads, "threads", 1, MAX_THREADS)
        _check_integer(self.serving_log_rows, "serving_log_rows", 0, MAX_SERVING_LOG_ROWS)
        _check_integer(self.explain_top_k, "explain_top_k", 0, MAX_EXPLAIN_TOP_K)
        _check_integer(self.seed, "seed", 0, MAX_SEED)
        if self.invalid_values not in INVALID_VALUES:
            _choice(self.invalid_values, "invalid_values", INVALID_VALUES)
        if self.on_empty not in ON_EMPTY:
            _choice(self.on_empty, "on_empty", ON_EMPTY)
        if self.runtime not in RUNTIMES:
            _choice(self.runtime, "runtime", RUNTIMES)
        if not isinstance(self.passthrough_columns, tuple):
            raise SpecError(f"'passthrough_columns' must be a tuple of names. Got {self.passthrough_columns!r}.")
        if not isinstance(self.scored_at, datetime) or self.scored_at.tzinfo is None:
            raise SpecError(f"'scored_at' must be timezone-aware. Got {self.scored_at!r}.")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ScoringSpec:
        """Build from rendered operator arguments: numbers may arrive as strings, columns as a
        comma-separated string or a JSON list, ``scored_at`` as an ISO timestamp."""
        for name in ("pipeline", "partition", "input_uri", "scored_at"):
            if raw.get(name) in (None, ""):
                raise SpecError(f"The {name!r} parameter of the scoring spec is required.")
        return cls(
            pipeline=str(raw["pipeline"]),
            partition=str(raw["partition"]),
            input_uri=str(raw["input_uri"]),
            scored_at=_as_datetime(raw["scored_at"]),
            passthrough_columns=_as_columns(raw.get("passthrough_columns")),
            chunk_rows=_integer(raw.get("chunk_rows", DEFAULT_CHUNK_ROWS), "chunk_rows", 1, MAX_CHUNK_ROWS),
            threads=_integer(raw.get("threads", 1), "threads", 1, MAX_THREADS),
            serving_log_rows=_integer(
                raw.get("serving_log_rows", DEFAULT_SERVING_LOG_ROWS), "serving_log_rows", 0, MAX_SERVING_LOG_ROWS
            ),
            explain_top_k=_integer(raw.get("explain_top_k", 0), "explain_top_k", 0, MAX_EXPLAIN_TOP_K),
            seed=_integer(raw.get("seed", 0), "seed", 0, MAX_SEED),
            invalid_values=_choice(raw.get("invalid_values", "count"), "invalid_values", INVALID_VALUES),
            on_empty=_choice(raw.get("on_empty", "fail"), "on_empty", ON_EMPTY),
            monitor_columns=None if raw.get("monitor_columns") is None else _as_columns(raw["monitor_columns"]),
            runtime=_choice(raw.get("runtime", "onnx"), "runtime", RUNTIMES),
        )
