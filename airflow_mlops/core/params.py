"""Parsing of operator arguments and spec values that may arrive rendered as strings.

A templated argument (``force="{{ params.force }}"``) reaches ``execute`` as the string ``"True"``;
a value from ``dag_run.conf`` or a YAML file may be a real boolean. Every yes/no parameter of the
package goes through :func:`parse_flag`, so all of them accept the same spellings; every bounded number
through :func:`parse_number`, or :func:`parse_integer` where the message names the parameter's owner.
"""

from __future__ import annotations

import math
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
