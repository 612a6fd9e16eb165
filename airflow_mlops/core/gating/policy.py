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
    Margin,
    _boolean,
    _choice,
    _margin,
    _metric_name,
    _names,
    _number,
    _optional_number,
    _section,
)

# Metrics that reward stating the right probability (or, for regressors, the right mean), not only the
# right ranking: the second metric of the champion comparison.
PROPER_SCORING_RULES = ("log_loss", "brier", "rmse")
DEFAULT_SCORING_RULE: dict[gm.Task, str] = {"binary": "log_loss", "multiclass": "log_loss", "regression": "rmse"}
DEFAULT_TOLERANCE_PRIMARY = Margin(0.01)
DEFAULT_TOLERANCE_SCORING_RULE = Margin(0.02)
NO_MIN_GAIN = Margin(0.0)
DEFAULT_BASELINE_MIN_GAIN = Margin(0.01, relative=True)


@dataclass(frozen=True)
class BootstrapPolicy:
    """Paired bootstrap of the improvement over the champion.

    :param enabled: run it (off by default: it costs ``samples`` metric evaluations per model).
    :param samples: number of resamples.
    :param confidence: the candidate passes when the ``1 - confidence`` quantile of its improvement is
        at least ``-tolerance``: with that confidence it is not worse beyond the tolerance.
    :param seed: seed of the resampling.
    """

    enabled: bool = False
    samples: int = 1000
    confidence: float = 0.95
    seed: int = 0

    KEYS = ("enabled", "samples", "confidence", "seed")

    @classmethod
    def from_mapping(cls, raw: Any) -> BootstrapPolicy:
        values = _section(raw, "bootstrap", cls.KEYS)
        enabled = _boolean(values.get("enabled", bool(values)), "enabled", "bootstrap")
        return cls(
            enabled=enabled,
            samples=int(_number(values.get("samples", 1000), "samples", "bootstrap", minimum=100, integer=True)),
            confidence=_number(values.get("confidence", 0.95), "confidence", "bootstrap", minimum=0.5, maximum=0.999),
            seed=int(_number(values.get("seed", 0), "seed", "bootstrap", minimum=0, integer=True)),
        )


@dataclass(frozen=True)
class SlicePolicy:
    """Per-slice checks on the candidate.

    :param columns: columns of the evaluation data to slice by (need not be model features).
    :param metric: metric per slice; the policy's primary metric when omitted.
    :param floor: bound every judged slice must meet (a ceiling for lower-is-better metrics).
    :param max_gap: largest allowed difference between the best and the worst judged slice.
    :param min_rows: slices with fewer rows are reported but not judged: too noisy to decide on.
    :param max_slices: only the largest slices of each column are evaluated.
    """

    columns: tuple[str, ...] = ()
    metric: str | None = None
    floor: float | None = None
    max_gap: float | None = None
    min_rows: int = 200
    max_slices: int = 50

    KEYS = ("columns", "metric", "floor", "max_gap", "min_rows", "max_slices")

    @classmethod
    def from_mapping(cls, raw: Any) -> SlicePolicy:
        values = _section(raw, "slices", cls.KEYS)
        metric_raw = values.get("metric")
        return cls(
            columns=_names(values.get("columns"), "columns", "slices"),
            metric=None if metric_raw in (None, "") else _metric_name(metric_raw, "metric", "slices"),
            floor=_optional_number(values.get("floor"), "floor", "slices"),
            max_gap=_optional_number(values.get("max_gap"), "max_gap", "slices", minimum=0),
            min_rows=int(_number(values.get("min_rows", 200), "min_rows", "slices", minimum=1, integer=True)),
            max_slices=int(_number(values.get("max_slices", 50), "max_slices", "slices", minimum=1, integer=True)),
        )


@dataclass(frozen=True)
class BaselinePolicy:
    """Simpler models that the candidate must beat (ML Test Score M5).

    :param enabled: run the check (on by default).
    :param kind: the simpler model: ``linear`` (an L2-regularised logistic regression for classifiers,
        ridge regression for regressors, on the candidate's own features), ``prior`` (class frequencies),
        ``mean`` (regression), or ``auto`` (default: ``linear``).
    :param constant: also fit the constant model (class prior or mean) as a second baseline, held to
        ``margin`` only (on by default; no effect when ``kind`` is already constant).
    :param min_gain: how much better than the simpler model the candidate must be on the primary metric,
        in metric units or relative to the simpler model's value (``"1%"``, the default): a complex model
        that only ties a logistic regression does not earn its cost.
    :param metrics: metrics compared; the primary metric, plus ``log_loss`` for classifiers (a constant
        predictor has an AUC of exactly 0.5, so only a proper scoring rule tells it apart).
    :param margin: how far a baseline may be ahead on the other compared metrics (and the constant on
        every one) before the candidate fails.
    :param fit_on: ``train_sample`` (default): the baselines learn from the candidate run's training
        sample (the reference artifact), the same rows the candidate learned from; ``evaluation``: they
        are cross-fitted on the evaluation rows, which lets them know the evaluation period (stricter).
        Runs without a training sample fall back to ``evaluation``, and the decision says so.
    :param folds: folds of the cross-fitting on the evaluation rows.
    :param regularization: inverse L2 strength of the logistic regression (``C``); ridge's ``alpha`` is
        its inverse.
    """

    enabled: bool = True
    kind: Literal["auto", "prior", "mean", "linear"] = "auto"
    constant: bool = True
    min_gain: Margin = DEFAULT_BASELINE_MIN_GAIN
    metrics: tuple[str, ...] = ()
    margin: float = 0.0
    fit_on: Literal["train_sample", "evaluation"] = "train_sample"
    folds: int = 5
    seed: int = 0
    regularization: float = 1.0

    KEYS = ("enabled", "kind", "constant", "min_gain", "metrics", "margin", "fit_on", "folds", "seed", "regularization")

    @classmethod
    def from_mapping(cls, raw: Any) -> BaselinePolicy:
        values = _section(raw, "baseline", cls.KEYS)
        kind = _choice(values.get("kind", "auto"), "kind", "baseline", ("auto", "prior", "mean", "linear"))
        return cls(
            enabled=_boolean(values.get("enabled", True), "enabled", "baseline"),
            kind=cast(Literal["auto", "prior", "mean", "linear"], kind),
            constant=_boolean(values.get("constant", True), "constant", "baseline"),
            min_gain=_margin(values.get("min_gain"), "min_gain", "baseline", DEFAULT_BASELINE_MIN_GAIN),
            metrics=tuple(
                _metric_name(m, "metrics", "baseline") for m in _names(values.get("metrics"), "metrics", "baseline")
            ),
            margin=_number(values.get("margin", 0.0), "margin", "baseline", minimum=0),
            fit_on=cast(
                Literal["train_sample", "evaluation"],
                _choice(values.get("fit_on", "train_sample"), "fit_on", "baseline", ("train_sample", "evaluation")),
            ),
            folds=int(_number(values.get("folds", 5), "folds", "baseline", minimum=2, maximum=20, integer=True)),
            seed=int(_number(values.get("seed", 0), "seed", "baseline", minimum=0, integer=True)),
            regularization=_number(
                values.get("regularization", 1.0), "regularization", "baseline", minimum=1e-6, maximum=1e6
            ),
        )

    def kinds(self, task: gm.Task) -> tuple[str, str | None]:
        """The simpler model's kind, and the constant second baseline's (None when there is none)."""
        constant = "mean" if task == "regression" else "prior"
        kind = "linear" if self.kind == "auto" else self.kind
        return kind, (constant if self.constant and kind == "linear" else None)


@dataclass(frozen=True)
class ComparePolicy:
    """How the candidate is judged against the champion: on the primary metric together with a proper
    scoring rule, each within a tolerance (the rule: :func:`~airflow_mlops.core.gating.comparison.prefer`).

    :param proper_scoring_rule: the second metric: ``auto`` (``log_loss`` for classifiers, ``rmse`` for
        regressors), ``log_loss``, ``brier`` (binary) or ``rmse``; ``none`` judges the primary metric
        alone, as non-regression within ``tolerance_primary`` (so does a rule equal to the primary).
    :param tolerance_primary: how much worse than the champion the candidate may be on the primary metric
        (``tolerance.primary``), in metric units or relative to the champion's value (``"1%"``).
    :param tolerance_scoring_rule: the same on the scoring rule (``tolerance.scoring_rule``).
    :param min_gain: how much better than the champion the candidate must be on the primary metric to
        replace it, absolute or relative; 0 adds no check.
    :param max_ece: ceiling on the candidate's expected calibration error (classifiers); none by default.
    :param ece_bins: equal-width probability bins of the expected calibration error.
    """

    proper_scoring_rule: str = "auto"
    tolerance_primary: Margin = DEFAULT_TOLERANCE_PRIMARY
    tolerance_scoring_rule: Margin = DEFAULT_TOLERANCE_SCORING_RULE
    min_gain: Margin = NO_MIN_GAIN
    max_ece: float | None = None
    ece_bins: int = 10

    KEYS = ("proper_scoring_rule", "tolerance", "min_gain", "max_ece", "ece_bins")
    TOLERANCE_KEYS = ("primary", "scoring_rule")

    @classmethod
    def from_mapping(cls, raw: Any) -> ComparePolicy:
        values = _section(raw, "compare", cls.KEYS)
        options = ("auto", *PROPER_SCORING_RULES, "none")
        rule = _choice(values.get("proper_scoring_rule", "auto"), "proper_scoring_rule", "compare", options)
        tolerance = values.get("tolerance")
        if tolerance is not None and not isinstance(tolerance, Mapping):
            raise SpecError(
                "The 'compare.tolerance' parameter of GatePolicy must map 'primary' and 'scoring_rule' to "
                f"tolerances, e.g. {{primary: 0.01, scoring_rule: 0.02}}. Got {tolerance!r} instead."
            )
        tolerances = _section(tolerance, "compare.tolerance", cls.TOLERANCE_KEYS)
        if rule == "none" and tolerances.get("scoring_rule") is not None:
            raise SpecError(
                "The 'compare.tolerance.scoring_rule' parameter of GatePolicy has no effect with "
                "'compare.proper_scoring_rule: none'. Remove it, or name a proper scoring rule."
            )
        where = "compare.tolerance"
        return cls(
            proper_scoring_rule=rule,
            tolerance_primary=_margin(tolerances.get("primary"), "primary", where, cls.tolerance_primary),
            tolerance_scoring_rule=_margin(
                tolerances.get("scoring_rule"), "scoring_rule", where, cls.tolerance_scoring_rule
            ),
            min_gain=_margin(values.get("min_gain"), "min_gain", "compare", cls.min_gain),
            max_ece=_optional_number(values.get("max_ece"), "max_ece", "compare", minimum=0, maximum=1),
            ece_bins=int(
                _number(values.get("ece_bins", 10), "ece_bins", "compare", minimum=2, maximum=100, integer=True)
            ),
        )

    def scoring_rule_for(self, task: gm.Task, primary: str) -> str | None:
        """The comparison's second metric for ``task``; None when the primary metric is judged alone."""
        rule = DEFAULT_SCORING_RULE[task] if self.proper_scoring_rule == "auto" else self.proper_scoring_rule
        return None if rule in ("none", primary) else rule

    def check_task(self, task: gm.Task) -> None:
        """:raises SpecError: the scoring rule or the ECE ceiling does not apply to ``task``."""
        if self.proper_scoring_rule not in ("auto", "none"):
            gm.metric(self.proper_scoring_rule, task, where="'compare.proper_scoring_rule' metric of the gate policy")
        if self.max_ece is not None and task == "regression":
            raise SpecError(
                "The 'compare.max_ece' parameter of GatePolicy applies to classifiers: a regression model "
                "states no probabilities to calibrate. Remove it for this pipeline."
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
