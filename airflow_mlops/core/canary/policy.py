"""The canary policy: how many shadow batches a challenger is scored on before it may replace the champion,
and how closely it must agree with the champion and how good it must be on the labelled rows.

Read from the pipeline file's ``gate`` section (``canary_batches: N`` turns the canary on; ``canary:``
holds the thresholds) and again, from the same mapping, by the batch DAG's judgement task. Every value is
validated here, so a typo fails the DAG file's parse, not a serving run months later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import DEFAULT_PRIMARY, METRICS
from airflow_mlops.core.params import parse_flag, parse_integer, parse_number

DEFAULT_MIN_AGREEMENT = 0.9
DEFAULT_MAX_QUALITY_DROP = 0.01
MAX_BATCHES_LIMIT = 24  # the batches' figures ride on a version tag, which MLflow's SQL stores cap at 5000 chars
KEYS = ("min_agreement", "metric", "max_quality_drop", "require_labels", "max_batches")


@dataclass(frozen=True)
class CanaryPolicy:
    """When a challenger in shadow is promoted, dropped, or kept waiting.

    :param batches: shadow batches (scored partitions) the challenger must be compared on before any
        decision; 0 turns the canary off (a passed candidate is promoted at once).
    :param min_agreement: the share of rows, over those batches, on which the two models must agree (same
        predicted label; regression: within 10 % of the larger value); 0.9 by default.
    :param metric: the quality metric compared on labelled rows; the task's default primary metric
        (``roc_auc``, ``log_loss``, ``rmse``) when omitted.
    :param max_quality_drop: how much worse than the champion the challenger may be on ``metric``, in
        metric units, averaged over the labelled rows of the batches; 0.01 by default.
    :param require_labels: refuse to promote on agreement alone: without any labelled row in the batches
        the challenger waits (default true).
    :param max_batches: shadow batches after which a challenger still waiting for labels is dropped;
        twice ``batches`` by default, at most 24.
    """

    batches: int = 0
    min_agreement: float = DEFAULT_MIN_AGREEMENT
    metric: str | None = None
    max_quality_drop: float = DEFAULT_MAX_QUALITY_DROP
    require_labels: bool = True
    max_batches: int = 0

    @property
    def enabled(self) -> bool:
        return self.batches > 0

    @classmethod
    def from_mapping(cls, batches: Any, raw: Mapping[str, Any] | None = None, *, where: str = "gate") -> CanaryPolicy:
        """The policy of ``canary_batches`` and the ``canary`` mapping of ``where`` (named in errors)."""
        values = dict(raw or {})
        unknown = sorted(str(k) for k in values if k not in KEYS)
        if unknown:
            raise SpecError(f"{where}.canary has unknown key(s) {unknown}; allowed: {list(KEYS)}.")
        count = 0 if batches is None else parse_integer(batches, f"{where}.canary_batches", high=MAX_BATCHES_LIMIT)
        if values and not count:
            raise SpecError(f"{where}.canary sets thresholds but {where}.canary_batches is not set: set it to >= 1.")
        limit = values.get("max_batches", min(2 * count, MAX_BATCHES_LIMIT))
        return cls(
            batches=count,
            min_agreement=parse_number(values.get("min_agreement", DEFAULT_MIN_AGREEMENT), "min_agreement", high=1.0),
            metric=_metric(values.get("metric"), where),
            max_quality_drop=parse_number(values.get("max_quality_drop", DEFAULT_MAX_QUALITY_DROP), "max_quality_drop"),
            require_labels=parse_flag(values.get("require_labels", True), f"{where}.canary.require_labels"),
            max_batches=parse_integer(limit, f"{where}.canary.max_batches", low=count, high=MAX_BATCHES_LIMIT),
        )

    def metric_for(self, task: str) -> str:
        """The metric compared for a model of ``task``."""
        return self.metric or DEFAULT_PRIMARY.get(task, "roc_auc")  # type: ignore[call-overload]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, *, where: str = "canary policy") -> CanaryPolicy:
        """The inverse of :meth:`to_dict` (an operator argument): validated the same way."""
        values = dict(raw or {})
        return cls.from_mapping(values.pop("batches", 0), values, where=where)


def _metric(raw: Any, where: str) -> str | None:
    if raw in (None, ""):
        return None
    if str(raw) not in METRICS:
        raise SpecError(f"{where}.canary.metric must be one of {sorted(METRICS)}. Got {raw!r} instead.")
    return str(raw)


def worse_by(metric: str, champion: float, challenger: float) -> float:
    """How much worse the challenger is than the champion on ``metric`` (negative: better)."""
    if not (math.isfinite(champion) and math.isfinite(challenger)):
        return math.nan
    return -METRICS[metric].improvement(challenger, champion)
