"""The drift check's spec: which columns to compare, with which Evidently stattest and threshold,
on how many rows, and which quality metric against which baseline."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import Task
from airflow_mlops.core.params import parse_flag, parse_number

if TYPE_CHECKING:
    from airflow_mlops.core.pipeline.business import BusinessMetric

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "prediction", "target", "input"]
Verdict = Literal["ok", "drift", "schema_skew", "insufficient_data"]
ReportMode = Literal["always", "on_alert", "never"]

# Columns of the scored output / serving log contract that are never features.
PREDICTION_COLUMN = contracts.PREDICTION_COLUMN
PROBABILITY_PREFIX = contracts.PROBABILITY_COLUMN_PREFIX
SCORING_META_COLUMNS = frozenset({"model_name", "model_version", "scored_at"})

# Evidently 0.7's registered stattests (evidently.legacy.calculations.stattests) and the column kinds
# each accepts. A test checks this table against Evidently's registry, so a name accepted here is a
# name Evidently runs.
STATTESTS: dict[str, frozenset[Kind]] = {
    "anderson": frozenset({"numeric"}),
    "chisquare": frozenset({"categorical"}),
    "cramer_von_mises": frozenset({"numeric"}),
    "ed": frozenset({"numeric"}),
    "es": frozenset({"numeric"}),
    "fisher_exact": frozenset({"categorical"}),
    "g_test": frozenset({"categorical"}),
    "hellinger": frozenset({"numeric", "categorical"}),
    "jensenshannon": frozenset({"numeric", "categorical"}),
    "kl_div": frozenset({"numeric", "categorical"}),
    "ks": frozenset({"numeric"}),
    "mannw": frozenset({"numeric"}),
    "empirical_mmd": frozenset({"numeric"}),
    "psi": frozenset({"numeric", "categorical"}),
    "t_test": frozenset({"numeric"}),
    "TVD": frozenset({"categorical"}),
    "wasserstein": frozenset({"numeric"}),
    "z": frozenset({"categorical"}),
}


# The quality metrics drift measures on a labelled batch, per task: computed by core.metrics, whose
# METRICS say which direction is better. A binary batch also reports ``positive_rate``, the share of
# positive labels: a figure of the labels, not of the model, so never a quality_metric.
QUALITY_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"),
    "multiclass": ("accuracy", "f1_macro"),
    "regression": ("rmse", "mae", "r2"),
}
# Multiclass defaults to f1_macro, not training's log_loss: a scored batch carries no class probabilities.
DEFAULT_QUALITY_METRIC: dict[str, str] = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}

_SPEC_KEYS = (
    "numeric_features", "categorical_features", "task", "target", "classes", "prediction_columns",
    "exclude_columns", "method", "num_method", "cat_method", "per_column_method", "threshold",
    "num_threshold", "cat_threshold", "per_column_threshold", "drift_share", "sample_size",
    "report_sample_size", "min_rows", "seed", "quality_metric", "quality_baseline", "html_report",
    "business_metric", "monitor_columns",
)  # fmt: skip


# -- parsing of the mapping's values ------------------------------------------------------------------
def _optional_number(raw: Any, name: str, low: float = 0.0) -> float | None:
    return None if raw is None or raw == "" else parse_number(raw, name, low=low)


def _whole(raw: Any, name: str, low: int) -> int:
    return int(parse_number(raw, name, low=low, integer=True))


def _optional_whole(raw: Any, name: str) -> int | None:
    """A row count, or None (no bound) for a null or a rendered ``"None"``."""
    return None if raw in (None, "", "none", "None") else _whole(raw, name, 1)


def _names(raw: Any, name: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, Sequence) or not all(isinstance(x, str) and x for x in raw):
        raise SpecError(f"The {name!r} parameter of DriftSpec must be a list of column names. Got {raw!r}.")
    if len(set(raw)) != len(raw):
        raise SpecError(f"The {name!r} parameter of DriftSpec names a column twice: {list(raw)!r}.")
    return tuple(raw)


def _method(raw: Any, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in STATTESTS:
        raise SpecError(
            f"The {name!r} parameter of DriftSpec must name an Evidently stattest, one of "
            f"{sorted(STATTESTS)}. Got {raw!r} instead."
        )
    return str(raw)


@dataclass(frozen=True)
class DriftSpec:
    """What to compare and how. Build it with :meth:`from_mapping` (templated values are coerced there).

    Columns default to the champion's training spec (``numeric_features``, ``categorical_features``,
    ``task``, ``target``, ``classes``); with neither, every column both sides share is compared, its
    kind taken from its type. Method and threshold resolve like Evidently's ``DataDriftPreset``:
    ``per_column_*``, then ``num_*``/``cat_*``, then ``method``/``threshold``, then Evidently's
    automatic choice and the method's default threshold.

    :param drift_share: the batch drifts when the share of drifted features reaches this.
    :param sample_size: at most this many rows per side are compared (seeded uniform sample, the
        same rows for every column); ``None`` compares every row.
    :param report_sample_size: at most this many rows per side are drawn in the HTML report's charts (its
        figures are the check's, from every compared row).
    :param min_rows: a batch with fewer rows gets the verdict ``insufficient_data``.
    :param quality_metric: the metric whose drop the policy watches (default: ``roc_auc`` for binary,
        ``f1_macro`` for multiclass, ``rmse`` for regression).
    :param quality_baseline: the baseline value of that metric. When omitted it is the champion's
        test-split value from its training spec (``metrics.test``), else computed on the reference
        (whose predictions may be in-sample, hence optimistic).
    :param business_metric: a :class:`~airflow_mlops.core.pipeline.business.BusinessMetric` mapping: measured
        with quality on a labelled batch and logged as ``business.<name>``.
    :param html_report: when the HTML pages are rendered: ``always``, ``on_alert`` (only when the check
        found a drifted column, schema skew or worse quality than the baseline) or ``never``; a flag
        reads as ``always`` (true) or ``never`` (false). The JSON summary is always written.
    :param monitor_columns: the columns the model does not read that are watched for *input drift*
        (reported, never counted in the drift share); ``None`` watches every such column both sides share.
    """

    numeric_features: tuple[str, ...] = ()
    categorical_features: tuple[str, ...] = ()
    task: Task | None = None
    target: str | None = None
    classes: tuple[str, ...] = ()
    prediction_columns: tuple[str, ...] | None = None
    exclude_columns: tuple[str, ...] = ()
    method: str | None = None
    num_method: str | None = None
    cat_method: str | None = None
    per_column_method: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    num_threshold: float | None = None
    cat_threshold: float | None = None
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    sample_size: int | None = 1_000_000
    report_sample_size: int | None = 20_000
    min_rows: int = 100
    seed: int = 0
    quality_metric: str | None = None
    quality_baseline: float | None = None
    html_report: ReportMode = "on_alert"
    quality_baseline_from: Literal["spec", "training"] | None = None
    business_metric: BusinessMetric | None = None
    monitor_columns: tuple[str, ...] | None = None

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any] | None = None, training_spec: Mapping[str, Any] | None = None
    ) -> DriftSpec:
        """Validate a user mapping (e.g. the operator's ``spec``), filling gaps from a training spec."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(_SPEC_KEYS))
        if unknown:
            raise SpecError(f"Unknown DriftSpec parameter(s) {unknown}. Allowed: {list(_SPEC_KEYS)}.")
        base = dict(training_spec or {})

        def pick(key: str) -> Any:
            return raw[key] if raw.get(key) is not None else base.get(key)

        task = _task(pick("task"))
        numeric, categorical = _features(pick("numeric_features"), pick("categorical_features"))
        quality_metric = _quality_metric(raw.get("quality_metric") or None, task, base.get("primary_metric"))
        metric = quality_metric or DEFAULT_QUALITY_METRIC.get(task or "")
        baseline, baseline_from = _quality_baseline(raw.get("quality_baseline"), metric, base)
        target = pick("target")
        predictions = raw.get("prediction_columns")
        monitored = raw.get("monitor_columns")
        return cls(
            numeric_features=numeric,
            categorical_features=categorical,
            task=task,
            target=str(target) if target else None,
            classes=_classes(pick("classes") or ()),
            prediction_columns=None if predictions is None else _names(predictions, "prediction_columns"),
            exclude_columns=_names(raw.get("exclude_columns"), "exclude_columns"),
            **_methods_and_thresholds(raw),
            **_sizes(raw),
            quality_metric=quality_metric,
            quality_baseline=baseline,
            html_report=_report_mode(raw.get("html_report")),
            quality_baseline_from=baseline_from,
            business_metric=_business_metric(raw.get("business_metric"), task),
            monitor_columns=None if monitored is None else _names(monitored, "monitor_columns"),
        )

    def method_for(self, column: str, kind: Kind) -> str | None:
        """The configured method for a column (None: Evidently's automatic choice)."""
        typed = self.num_method if kind == "numeric" else self.cat_method
        chosen = self.per_column_method.get(column, typed if typed is not None else self.method)
        if chosen is not None and kind not in STATTESTS[chosen]:
            raise SpecError(
                f"The drift method {chosen!r} configured for column {column!r} does not accept {kind} columns; "
                f"methods for {kind} columns: {sorted(m for m, k in STATTESTS.items() if kind in k)}."
            )
        return chosen

    def threshold_for(self, column: str, kind: Kind) -> float | None:
        """The configured threshold for a column (None: the method's default)."""
        if column in self.per_column_threshold:
            return self.per_column_threshold[column]
        typed = self.num_threshold if kind == "numeric" else self.cat_threshold
        return typed if typed is not None else self.threshold

    @property
    def primary_metric(self) -> str | None:
        return self.quality_metric or DEFAULT_QUALITY_METRIC.get(self.task or "")

    def to_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in (*_SPEC_KEYS, "quality_baseline_from")}
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
            elif isinstance(value, Mapping):
                out[key] = dict(value)
        if self.business_metric is not None:
            out["business_metric"] = self.business_metric.to_dict()
        return out


REPORT_MODES: tuple[ReportMode, ...] = ("always", "on_alert", "never")


def _report_mode(raw: Any) -> ReportMode:
    """``html_report``: one of :data:`REPORT_MODES`, or a flag (true: ``always``, false: ``never``)."""
    if raw is None or raw == "":
        return "on_alert"
    if isinstance(raw, str) and raw.strip().lower() in REPORT_MODES:
        return cast("ReportMode", raw.strip().lower())
    try:
        return "always" if parse_flag(raw, "html_report") else "never"
    except SpecError:
        raise SpecError(
            f"The 'html_report' parameter of DriftSpec must be one of {list(REPORT_MODES)} (or true/false). "
            f"Got {raw!r} instead."
        ) from None


def _label(value: Any) -> Any:
    """Labels compare as text; integral floats (1.0 from a nullable column) read as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _task(raw: Any) -> Task | None:
    if raw is not None and raw not in ("binary", "multiclass", "regression"):
        raise SpecError(f"The 'task' of DriftSpec must be binary, multiclass or regression. Got {raw!r}.")
    return cast("Task | None", raw)


def _features(numeric_raw: Any, categorical_raw: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    numeric = _names(numeric_raw, "numeric_features")
    categorical = _names(categorical_raw, "categorical_features")
    both = sorted(set(numeric) & set(categorical))
    if both:
        raise SpecError(f"The column(s) {both} are listed as both numeric and categorical features.")
    return numeric, categorical


def _classes(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str) or not isinstance(raw, Sequence):
        raise SpecError(f"The 'classes' of DriftSpec must be a list. Got {raw!r}.")
    return tuple(str(_label(c)) for c in raw)


def _methods_and_thresholds(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The stattest and threshold settings (Evidently's DataDriftPreset arguments), validated."""
    per_method = dict(raw.get("per_column_method") or {})
    for column, name in per_method.items():
        _method(name, f"per_column_method[{column!r}]")
    per_threshold = {
        str(c): parse_number(v, f"per_column_threshold[{c!r}]")
        for c, v in dict(raw.get("per_column_threshold") or {}).items()
    }
    return {
        "method": _method(raw.get("method"), "method"),
        "num_method": _method(raw.get("num_method"), "num_method"),
        "cat_method": _method(raw.get("cat_method"), "cat_method"),
        "per_column_method": {str(k): str(v) for k, v in per_method.items()},
        "threshold": _optional_number(raw.get("threshold"), "threshold"),
        "num_threshold": _optional_number(raw.get("num_threshold"), "num_threshold"),
        "cat_threshold": _optional_number(raw.get("cat_threshold"), "cat_threshold"),
        "per_column_threshold": per_threshold,
    }


def _sizes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The drift share rule, the sample bounds, the minimum batch and the seed."""
    return {
        "drift_share": parse_number(raw.get("drift_share", DriftSpec.drift_share), "drift_share", high=1.0),
        "sample_size": _optional_whole(raw.get("sample_size", DriftSpec.sample_size), "sample_size"),
        "report_sample_size": _optional_whole(
            raw.get("report_sample_size", DriftSpec.report_sample_size), "report_sample_size"
        ),
        "min_rows": _whole(raw.get("min_rows", DriftSpec.min_rows), "min_rows", 1),
        "seed": _whole(raw.get("seed", DriftSpec.seed), "seed", 0),
    }


def _quality_metric(raw: Any, task: Task | None, trained_on: Any) -> str | None:
    """The metric the policy watches: the one given, else the champion's own primary metric when drift
    can measure it (None: the task's default)."""
    if raw is None and task is not None and trained_on in QUALITY_METRICS[task]:
        return str(trained_on)
    if raw is not None:
        allowed = {m for metrics in QUALITY_METRICS.values() for m in metrics}
        if task is not None:
            allowed = set(QUALITY_METRICS[task])
        if raw not in allowed:
            raise SpecError(
                f"The 'quality_metric' of DriftSpec must be one of {sorted(allowed)} for task {task!r}. Got {raw!r}."
            )
    return None if raw is None else str(raw)


def _quality_baseline(
    raw: Any, metric: str | None, training_spec: Mapping[str, Any]
) -> tuple[float | None, Literal["spec", "training"] | None]:
    """The baseline given in the spec, else the champion's test-split value of the metric."""
    baseline = _optional_number(raw, "quality_baseline", low=-math.inf)
    if baseline is not None:
        return baseline, "spec"
    metrics = training_spec.get("metrics")
    held_out = metrics.get("test") if isinstance(metrics, Mapping) else None
    if metric is not None and isinstance(held_out, Mapping) and isinstance(held_out.get(metric), int | float):
        return float(held_out[metric]), "training"
    return None, None


def _business_metric(raw: Any, task: Task | None) -> BusinessMetric | None:
    if raw is None:
        return None
    from airflow_mlops.core.pipeline.business import BusinessMetric

    return BusinessMetric.from_mapping(raw, str(task))
