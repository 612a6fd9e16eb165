"""The business (impact) metric of a pipeline, and whether the offline proxy metric tracks it.

A model is trained and gated on a proxy (ROC AUC, RMSE); what the business feels is the cost of the
decisions taken on its predictions. The pipeline file declares that cost once (``business:``) and
the package measures it in three places:

- at training, on the test split: ``test_<name>`` on the training run, beside ``test_roc_auc``;
- on every labelled served batch, where the drift check measures served quality: ``business.<name>``
  on the version's monitoring run, at the batch's step, beside ``quality.<metric>``;
- across the labelled batches of every champion so far, :func:`proxy_correlation` asks whether the
  proxy still ranks batches and models the way the business metric does.

Two kinds of metric, both a cost (lower is better; a negative cost is a gain) per ``per_rows`` rows:

- binary, a **cost matrix** at a decision ``threshold``: the business acts on a row when the
  probability of the positive class is at least the threshold, and each of the four outcomes has a
  cost (``false_negative``: a positive it did not act on; ``false_positive``: an action for
  nothing; ``true_positive``, ``true_negative``);
- regression, a **cost per unit of error**: ``under`` for each unit predicted below the truth,
  ``over`` for each unit above it.

Everything here is pure: numbers in, numbers or a :class:`~airflow_mlops.core.monitoring.findings.Finding` out.
Parsing is cheap (the standard library only), because DAG files read pipeline files when they parse.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_number

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.core.monitoring import Finding

SERIES_PREFIX = "business."  # on the monitoring run of a served version, per labelled batch
TRAINING_PREFIX = "test_"  # on the training run, computed on the test split
OUTCOMES = ("true_positive", "false_positive", "false_negative", "true_negative")
ERRORS = ("under", "over")
_KEYS = ("name", "unit", "per_rows", "threshold", "costs")  # the pipeline file adds "check" and "outcome"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _reserved_names() -> set[str]:
    """Names that would shadow a metric training or drift already logs. Imported here, not at the top:
    pipeline files are read at every DAG parse, and the training spec module is not needed for that."""
    from airflow_mlops.core.metrics import METRIC_DIRECTIONS

    return {m for metrics in METRIC_DIRECTIONS.values() for m in metrics} | {"positive_rate", "labelled_rows"}


@dataclass(frozen=True)
class BusinessValue:
    """The business metric measured on some rows, with the counts it came from."""

    name: str
    value: float | None
    rows: int
    counts: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "rows": self.rows, "counts": dict(self.counts)}


@dataclass(frozen=True)
class BusinessMetric:
    """What the decisions taken on a model's predictions cost, per ``per_rows`` rows (lower is better).

    :param name: metric name: logged as ``test_<name>`` at training and ``business.<name>`` per batch.
    :param task: ``binary`` (a cost matrix at ``threshold``) or ``regression`` (a cost per unit of error).
    :param costs: binary: ``true_positive``, ``false_positive``, ``false_negative``, ``true_negative``
        (a missing outcome costs 0); regression: ``under`` and ``over``, per unit of error.
    :param threshold: binary: the business acts on rows whose positive-class probability is at least this.
    :param per_rows: the cost is reported per this many rows (``1000``: per 1,000 flights).
    :param unit: what a cost is counted in, for people (``USD``).
    """

    name: str
    task: str
    costs: dict[str, float]
    threshold: float | None = None
    per_rows: int = 1
    unit: str = ""

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None, task: str) -> BusinessMetric:
        """Validate a pipeline file's ``business`` section (without its ``check``) for a training task.

        :raises SpecError: naming the key that is wrong and what was expected.
        """
        if not isinstance(raw, Mapping):
            raise SpecError(f"The business metric must be a mapping with {list(_KEYS)}. Got {raw!r} instead.")
        unknown = sorted(str(k) for k in raw if k not in _KEYS)
        if unknown:
            raise SpecError(f"The business metric has unknown key(s) {unknown}; allowed: {list(_KEYS)}.")
        if task not in ("binary", "regression"):
            raise SpecError(
                f"A business metric is defined for 'binary' (cost matrix) and 'regression' (cost per unit of "
                f"error) models. The training task is {task!r}."
            )
        name = str(raw.get("name", "")).strip()
        reserved = _reserved_names()
        if not _NAME.fullmatch(name) or name in reserved:
            raise SpecError(
                "The business metric's 'name' must be lower-case letters, digits and '_', starting with a letter, "
                f"and not a metric training already logs ({sorted(reserved)}). Got {raw.get('name')!r} instead."
            )
        costs_raw = raw.get("costs")
        if not isinstance(costs_raw, Mapping) or not costs_raw:
            raise SpecError(f"The business metric {name!r} needs 'costs', a mapping. Got {costs_raw!r} instead.")
        allowed = OUTCOMES if task == "binary" else ERRORS
        wrong = sorted(str(k) for k in costs_raw if k not in allowed)
        if wrong:
            raise SpecError(
                f"The costs of the business metric {name!r} ({task}) must be among {list(allowed)}. Got {wrong}."
            )
        costs = {key: _cost(costs_raw.get(key, 0.0), key, name) for key in allowed}
        if task == "regression" and (costs["under"] < 0 or costs["over"] < 0):
            raise SpecError(f"The error costs of {name!r} must be >= 0: an error is never a gain. Got {costs}.")
        if not any(costs.values()):
            raise SpecError(f"Every cost of the business metric {name!r} is 0: it would measure nothing.")
        threshold = None
        if task == "binary":
            threshold = parse_number(raw.get("threshold", 0.5), "threshold", low=0.0, high=1.0)
        elif raw.get("threshold") is not None:
            raise SpecError(f"'threshold' applies to binary models; {name!r} is a regression cost.")
        per_rows = int(parse_number(raw.get("per_rows", 1), "per_rows", low=1, integer=True))
        return cls(name, task, costs, threshold, per_rows, str(raw.get("unit") or "").strip())

    def to_dict(self) -> dict[str, Any]:
        """The mapping :meth:`from_mapping` reads back (what operators receive as an argument)."""
        out: dict[str, Any] = {"name": self.name, "costs": dict(self.costs), "per_rows": self.per_rows}
        if self.threshold is not None:
            out["threshold"] = self.threshold
        if self.unit:
            out["unit"] = self.unit
        return out

    @property
    def series_key(self) -> str:
        """The MLflow key of the per-batch series on a monitoring run."""
        return f"{SERIES_PREFIX}{self.name}"

    @property
    def training_key(self) -> str:
        """The MLflow key on the training run (test split)."""
        return f"{TRAINING_PREFIX}{self.name}"

    def describe(self) -> str:
        """One line for people: what is counted, per how many rows."""
        unit = f" {self.unit}" if self.unit else ""
        per = f" per {self.per_rows:,} rows" if self.per_rows != 1 else " per row"
        if self.task == "binary":
            parts = ", ".join(f"{k} {v:g}" for k, v in self.costs.items() if v)
            return f"{self.name}: cost{unit}{per} of acting at probability >= {self.threshold:g} ({parts})"
        return f"{self.name}: cost{unit}{per} of {self.costs['under']:g} per unit under, {self.costs['over']:g} over"

    def evaluate(self, truth: np.ndarray, predicted: np.ndarray) -> BusinessValue:
        """The cost of ``predicted`` against ``truth``; rows where either is missing are left out.

        :param truth: binary: whether each row is of the positive class (bool, or 0/1 with NaN for
            unknown); regression: the true values.
        :param predicted: binary: the positive-class probability; regression: the predicted values.
        """
        import numpy as np

        truth_values = np.asarray(truth, dtype="float64")
        scores = np.asarray(predicted, dtype="float64")
        if truth_values.shape != scores.shape:
            raise SpecError(f"{self.name}: {truth_values.shape[0]} truths for {scores.shape[0]} predictions.")
        keep = np.isfinite(truth_values) & np.isfinite(scores)
        truth_values, scores = truth_values[keep], scores[keep]
        rows = int(truth_values.size)
        if self.task == "binary":
            positive = truth_values > 0.5
            acted = scores >= float(self.threshold if self.threshold is not None else 0.5)
            counts = {
                "true_positive": float(np.sum(acted & positive)),
                "false_positive": float(np.sum(acted & ~positive)),
                "false_negative": float(np.sum(~acted & positive)),
                "true_negative": float(np.sum(~acted & ~positive)),
            }
            total = sum(self.costs[k] * counts[k] for k in OUTCOMES)
        else:
            error = scores - truth_values
            counts = {"under": float(np.sum(np.clip(-error, 0, None))), "over": float(np.sum(np.clip(error, 0, None)))}
            total = self.costs["under"] * counts["under"] + self.costs["over"] * counts["over"]
        value = None if rows == 0 else float(total / rows * self.per_rows)
        return BusinessValue(self.name, value, rows, counts)


def _cost(raw: Any, key: str, name: str) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(raw, bool) or not math.isfinite(value):
        raise SpecError(f"The cost '{key}' of the business metric {name!r} must be a finite number. Got {raw!r}.")
    return value


# -- does the proxy track the business metric? ------------------------------------------------------------
@dataclass(frozen=True)
class ProxyCheck:
    """When :func:`proxy_correlation` judges, and what it expects.

    :param min_batches: labelled batches needed before a correlation is judged.
    :param min_correlation: the weakest Spearman correlation accepted between the proxy and the
        business metric, both oriented so that higher is better; below it (or wrong-signed) alerts.
    :param min_models: distinct served versions needed before the training-time proxy is judged
        (with one model every batch has the same offline value: nothing to rank).
    :param window: only the last ``window`` labelled batches count, so that an old agreement does
        not hide a recent break.
    """

    min_batches: int = 5
    min_correlation: float = 0.3
    min_models: int = 3
    window: int = 24

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None) -> ProxyCheck:
        raw = dict(raw or {})
        unknown = sorted(str(k) for k in raw if k not in cls.__dataclass_fields__)
        if unknown:
            raise SpecError(
                f"The proxy correlation check has unknown key(s) {unknown}; allowed: {list(cls.__dataclass_fields__)}."
            )
        return cls(
            min_batches=int(parse_number(raw.get("min_batches", cls.min_batches), "min_batches", low=3, integer=True)),
            min_correlation=parse_number(
                raw.get("min_correlation", cls.min_correlation), "min_correlation", low=-1.0, high=1.0
            ),
            min_models=int(parse_number(raw.get("min_models", cls.min_models), "min_models", low=2, integer=True)),
            window=int(parse_number(raw.get("window", cls.window), "window", low=3, integer=True)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class LabelledBatch:
    """One labelled served batch: the version that served it, when, the proxy and the business metric.

    :param served: the proxy measured on the batch's labels (``quality.<metric>``).
    :param offline: the serving version's proxy on its test split at training (``test_<metric>``).
    :param business: the business metric measured on the batch (``business.<name>``).
    """

    version: str
    step: int
    served: float | None
    offline: float | None
    business: float

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (average ranks for ties); None when either side is constant."""
    import numpy as np

    def ranks(values: Sequence[float]) -> np.ndarray:
        array = np.asarray(values, dtype="float64")
        order = np.argsort(array, kind="mergesort")
        ranked = np.empty(len(array))
        ranked[order] = np.arange(1, len(array) + 1)
        for value in np.unique(array):  # ties share the mean of their ranks
            tied = array == value
            ranked[tied] = ranked[tied].mean()
        return ranked

    rx, ry = ranks(x), ranks(y)
    if len(rx) < 2 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return None
    return float(np.corrcoef(rx, ry)[0, 1])


def proxy_correlation(
    batches: Sequence[LabelledBatch],
    *,
    metric: str,
    higher_is_better: bool,
    business: str,
    check: ProxyCheck,
    business_higher_is_better: bool = False,
) -> Finding:
    """Whether the proxy ``metric`` tracks the ``business`` cost across labelled batches (or, with
    ``business_higher_is_better``, a measured outcome where more is better: see
    :mod:`~airflow_mlops.core.pipeline.outcome`).

    Two rank correlations over the last ``check.window`` batches, each with the proxy oriented so that
    higher is better and the cost negated (an outcome kept as it is), so that a proxy that tracks the
    business gives a positive correlation:

    - *served*: the proxy measured on each batch against the business metric of that batch (does a
      batch where the proxy says the model did well cost less?), judged from ``min_batches`` batches;
    - *offline*: the training-time proxy of the version that served each batch against the business
      metric of the batch (does a model that scored better offline cost less online?), judged once
      ``min_models`` versions have served.

    An alert when a judged correlation is below ``min_correlation``: the proxy no longer tells the
    business how the model is doing. A side whose values are all equal cannot be ranked: not judged.
    """
    usable = sorted((b for b in batches if math.isfinite(b.business)), key=lambda b: b.step)[-check.window :]
    sign, business_sign = (1.0 if higher_is_better else -1.0), (1.0 if business_higher_is_better else -1.0)
    details: dict[str, Any] = {
        "metric": metric,
        "business": business,
        "higher_is_better": higher_is_better,
        "business_higher_is_better": business_higher_is_better,
        **check.to_dict(),
        "batches": [b.to_dict() for b in usable],
        "versions": sorted({b.version for b in usable}, key=lambda v: (len(v), v)),
    }
    judged: dict[str, float] = {}
    notes: list[str] = []
    for side, needs_models in (("served", 1), ("offline", check.min_models)):
        details[side], rho, note = _rank_side(
            usable, side, needs_models=needs_models, signs=(sign, business_sign), check=check, metric=metric,
            business=business,
        )  # fmt: skip
        if note is not None:
            notes.append(note)
        elif rho is not None:
            judged[side] = rho
    details["judged"] = judged
    return _proxy_finding(judged, notes, details, metric=metric, business=business, check=check)


def _rank_side(
    usable: Sequence[LabelledBatch],
    side: str,
    *,
    needs_models: int,
    signs: tuple[float, float],
    check: ProxyCheck,
    metric: str,
    business: str,
) -> tuple[dict[str, Any], float | None, str | None]:
    """One side (``served`` or ``offline``) of :func:`proxy_correlation`: its summary, its rank
    correlation, and a note saying why it cannot be judged (None when it can)."""
    pairs = [(getattr(b, side), b.business, b.version) for b in usable]
    pairs = [(p, c, v) for p, c, v in pairs if p is not None and math.isfinite(p)]
    models = len({v for _, _, v in pairs})
    sign, business_sign = signs  # both oriented so that higher is better
    rho = spearman([sign * p for p, _, _ in pairs], [business_sign * c for _, c, _ in pairs]) if pairs else None
    summary = {"batches": len(pairs), "models": models, "spearman": rho}
    if len(pairs) < check.min_batches:
        return summary, rho, f"{side}: {len(pairs)} labelled batch(es), {check.min_batches} needed"
    if models < needs_models:
        return summary, rho, f"{side}: {models} model(s) served, {needs_models} needed"
    if rho is None:
        return summary, rho, f"{side}: the {metric} or {business} values are all equal, nothing to rank"
    return summary, rho, None


def _proxy_finding(
    judged: Mapping[str, float],
    notes: Sequence[str],
    details: dict[str, Any],
    *,
    metric: str,
    business: str,
    check: ProxyCheck,
) -> Finding:
    """The verdict of :func:`proxy_correlation` from its judged sides and the notes on the others."""
    from airflow_mlops.core.monitoring import Finding

    weak = {side: rho for side, rho in judged.items() if rho < check.min_correlation}
    text = "; ".join(
        [f"{side} {metric} vs {business}: Spearman {rho:+.2f} over {details[side]['batches']} batches"
         for side, rho in judged.items()] + list(notes)
    )  # fmt: skip
    if weak:
        listed = ", ".join(f"{side} {rho:+.2f}" for side, rho in weak.items())
        message = (
            f"The proxy {metric} does not track the business metric {business} (Spearman {listed}, "
            f"at least {check.min_correlation:+.2f} expected): {text}."
        )
        return Finding("proxy_correlation", "alert", message, details)
    if not judged:
        return Finding("proxy_correlation", "ok", f"Not judged yet: {text}.", details)
    return Finding("proxy_correlation", "ok", f"{metric} tracks {business}: {text}.", details)
