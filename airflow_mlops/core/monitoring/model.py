"""Checks on the champion model itself: its age and its data's age (:func:`check_staleness`; what that age
costs is :mod:`~airflow_mlops.core.monitoring.staleness`), the package versions it was trained with
against the serving environment's (:func:`check_dependencies`), and features that carry (almost) none of
its importance (:func:`check_feature_importance`). Pure functions returning a
:class:`~airflow_mlops.core.monitoring.findings.Finding`."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.monitoring.findings import Finding


def _hours(delta: timedelta) -> float:
    return round(delta.total_seconds() / 3600.0, 3)


# -- staleness ------------------------------------------------------------------------------------
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


# -- dependencies -------------------------------------------------------------------------------------
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
