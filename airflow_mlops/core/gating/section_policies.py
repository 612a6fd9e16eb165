"""The sections of the gate's policy: the bootstrap, the slices, the simpler-model baseline and the
champion comparison, each parsed and validated on its own (:class:`~airflow_mlops.core.gating.policy.GatePolicy`
holds them)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
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
