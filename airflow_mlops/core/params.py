"""Parsing of operator arguments and spec values that may arrive rendered as strings.

A templated argument (``force="{{ params.force }}"``) reaches ``execute`` as the string ``"True"``;
a value from ``dag_run.conf`` or a YAML file may be a real boolean. Every yes/no parameter of the
package goes through :func:`parse_flag`, so all of them accept the same spellings; every bounded number
through :func:`parse_number`.
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


def parse_number(raw: Any, name: str, *, low: float = 0.0, high: float = math.inf, integer: bool = False) -> float:
    """A number in ``[low, high]`` from a rendered argument (strings included); integral with ``integer``."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    kind = "an integer" if integer else "a number"
    if isinstance(raw, bool) or not low <= value <= high or (integer and not value.is_integer()):
        bounds = f">= {low:g}" + (f" and <= {high:g}" if math.isfinite(high) else "")
        raise SpecError(f"The {name!r} parameter must be {kind} {bounds}. Got {raw!r} instead.")
    return value
