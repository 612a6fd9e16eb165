"""The gate's policy: which checks run and their thresholds, parsed from a mapping (YAML or operator
argument) with every value validated up front, so a typo fails the task before any model is loaded.

Templated values arrive as strings (``"0.01"``, ``"true"``); each coercion names the policy key it
refused and what it expected.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from airflow_mlops.core import params
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import metrics as gm


# -- coercion of policy values (templated values arrive as strings) ---------------------------------
def _where(section: str | None, key: str) -> str:
    return f"'{section}.{key}'" if section else f"'{key}'"


def _number(
    raw: Any,
    key: str,
    section: str | None,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    exclusive_minimum: bool = False,
) -> float:
    kind = "an integer" if integer else "a number"
    bounds = []
    if minimum is not None:
        bounds.append(f"{'>' if exclusive_minimum else '>='} {minimum:g}")
    if maximum is not None:
        bounds.append(f"<= {maximum:g}")
    expected = kind + (" " + " and ".join(bounds) if bounds else "")
    problem = SpecError(f"The {_where(section, key)} parameter of GatePolicy must be {expected}. Got {raw!r} instead.")
    if isinstance(raw, bool):
        raise problem
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise problem from None
    if math.isnan(value) or math.isinf(value) or (integer and not value.is_integer()):
        raise problem
    if minimum is not None and (value <= minimum if exclusive_minimum else value < minimum):
        raise problem
    if maximum is not None and value > maximum:
        raise problem
    return value


def _optional_number(raw: Any, key: str, section: str | None, **bounds: Any) -> float | None:
    if raw is None or (isinstance(raw, str) and raw.strip().lower() in ("", "none", "null")):
        return None
    return _number(raw, key, section, **bounds)


def _boolean(raw: Any, key: str, section: str | None) -> bool:
    return params.parse_flag(raw, f"The {_where(section, key)} parameter of GatePolicy")


def _choice(raw: Any, key: str, section: str | None, options: Sequence[str]) -> str:
    text = str(raw).strip()
    if text not in options:
        raise SpecError(
            f"The {_where(section, key)} parameter of GatePolicy must be one of {list(options)}. Got {raw!r} instead."
        )
    return text


def _names(raw: Any, key: str, section: str | None) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [p for p in (s.strip() for s in raw.split(",")) if p]
    if not isinstance(raw, Sequence) or any(not isinstance(v, str) or not v for v in raw):
        raise SpecError(
            f"The {_where(section, key)} parameter of GatePolicy must be a list of names. Got {raw!r} instead."
        )
    return tuple(dict.fromkeys(raw))


def _metric_name(raw: Any, key: str, section: str | None) -> str:
    return gm.metric(str(raw), where=f"{_where(section, key)} parameter of GatePolicy").name


def _section(raw: Any, key: str, allowed: Sequence[str]) -> dict[str, Any]:
    if raw is None:
        return {}
    if isinstance(raw, bool):  # "bootstrap: true" turns a section on with its defaults
        return {"enabled": raw}
    if not isinstance(raw, Mapping):
        raise SpecError(f"The '{key}' section of GatePolicy must be a mapping. Got {raw!r} instead.")
    unknown = sorted(set(map(str, raw)) - set(allowed))
    if unknown:
        raise SpecError(
            f"Unknown key(s) {unknown} in the '{key}' section of GatePolicy. Expected any of {list(allowed)}."
        )
    return {str(k): v for k, v in raw.items()}


# -- the policy -------------------------------------------------------------------------------------
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
    """A simple model that the candidate must beat.

    :param enabled: run the check (on by default).
    :param kind: ``prior`` (class frequencies), ``mean`` (regression), ``linear`` (logistic or ridge
        regression on the model's features) or ``auto`` (prior for classifiers, mean for regressors).
    :param metrics: metrics compared; the primary metric, plus ``log_loss`` for classifiers (a constant
        predictor has an AUC of exactly 0.5, so only a proper scoring rule tells it apart).
    :param margin: how far the baseline may be ahead before the candidate fails.
    :param fit_on: ``train_sample`` (default): the baseline learns from the candidate run's training
        sample (the reference artifact), the same rows the candidate learned from; ``evaluation``: it is
        cross-fitted on the evaluation rows, which lets it know the evaluation period (stricter). Runs
        without a training sample fall back to ``evaluation``, and the decision says so.
    :param folds: folds of the cross-fitting on the evaluation rows.
    """

    enabled: bool = True
    kind: Literal["auto", "prior", "mean", "linear"] = "auto"
    metrics: tuple[str, ...] = ()
    margin: float = 0.0
    fit_on: Literal["train_sample", "evaluation"] = "train_sample"
    folds: int = 5
    seed: int = 0

    KEYS = ("enabled", "kind", "metrics", "margin", "fit_on", "folds", "seed")

    @classmethod
    def from_mapping(cls, raw: Any) -> BaselinePolicy:
        values = _section(raw, "baseline", cls.KEYS)
        kind = _choice(values.get("kind", "auto"), "kind", "baseline", ("auto", "prior", "mean", "linear"))
        return cls(
            enabled=_boolean(values.get("enabled", True), "enabled", "baseline"),
            kind=cast(Literal["auto", "prior", "mean", "linear"], kind),
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
        )


@dataclass(frozen=True)
class GatePolicy:
    """How the gate decides. Build it with :meth:`from_mapping`; every value is coerced and checked.

    :param primary_metric: the metric of record; when omitted, the training spec's ``primary_metric``
        (else ``roc_auc`` for binary, ``log_loss`` for multiclass, ``rmse`` for regression). Slices,
        non-regression and the baseline use it by default.
    :param floors: ``{metric: bound}`` absolute bounds (a ceiling for lower-is-better metrics).
    :param compare_metrics: metrics checked for non-regression against the champion (primary when omitted).
    :param tolerance: how much worse than the champion the candidate may be, in metric units; one
        number for all compared metrics or ``{metric: tolerance}``.
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
        tolerance_raw = raw.get("tolerance", 0.0)
        tolerance, tolerances = 0.0, {}
        if isinstance(tolerance_raw, Mapping):
            tolerances = {
                _metric_name(k, "tolerance", None): _number(v, str(k), "tolerance", minimum=0)
                for k, v in tolerance_raw.items()
            }
        else:
            tolerance = _number(tolerance_raw, "tolerance", None, minimum=0)
        primary = raw.get("primary_metric")
        budget_bytes = _optional_number(raw.get("max_model_bytes"), "max_model_bytes", None, minimum=1, integer=True)
        return cls(
            primary_metric=None if primary in (None, "") else _metric_name(primary, "primary_metric", None),
            floors=floors,
            compare_metrics=tuple(
                _metric_name(m, "compare_metrics", None)
                for m in _names(raw.get("compare_metrics"), "compare_metrics", None)
            ),
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

    def check_task(self, task: gm.Task) -> None:
        """Every metric the policy names must apply to ``task``.

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
        if self.baseline.kind == "prior" and task == "regression":
            raise SpecError("The baseline kind 'prior' applies to classifiers; use 'mean' or 'linear' for a regressor.")
        if self.baseline.kind == "mean" and task != "regression":
            raise SpecError("The baseline kind 'mean' applies to regressors; use 'prior' or 'linear' for a classifier.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
