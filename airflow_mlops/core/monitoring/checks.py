"""Production-readiness checks (the monitoring tests of the ML Test Score), as pure functions.

Each check takes plain values (timestamps, arrays, version maps, schemas, a metric history) and
returns a :class:`Finding`: ``ok``, ``warn`` (worth a notification, the pipeline goes on) or
``alert`` (notify, and the operator fails the batch where the issue says so). Fetching those values
from MLflow and storage is :mod:`airflow_mlops.core.monitoring.facts`'s job, so every rule here is
testable without a registry.

- :func:`check_staleness`: the champion's age and the data's age against configured limits.
- :func:`check_finite` / :func:`check_metrics_finite`: NaN or infinity in features, predictions or
  the training run's losses.
- :func:`check_performance`: a run's throughput or duration against the trailing median of earlier runs.
- :func:`check_dependencies`: package versions recorded with a model against the serving environment.
- :func:`check_schema_change`: a source's columns and types against those the champion was trained on.
- :func:`check_feature_importance`: features that carry (almost) none of the model's importance.
- :func:`staleness_impact`: how fast served quality decays with the age of the training data.
- :func:`check_personal_data`: text columns that look like personal data.
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core.errors import SpecError

if TYPE_CHECKING:
    import numpy as np

Severity = Literal["ok", "warn", "alert"]
SEVERITIES: tuple[Severity, ...] = ("ok", "warn", "alert")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


@dataclass(frozen=True)
class Finding:
    """The verdict of one check: its name, severity, a one-line message and JSON-able details."""

    check: str
    severity: Severity
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def is_alert(self) -> bool:
        return self.severity == "alert"

    @property
    def needs_notification(self) -> bool:
        return self.severity != "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity, "message": self.message, "details": self.details}


def worst(findings: Sequence[Finding]) -> Severity:
    """The most severe of ``findings`` (``ok`` when there are none)."""
    return max((f.severity for f in findings), key=SEVERITIES.index, default="ok")


# -- parsing helpers (templated operator arguments arrive as strings) ----------------------------------
def parse_duration(raw: Any, name: str) -> timedelta | None:
    """``None``/empty -> None; seconds as a number; or ``"<n><unit>"`` with unit s, m, h, d or w."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, timedelta):
        return raw
    if isinstance(raw, bool):
        raise SpecError(f"The {name!r} parameter must be a duration like '36h' or '7d'. Got {raw!r} instead.")
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        match = _DURATION.match(str(raw))
        if not match:
            raise SpecError(
                f"The {name!r} parameter must be a duration: seconds, or a number with a unit s, m, h, d or w "
                f"(e.g. '36h', '7d'). Got {raw!r} instead."
            )
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise SpecError(f"The {name!r} parameter must be a positive duration. Got {raw!r} instead.")
    return timedelta(seconds=seconds)


def parse_timestamp(raw: Any, name: str) -> datetime | None:
    """``None``/empty -> None; a datetime, epoch seconds, or an ISO 8601 string; naive means UTC."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime):
        value = raw
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = datetime.fromtimestamp(float(raw), tz=UTC)
    else:
        try:
            value = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SpecError(
                f"The {name!r} parameter must be an ISO 8601 timestamp or epoch seconds. Got {raw!r} instead."
            ) from exc
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_fraction(raw: Any, name: str, *, default: float) -> float:
    """A float in [0, 1] (``default`` when empty)."""
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"The {name!r} parameter must be a number in [0, 1]. Got {raw!r} instead.") from exc
    if isinstance(raw, bool) or not 0.0 <= value <= 1.0:
        raise SpecError(f"The {name!r} parameter must be a number in [0, 1]. Got {raw!r} instead.")
    return value


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600.0, 3)


# -- 1. staleness ------------------------------------------------------------------------------------
def check_staleness(
    *,
    model_created_at: datetime,
    now: datetime,
    max_model_age: timedelta | None,
    data_at: datetime | None = None,
    max_data_age: timedelta | None = None,
) -> Finding:
    """Alert when the champion is older than ``max_model_age`` or the newest data it could have
    learned from (``data_at``: the training snapshot's watermark) is older than ``max_data_age``.

    :raises SpecError: neither limit is set, or a data limit is set without a data timestamp.
    """
    if max_model_age is None and max_data_age is None:
        raise SpecError("Give 'max_model_age', 'max_data_age' or both: a staleness check needs a limit.")
    if max_data_age is not None and data_at is None:
        raise SpecError(
            "'max_data_age' is set but no data timestamp was given: pass 'data_timestamp' (for instance the "
            "ingestion receipt's source_watermark of the champion's snapshot)."
        )
    model_age = now - model_created_at
    details: dict[str, Any] = {
        "model_created_at": model_created_at.isoformat(),
        "model_age_hours": _hours(model_age),
        "max_model_age_hours": _hours(max_model_age) if max_model_age else None,
        "now": now.isoformat(),
    }
    stale = []
    if max_model_age is not None and model_age > max_model_age:
        stale.append(f"the model is {_hours(model_age):g} h old (limit {_hours(max_model_age):g} h)")
    if data_at is not None:
        data_age = now - data_at
        details.update(
            data_at=data_at.isoformat(),
            data_age_hours=_hours(data_age),
            max_data_age_hours=_hours(max_data_age) if max_data_age else None,
        )
        if max_data_age is not None and data_age > max_data_age:
            stale.append(f"its newest training data is {_hours(data_age):g} h old (limit {_hours(max_data_age):g} h)")
    details["stale"] = bool(stale)
    if stale:
        return Finding("staleness", "alert", "Stale model: " + "; ".join(stale) + ".", details)
    return Finding("staleness", "ok", f"Model age {_hours(model_age):g} h is within limits.", details)


# -- 2. numerical stability ----------------------------------------------------------------------------
def count_non_finite(values: np.ndarray) -> tuple[int, int]:
    """``(nan, inf)`` counts of a numeric array; 0, 0 for non-numeric ones (strings cannot be NaN here)."""
    import numpy as np

    array = np.asarray(values)
    if array.dtype.kind not in "fc":
        return 0, 0
    return int(np.isnan(array).sum()), int(np.isinf(array).sum())


def check_finite(
    columns: Mapping[str, np.ndarray], *, what: str, allow_nan: Collection[str] = (), rows: int | None = None
) -> Finding:
    """Alert when a column holds infinity, or NaN where NaN is not allowed.

    Missing values in a feature are ordinary tabular data (the model imputes or routes them), so the
    feature columns the model accepts missing are listed in ``allow_nan``; infinity is never allowed:
    no scaler or tree split was fitted on it. Predictions allow neither.
    """
    bad: dict[str, dict[str, int]] = {}
    for name, values in columns.items():
        nan, inf = count_non_finite(values)
        if name in allow_nan:
            nan = 0
        if nan or inf:
            bad[name] = {"nan": nan, "inf": inf}
    details: dict[str, Any] = {"what": what, "columns_checked": len(columns), "non_finite": bad}
    if rows is not None:
        details["rows"] = rows
    if bad:
        listed = ", ".join(f"{name} ({c['nan']} NaN, {c['inf']} inf)" for name, c in sorted(bad.items()))
        return Finding("numerical_stability", "alert", f"Non-finite values in the {what}: {listed}.", details)
    return Finding("numerical_stability", "ok", f"All {len(columns)} column(s) of the {what} are finite.", details)


def check_metrics_finite(metrics: Mapping[str, float], required: Sequence[str], *, what: str) -> Finding:
    """Alert when a logged metric is NaN/inf, or a required one (a loss) is missing.

    Training leaves a metric out rather than logging NaN, so a missing loss means it was not finite.
    """
    bad = sorted(k for k, v in metrics.items() if not math.isfinite(float(v)))
    missing = sorted(k for k in required if k not in metrics)
    details = {"what": what, "non_finite": bad, "missing": missing, "checked": len(metrics)}
    if bad or missing:
        parts = []
        if bad:
            parts.append(f"non-finite metric(s) {bad}")
        if missing:
            parts.append(f"missing loss metric(s) {missing} (left out when NaN)")
        return Finding("numerical_stability", "alert", f"The {what} has " + " and ".join(parts) + ".", details)
    return Finding("numerical_stability", "ok", f"All {len(metrics)} metric(s) of the {what} are finite.", details)


def loss_metrics(task: str) -> list[str]:
    """The loss metrics a training run of ``task`` logs for each split."""
    loss = "rmse" if task == "regression" else "log_loss"
    return [f"{split}_{loss}" for split in ("train", "validation", "test")]


# -- 3. computational performance ----------------------------------------------------------------------
def check_performance(
    history: Sequence[float],
    current: float,
    *,
    metric: str,
    higher_is_better: bool,
    max_drop: float,
    window: int = 10,
    min_history: int = 3,
) -> Finding:
    """Compare ``current`` with the median of the last ``window`` values of ``history``.

    The drop is relative: ``(median - current) / median`` when higher is better (throughput),
    ``(current - median) / median`` when lower is better (seconds). Above ``max_drop`` is an alert.
    With fewer than ``min_history`` earlier values there is no baseline yet: ``ok``, said so.
    """
    if window < 1 or min_history < 1:
        raise SpecError(f"'window' and 'min_history' must be at least 1. Got {window} and {min_history}.")
    if not math.isfinite(current):
        return Finding("performance", "alert", f"{metric} is not a finite number ({current}).", {"metric": metric})
    earlier = [float(v) for v in history if math.isfinite(float(v))][-window:]
    details: dict[str, Any] = {
        "metric": metric,
        "current": current,
        "history_points": len(earlier),
        "higher_is_better": higher_is_better,
        "max_drop": max_drop,
    }
    if len(earlier) < min_history:
        message = f"{metric} = {current:.4g}; {len(earlier)} earlier run(s), {min_history} needed for a baseline."
        return Finding("performance", "ok", message, details)
    median = statistics.median(earlier)
    if median == 0:
        drop = 0.0 if current == 0 else (math.inf if not higher_is_better else 0.0)
    else:
        drop = (median - current) / abs(median) if higher_is_better else (current - median) / abs(median)
    details.update(trailing_median=median, drop=round(drop, 4))
    direction = "below" if higher_is_better else "above"
    text = f"{metric} = {current:.4g}, {abs(drop):.1%} {direction if drop > 0 else 'better than'} the trailing median"
    text += f" {median:.4g} of {len(earlier)} run(s)"
    if drop > max_drop:
        return Finding("performance", "alert", f"Performance drop: {text} (limit {max_drop:.0%}).", details)
    return Finding("performance", "ok", text + ".", details)


# -- 4. dependencies and upstream schema ----------------------------------------------------------------
def installed_versions(names: Collection[str]) -> dict[str, str | None]:
    """The version of each distribution installed here (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def _release(text: str | None) -> tuple[str, ...]:
    return tuple((text or "").split("+", 1)[0].split(".")[:2])


def check_dependencies(
    recorded: Mapping[str, str], current: Mapping[str, str | None], *, packages: Collection[str] | None = None
) -> Finding:
    """Warn when packages recorded with a model (``trained_with`` of the training spec artifact) differ
    from the serving environment's; a different major.minor release, or a missing package, is named.

    :param packages: the packages to compare (all recorded ones when None).
    """
    names = sorted(packages if packages is not None else recorded)
    unknown = [n for n in names if n not in recorded]
    changed: dict[str, dict[str, Any]] = {}
    for name in names:
        if name in unknown:
            continue
        before, after = recorded[name], current.get(name)
        if before != after:
            changed[name] = {
                "recorded": before,
                "serving": after,
                "release_changed": _release(before) != _release(after),
            }
    details = {"compared": names, "changed": changed, "not_recorded": unknown}
    if not changed:
        return Finding(
            "dependencies", "ok", f"The {len(names) - len(unknown)} recorded package version(s) match.", details
        )
    listed = ", ".join(f"{n} {c['recorded']} -> {c['serving'] or 'not installed'}" for n, c in changed.items())
    return Finding("dependencies", "warn", f"Serving environment differs from the model's: {listed}.", details)


def check_schema_change(
    before: Mapping[str, str], after: Mapping[str, str], *, features: Collection[str] = ()
) -> Finding:
    """Compare a source's ``{column: type}`` with the one the champion was trained on.

    A removed or retyped model feature is an ``alert`` (scoring would fail or mis-read it); any other
    change (a new column, a non-feature column gone) is a ``warn``: upstream changed, people should know.
    """
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    retyped = {
        c: {"before": before[c], "after": after[c]} for c in sorted(set(before) & set(after)) if before[c] != after[c]
    }
    breaking = sorted((set(removed) | set(retyped)) & set(features))
    details = {"added": added, "removed": removed, "retyped": retyped, "breaking_features": breaking}
    if not (added or removed or retyped):
        return Finding("source_schema", "ok", f"The source schema ({len(after)} columns) is unchanged.", details)
    parts = [
        f"{label} {names}"
        for label, names in (("added", added), ("removed", removed), ("retyped", sorted(retyped)))
        if names
    ]
    message = "Upstream source schema changed: " + "; ".join(parts) + "."
    if breaking:
        return Finding("source_schema", "alert", message + f" Model feature(s) affected: {breaking}.", details)
    return Finding("source_schema", "warn", message, details)


# -- features earn their place ---------------------------------------------------------------------------
def check_feature_importance(importance: Mapping[str, float], *, min_share: float) -> Finding:
    """Warn about features whose share of the model's total importance (LightGBM split gain, or the
    estimator's own importances, normalised to sum 1 by training) is below ``min_share``: they cost
    an input column, validation and drift checks, and buy (almost) nothing. A review decides whether to
    drop them; the check makes sure the question is asked at every training.

    :raises SpecError: the importance is empty (the estimator exposes none).
    """
    if not importance:
        raise SpecError("The run records no feature importance: this estimator exposes none.")
    weak = {name: round(float(share), 6) for name, share in importance.items() if float(share) < min_share}
    details = {"min_share": min_share, "importance": dict(importance), "weak": weak}
    if weak:
        listed = ", ".join(f"{name} ({share:.2%})" for name, share in sorted(weak.items(), key=lambda kv: kv[1]))
        message = (
            f"{len(weak)} of {len(importance)} feature(s) carry under {min_share:.1%} of the importance: {listed}."
        )
        return Finding("feature_importance", "warn", message, details)
    return Finding(
        "feature_importance", "ok", f"All {len(importance)} features carry at least {min_share:.1%}.", details
    )


# -- the impact of staleness --------------------------------------------------------------------------
def staleness_impact(
    points: Sequence[tuple[float, float]],
    *,
    metric: str,
    higher_is_better: bool,
    max_loss_per_30_days: float,
    min_points: int = 3,
) -> Finding:
    """Measure how fast served quality decays with the age of the data the model learned from.

    :param points: ``(age_days, quality)`` of labelled batches: the age of the model's newest training
        data when the batch was served, and the quality measured on that batch's labels.
    :param max_loss_per_30_days: quality lost per 30 days of staleness (a least-squares slope) above
        which the finding is an alert: the model should be retrained more often than it is.

    With fewer than ``min_points`` batches, or all at one age, there is nothing to fit: ``ok``, said so.
    """
    import numpy as np

    clean = [(float(a), float(q)) for a, q in points if math.isfinite(float(a)) and math.isfinite(float(q))]
    details: dict[str, Any] = {
        "metric": metric,
        "points": [{"age_days": round(a, 2), "quality": q} for a, q in clean],
        "higher_is_better": higher_is_better,
        "max_loss_per_30_days": max_loss_per_30_days,
    }
    ages = np.array([a for a, _ in clean])
    if len(clean) < min_points or np.ptp(ages) == 0:
        message = f"{len(clean)} labelled batch(es) at {len(set(ages.tolist()))} age(s): too few to measure decay."
        return Finding("staleness_impact", "ok", message, details)
    slope = float(np.polyfit(ages, np.array([q for _, q in clean]), 1)[0])
    loss = (-slope if higher_is_better else slope) * 30.0
    details.update(slope_per_day=slope, loss_per_30_days=loss, age_span_days=[float(ages.min()), float(ages.max())])
    text = (
        f"{metric} changes by {slope * 30:+.4f} per 30 days of staleness over {len(clean)} labelled batches "
        f"aged {ages.min():.0f}-{ages.max():.0f} days"
    )
    if loss > max_loss_per_30_days:
        return Finding("staleness_impact", "alert", f"{text}: more than {max_loss_per_30_days:g} lost.", details)
    return Finding("staleness_impact", "ok", text + ".", details)


# -- personal data in a snapshot ----------------------------------------------------------------------------
_PII_PATTERNS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$"),
    "phone": re.compile(r"^\+?\d{1,3}?[\s.-]?\(?\d{2,4}\)?[\s.-]\d{3,4}[\s.-]\d{3,4}$"),
    "payment_card": re.compile(r"^\d{4}[\s-]?\d{4}[\s-]?\d{4}[\s-]?\d{1,7}$"),
    "us_ssn": re.compile(r"^\d{3}-\d{2}-\d{4}$"),
    "ipv4": re.compile(r"^(?:\d{1,3}\.){3}\d{1,3}$"),
}
_PII_NAMES = re.compile(
    r"(^|_)(e?mail|phone|mobile|ssn|passport|birth|dob|address|"
    r"(first|last|full|given|family|passenger|customer|user|person|patient)_?name)($|_)"
)


def _luhn(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(reversed(digits)))
    return len(digits) >= 13 and total % 10 == 0


def check_personal_data(
    columns: Mapping[str, Sequence[Any]], *, allow: Collection[str] = (), min_share: float = 0.05
) -> Finding:
    """Alert when a text column looks like personal data: its name (``email``, ``phone``, ``first_name``
    ...) or the share of its values matching an email, phone, payment card (Luhn-checked), US SSN or
    IPv4 pattern (at least ``min_share`` of the non-empty values). Columns in ``allow`` were reviewed
    and are skipped. A detector, not an access control: it keeps such columns from flowing into
    training snapshots and serving logs unnoticed.
    """
    found: dict[str, dict[str, Any]] = {}
    for name, values in columns.items():
        if name in allow:
            continue
        texts = [str(v).strip() for v in values if v is not None and str(v).strip() not in ("", "nan", "None")]
        hits: dict[str, float] = {}
        for kind, pattern in _PII_PATTERNS.items():
            matched = [t for t in texts if pattern.match(t) and (kind != "payment_card" or _luhn(t))]
            if texts and len(matched) / len(texts) >= min_share:
                hits[kind] = round(len(matched) / len(texts), 4)
        if hits or _PII_NAMES.search(name.lower()):
            found[name] = {"patterns": hits, "name_suggests_personal_data": bool(_PII_NAMES.search(name.lower()))}
    details = {"columns_checked": len(columns), "allowed": sorted(allow), "suspect": found, "min_share": min_share}
    if found:
        listed = ", ".join(f"{n} ({', '.join(c['patterns']) or 'by name'})" for n, c in sorted(found.items()))
        return Finding("personal_data", "alert", f"Column(s) that look like personal data: {listed}.", details)
    return Finding("personal_data", "ok", f"No personal data pattern in {len(columns)} text column(s).", details)
