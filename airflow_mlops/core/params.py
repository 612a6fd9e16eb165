"""Parsing of operator arguments and spec values that may arrive rendered as strings.

A templated argument (``force="{{ params.force }}"``) reaches ``execute`` as the string ``"True"``;
a value from ``dag_run.conf`` or a YAML file may be a real boolean. Every yes/no parameter of the
package goes through :func:`parse_flag`, so all of them accept the same spellings; every bounded number
through :func:`parse_number`, or :func:`parse_integer` where the message names the parameter's owner.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow_mlops.core.errors import SpecError

TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "off", "", "none"})


def parse_flag(raw: Any, described: str) -> bool:
    """``raw`` as a boolean.

    :param described: how the message names the parameter, e.g. ``"The 'force' argument"``.
    :raises SpecError: for anything but a boolean or one of :data:`TRUE_WORDS` / :data:`FALSE_WORDS`
        (any case, surrounding spaces ignored).
    """
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise SpecError(f"{described} must be true or false. Got {raw!r} instead.")


def _as_float(raw: Any) -> float:
    """``raw`` as a float; NaN, which is outside every bound, when it is not a number."""
    try:
        return float(raw)
    except (TypeError, ValueError):
        return math.nan


def parse_number(raw: Any, name: str, *, low: float = 0.0, high: float = math.inf, integer: bool = False) -> float:
    """A number in ``[low, high]`` from a rendered argument (strings included); integral with ``integer``."""
    value = _as_float(raw)
    kind = "an integer" if integer else "a number"
    if isinstance(raw, bool) or not low <= value <= high or (integer and not value.is_integer()):
        bounds = f">= {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise SpecError(f"The {name!r} parameter must be {kind} {bounds}. Got {raw!r} instead.")
    return value


def parse_integer(raw: Any, described: str, *, low: int = 0, high: float = math.inf) -> int:
    """``raw`` as an integer in ``[low, high]``: ``5000``, ``"5000"`` and ``5000.0`` are all 5000.

    The same numbers as :func:`parse_number` with ``integer=True``, as an ``int``.

    :param described: how the message names the parameter, e.g. ``"The 'chunk_rows' parameter of IngestSpec"``.
    :raises SpecError: for a boolean, a fraction, anything that is not a number, or a number out of bounds.
    """
    value = _as_float(raw)
    if isinstance(raw, bool) or not low <= value <= high or not value.is_integer():
        bounds = f"in [{low}, {int(high)}]" if math.isfinite(high) else f">= {low}"
        raise SpecError(f"{described} must be an integer {bounds}. Got {raw!r} instead.")
    return int(value)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(raw: Any, name: str, *, allow_zero: bool = False) -> timedelta | None:
    """``None``/empty -> None; seconds as a number; or ``"<n><unit>"`` with unit s, m, h, d or w.

    :param allow_zero: accept a zero duration (a cooldown of 0 means none); otherwise it must be positive.
    """
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
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        kind = "a duration of zero or more" if allow_zero else "a positive duration"
        raise SpecError(f"The {name!r} parameter must be {kind}. Got {raw!r} instead.")
    return timedelta(seconds=seconds)


def parse_section(raw: Any, where: str, allowed: Sequence[str] | None = None) -> Mapping[str, Any]:
    """A section of a spec or pipeline file: a mapping (None reads as empty), with only ``allowed`` keys
    when given. ``where`` names the section in the error."""
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must be a mapping. Got {type(raw).__name__} {raw!r} instead.")
    if allowed is not None:
        unknown = sorted(str(k) for k in raw if k not in allowed)
        if unknown:
            raise SpecError(f"{where} has unknown key(s) {unknown}; allowed: {list(allowed)}.")
    return raw
