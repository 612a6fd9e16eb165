"""The gate's policy: which checks run and their thresholds, parsed from a mapping (YAML or operator
argument) with every value validated up front, so a typo fails the task before any model is loaded.

Templated values arrive as strings (``"0.01"``, ``"true"``, ``"2%"``); each coercion
(:mod:`~airflow_mlops.core.gating.coercion`) names the policy key it refused and what it expected.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.gating.coercion import (
    _choice,
    _metric_name,
    _names,
    _number,
    _optional_number,
)
from airflow_mlops.core.gating.section_policies import (
    BaselinePolicy,
    BootstrapPolicy,
    ComparePolicy,
    SlicePolicy,
)


@dataclass(frozen=True)
class GatePolicy:
    """How the gate decides. Build it with :meth:`from_mapping`; every value is coerced and checked.

    :param primary_metric: the metric of record; when omitted, the training spec's ``primary_metric``
        (else ``roc_auc`` for binary, ``log_loss`` for multiclass, ``rmse`` for regression). Slices,
        the champion comparison and the baseline use it by default.
    :param floors: ``{metric: bound}`` absolute bounds (a ceiling for lower-is-better metrics).
    :param compare: how the candidate is judged against the champion on the primary metric
        (:class:`ComparePolicy`: with a proper scoring rule, tolerances, ``min_gain``, ``max_ece``).
    :param compare_metrics: further metrics held to plain non-regression against the champion.
    :param tolerance: how much worse than the champion the candidate may be on ``compare_metrics``, in
        metric units; one number for all of them or ``{metric: tolerance}``.
    :param max_parity_diff: largest allowed difference between ONNX and native outputs, in the training
        stem's measure: absolute probability difference (classifiers), difference relative to
        ``max(|native|, 1)`` (regressors).
    :param max_latency_ms_per_1k: budget for scoring 1,000 rows through ONNX Runtime (one thread).
    :param max_model_bytes: budget for the ONNX file size.
    :param first_run: ``floors_only`` (no champion: absolute checks only) or ``reject``.
    :param max_rows: evaluation rows beyond this are sampled down (seeded) to bound the gate's cost.
    """

    primary_metric: str | None = None
    floors: dict[str, float] = field(default_factory=dict)
    compare: ComparePolicy = field(default_factory=ComparePolicy)
    compare_metrics: tuple[str, ...] = ()
    tolerance: float = 0.0
    tolerances: dict[str, float] = field(default_factory=dict)
    bootstrap: BootstrapPolicy = field(default_factory=BootstrapPolicy)
    slices: SlicePolicy = field(default_factory=SlicePolicy)
    baseline: BaselinePolicy = field(default_factory=BaselinePolicy)
    max_parity_diff: float = 1e-4
    max_latency_ms_per_1k: float | None = None
    max_model_bytes: int | None = None
    latency_rows: int = 1000
    latency_repeats: int = 7
    first_run: Literal["floors_only", "reject"] = "floors_only"
    max_rows: int = 200_000
    seed: int = 0

    KEYS = (
        "primary_metric",
        "floors",
        "compare",
        "compare_metrics",
        "tolerance",
        "bootstrap",
        "slices",
        "baseline",
        "max_parity_diff",
        "max_latency_ms_per_1k",
        "max_model_bytes",
        "latency_rows",
        "latency_repeats",
        "first_run",
        "max_rows",
        "seed",
    )

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> GatePolicy:
        """Build a policy from a mapping (a DAG argument, YAML, or a rendered template).

        :raises SpecError: an unknown key, an unknown metric, or a value of the wrong type or range;
            the message names the key and what was expected.
        """
        if raw is None:
            raw = {}
        if not isinstance(raw, Mapping):
            raise SpecError(f"The gate policy must be a mapping of settings. Got {type(raw).__name__} {raw!r} instead.")
        unknown = sorted(set(map(str, raw)) - set(cls.KEYS))
        if unknown:
            raise SpecError(f"Unknown key(s) {unknown} in the gate policy. Expected any of {list(cls.KEYS)}.")
        floors_raw = raw.get("floors") or {}
        if not isinstance(floors_raw, Mapping):
            raise SpecError(
                f"The 'floors' parameter of GatePolicy must map metric names to bounds. Got {floors_raw!r}."
            )
        floors = {_metric_name(k, "floors", None): _number(v, str(k), "floors") for k, v in floors_raw.items()}
        compared = _names(raw.get("compare_metrics"), "compare_metrics", None)
        compare_metrics = tuple(_metric_name(m, "compare_metrics", None) for m in compared)
        tolerance, tolerances = _tolerances(raw.get("tolerance"), compare_metrics)
        primary = raw.get("primary_metric")
        budget_bytes = _optional_number(raw.get("max_model_bytes"), "max_model_bytes", None, minimum=1, integer=True)
        return cls(
            primary_metric=None if primary in (None, "") else _metric_name(primary, "primary_metric", None),
            floors=floors,
            compare=ComparePolicy.from_mapping(raw.get("compare")),
            compare_metrics=compare_metrics,
            tolerance=tolerance,
            tolerances=tolerances,
            bootstrap=BootstrapPolicy.from_mapping(raw.get("bootstrap")),
            slices=SlicePolicy.from_mapping(raw.get("slices")),
            baseline=BaselinePolicy.from_mapping(raw.get("baseline")),
            max_parity_diff=_number(raw.get("max_parity_diff", 1e-4), "max_parity_diff", None, minimum=0),
            max_latency_ms_per_1k=_optional_number(
                raw.get("max_latency_ms_per_1k"), "max_latency_ms_per_1k", None, minimum=0, exclusive_minimum=True
            ),
            max_model_bytes=None if budget_bytes is None else int(budget_bytes),
            latency_rows=int(_number(raw.get("latency_rows", 1000), "latency_rows", None, minimum=10, integer=True)),
            latency_repeats=int(
                _number(raw.get("latency_repeats", 7), "latency_repeats", None, minimum=1, maximum=100, integer=True)
            ),
            first_run=cast(
                Literal["floors_only", "reject"],
                _choice(raw.get("first_run", "floors_only"), "first_run", None, ("floors_only", "reject")),
            ),
            max_rows=int(_number(raw.get("max_rows", 200_000), "max_rows", None, minimum=100, integer=True)),
            seed=int(_number(raw.get("seed", 0), "seed", None, minimum=0, integer=True)),
        )

    def tolerance_for(self, metric: str) -> float:
        return self.tolerances.get(metric, self.tolerance)

    def primary_for(self, task: gm.Task, trained: Any = None) -> str:
        """The policy's primary metric; else the one the model was trained for, when the gate knows it."""
        if self.primary_metric:
            return self.primary_metric
        known = gm.METRICS.get(str(trained))
        return known.name if known is not None and task in known.tasks else gm.DEFAULT_PRIMARY[task]

    def check_task(self, task: gm.Task, trained: Any = None) -> None:
        """Every metric the policy names must apply to ``task``, and ``compare_metrics`` must not repeat
        the primary metric (``trained``: the training spec's primary metric).

        :raises SpecError: naming the first metric that does not.
        """
        named = [("primary_metric", self.primary_metric)]
        named += [("floors", m) for m in self.floors]
        named += [("compare_metrics", m) for m in self.compare_metrics]
        named += [("tolerance", m) for m in self.tolerances]
        named += [("slices.metric", self.slices.metric), *(("baseline.metrics", m) for m in self.baseline.metrics)]
        for where, name in named:
            if name is not None:
                gm.metric(name, task, where=f"'{where}' metric of the gate policy")
        self.compare.check_task(task)
        primary = self.primary_for(task, trained)
        if primary in self.compare_metrics:
            raise SpecError(
                f"The 'compare_metrics' parameter of GatePolicy lists the primary metric {primary!r}, which the "
                "'compare' section already judges against the champion. Remove it from 'compare_metrics' and set "
                "its tolerance as 'compare.tolerance.primary'."
            )
        if self.baseline.kind == "prior" and task == "regression":
            raise SpecError("The baseline kind 'prior' applies to classifiers; use 'mean' or 'linear' for a regressor.")
        if self.baseline.kind == "mean" and task != "regression":
            raise SpecError("The baseline kind 'mean' applies to regressors; use 'prior' or 'linear' for a classifier.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _tolerances(raw: Any, compare_metrics: tuple[str, ...]) -> tuple[float, dict[str, float]]:
    """The non-regression tolerance of ``compare_metrics``: one number, or ``{metric: tolerance}``.

    :raises SpecError: a tolerance with no ``compare_metrics`` to apply to (before the ``compare``
        section, ``tolerance`` was the primary metric's: refused rather than silently ignored), or one
        for a metric that ``compare_metrics`` does not list.
    """
    if raw is None:
        return 0.0, {}
    if not compare_metrics:
        raise SpecError(
            "The 'tolerance' parameter of GatePolicy is the non-regression tolerance of 'compare_metrics', which "
            f"lists no metric. Got {raw!r}. The primary metric's tolerance is 'compare.tolerance.primary' (and "
            "the proper scoring rule's 'compare.tolerance.scoring_rule')."
        )
    if not isinstance(raw, Mapping):
        return _number(raw, "tolerance", None, minimum=0), {}
    tolerances = {
        _metric_name(k, "tolerance", None): _number(v, str(k), "tolerance", minimum=0) for k, v in raw.items()
    }
    stray = sorted(set(tolerances) - set(compare_metrics))
    if stray:
        raise SpecError(
            f"The 'tolerance' parameter of GatePolicy names metric(s) {stray} that 'compare_metrics' does not list "
            f"({list(compare_metrics)}). The primary metric's tolerance is 'compare.tolerance.primary'."
        )
    return 0.0, tolerances
