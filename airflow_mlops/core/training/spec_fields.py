"""The values of a training spec: the validators every section uses (tasks, metrics and their directions
are defined once, in :mod:`airflow_mlops.core.metrics`, and re-exported here for the spec).

Each validator names the field it reads (``The 'split.train' field of TrainingSpec ...``), what was
given and what was expected, so a typo fails with a message that says where to look.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, cast

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_flag

TRANSFORM_KEYS = ("derived", "joins", "timezones")  # keys of the features section read by core/features


def _where(path: str) -> str:
    return f"The '{path}' field of TrainingSpec"


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{_where(path)} must be a mapping. Got {value!r} ({type(value).__name__}) instead.")
    return value


def _reject_unknown(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        where = f"section '{path}'" if path else "TrainingSpec"
        raise SpecError(f"Unknown field(s) {unknown} in {where}. Allowed fields: {sorted(allowed)}.")


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{_where(path)} must be a non-empty string. Got {value!r} instead.")
    return value.strip()


def _names(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SpecError(f"{_where(path)} must be a list of column names. Got {value!r} instead.")
    names = tuple(_text(v, path) for v in value)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"{_where(path)} lists column(s) {duplicates} more than once.")
    return names


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{_where(path)} must be a number. Got {value!r} instead.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{_where(path)} must be a number. Got {value!r} instead.") from None
    if not math.isfinite(number):
        raise SpecError(f"{_where(path)} must be a finite number. Got {value!r} instead.")
    return number


def _integer(value: Any, path: str, minimum: int, maximum: int | None = None) -> int:
    number = _number(value, path)
    upper = "" if maximum is None else f" and <= {maximum}"
    if number != int(number) or number < minimum or (maximum is not None and number > maximum):
        raise SpecError(f"{_where(path)} must be an integer >= {minimum}{upper}. Got {value!r} instead.")
    return int(number)


def _boolean(value: Any, path: str) -> bool:
    return parse_flag(value, _where(path))


def _class_weight(raw: Any) -> str | dict[str, float] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw.strip().lower() != "balanced":
            raise SpecError(
                f"{_where('class_weight')} must be null, 'balanced' or a mapping class -> weight. Got {raw!r}."
            )
        return "balanced"
    section = _mapping(raw, "class_weight")
    weights = {}
    for key, value in section.items():
        weight = _number(value, f"class_weight.{key}")
        if weight <= 0:
            raise SpecError(f"{_where('class_weight.' + str(key))} must be a positive number. Got {value!r} instead.")
        weights[str(key)] = weight
    if not weights:
        raise SpecError(f"{_where('class_weight')} must not be an empty mapping; use null for no weighting.")
    return weights


def _tolerance(raw: Any) -> float:
    value = _number(raw, "parity_tolerance")
    if not 0 < value <= 1e-2:
        raise SpecError(f"{_where('parity_tolerance')} must be in (0, 0.01]. Got {raw!r} instead.")
    return value


# -- refit, window and recency weights ------------------------------------------------------------
Refit = Literal["all", "train"]
REFIT_CHOICES: tuple[Refit, ...] = ("all", "train")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([hdw])\s*$", re.IGNORECASE)
_DAYS_PER_UNIT = {"h": 1 / 24, "d": 1.0, "w": 7.0}


def default_refit(split_method: str) -> Refit:
    """``all`` for a time split (the newest rows are the ones the model most needs), ``train`` otherwise."""
    return "all" if split_method == "time" else "train"


def _refit(raw: Any) -> Refit | None:
    if raw is None:
        return None
    value = raw.strip().lower() if isinstance(raw, str) else raw
    if value not in REFIT_CHOICES:
        raise SpecError(
            f"{_where('refit')} must be 'all' (refit the selected configuration on every row of the snapshot) or "
            f"'train' (register the model fitted on the train split). Got {raw!r} instead."
        )
    return cast(Refit, value)


def duration_days(text: str) -> float | None:
    """Days in a duration such as ``90d``, ``12h`` or ``4w``; None when ``text`` is not one."""
    match = _DURATION.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _DAYS_PER_UNIT[match.group(2).lower()]


def _window(raw: Any) -> int | str | None:
    """A positive number of rows, or a duration (``90d``, ``12h``, ``4w``) kept as its canonical text."""
    if raw is None:
        return None
    expected = (
        "a positive whole number of rows (such as 50000) or a duration of the time column in hours, days or "
        "weeks (such as '90d', '12h' or '4w')"
    )
    if isinstance(raw, str) and not raw.strip().isdigit():
        days = duration_days(raw)
        if days is None or days <= 0:
            raise SpecError(f"{_where('window')} must be {expected}. Got {raw!r} instead.")
        return raw.strip().lower().replace(" ", "")
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise SpecError(f"{_where('window')} must be {expected}. Got {raw!r} instead.")
    number = float(raw)
    if number != int(number) or number < 1:
        raise SpecError(f"{_where('window')} must be {expected}. Got {raw!r} instead.")
    return int(number)


def _half_life(raw: Any) -> float | None:
    """Days (a number, or a duration such as ``30d`` or ``2w``), strictly positive."""
    if raw is None:
        return None
    days = duration_days(raw) if isinstance(raw, str) and not _is_number(raw) else None
    if days is None:
        days = _number(raw, "recency_weight_half_life")
    if days <= 0:
        raise SpecError(
            f"{_where('recency_weight_half_life')} must be a positive number of days (such as 30) or a duration "
            f"(such as '30d' or '2w'). Got {raw!r} instead."
        )
    return days


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _features(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "features" in raw:
        if "numeric_features" in raw or "categorical_features" in raw:
            raise SpecError(
                "Give features either as 'features: {numeric, categorical}' or as top-level lists, not both."
            )
        section = _mapping(raw["features"], "features")
        _reject_unknown(section, ("numeric", "categorical", *TRANSFORM_KEYS), "features")
        return _names(section.get("numeric"), "features.numeric"), _names(
            section.get("categorical"), "features.categorical"
        )
    return _names(raw.get("numeric_features"), "numeric_features"), _names(
        raw.get("categorical_features"), "categorical_features"
    )


def declared_features(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The feature names of a spec mapping (or its ``training:`` section), without building the spec.

    Cheap (this module imports nothing heavy, not even the estimators or metrics): the pipeline file
    checks its features against its requirements with it while DAG files parse.
    """
    if "training" in raw and isinstance(raw["training"], Mapping):
        raw = raw["training"]
    numeric, categorical = _features(raw)
    return numeric + categorical
