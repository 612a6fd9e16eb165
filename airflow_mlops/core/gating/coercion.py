"""Coercion of the gate policy's values: templated values arrive as strings (``"0.01"``, ``"true"``,
``"2%"``), and each coercion names the policy key it refused and what it expected."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core import params
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.gating import metrics as gm


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


@dataclass(frozen=True)
class Margin:
    """An amount of a metric: absolute, in metric units, or relative to the champion's value (``"2%"``).

    :param value: the amount; a fraction when ``relative`` (``"2%"`` is ``0.02``).
    :param relative: the amount is a share of the reference value (the champion's).
    """

    value: float = 0.0
    relative: bool = False

    def of(self, reference: float) -> float:
        """The amount in metric units, for a champion whose value is ``reference``."""
        return self.value * abs(reference) if self.relative else self.value

    def __str__(self) -> str:
        return f"{self.value * 100:g}%" if self.relative else f"{self.value:g}"


def _margin(raw: Any, key: str, section: str | None, default: Margin) -> Margin:
    """A number >= 0 in metric units, or a percentage such as ``"2%"`` of the champion's value."""
    if raw is None:
        return default
    text = raw.strip() if isinstance(raw, str) else None
    try:
        if text is not None and text.endswith("%"):
            return Margin(_number(text[:-1], key, section, minimum=0, maximum=100) / 100, relative=True)
        return Margin(_number(raw, key, section, minimum=0))
    except SpecError:
        raise SpecError(
            f"The {_where(section, key)} parameter of GatePolicy must be a number >= 0 in metric units, or a "
            f"percentage of the champion's value between 0% and 100% such as '2%'. Got {raw!r} instead."
        ) from None
