"""The values a hyperparameter search may try: lists (grid or TPE choices) or numeric ranges (TPE)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.training.spec_fields import _where

Method = Literal["grid", "tpe"]
METHODS: tuple[Method, ...] = ("grid", "tpe")


@dataclass(frozen=True)
class Range:
    """A numeric range of one hyperparameter (``tpe`` only)."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "type": "int" if self.integer else "float"}


Dimension = tuple[Any, ...] | Range


def parse_dimension(name: str, raw: Any, method: Method) -> Dimension:
    """One ``search.space`` entry: a non-empty list of values, or (``tpe``) a ``{low, high}`` range."""
    where = _where("search.space." + name)
    if isinstance(raw, Mapping):
        if method != "tpe":
            raise SpecError(
                f"{where} is a range {dict(raw)!r}, which only 'search.method: tpe' can sample; the grid "
                "method needs a list of values. Set 'method: tpe' or list the values."
            )
        unknown = sorted(set(map(str, raw)) - {"low", "high", "log", "type"})
        kind = raw.get("type", "float")
        try:
            low, high = float(raw["low"]), float(raw["high"])
        except (KeyError, TypeError, ValueError):
            low = high = float("nan")
        if unknown or kind not in ("int", "float") or not low < high or (raw.get("log") and low <= 0):
            raise SpecError(
                f"{where} must be {{low, high, log: true|false, type: int|float}} with low < high (low > 0 "
                f"with log). Got {dict(raw)!r} instead."
            )
        return Range(low, high, bool(raw.get("log", False)), kind == "int")
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not raw:
        raise SpecError(f"{where} must be a non-empty list of values or a {{low, high}} range. Got {raw!r}.")
    return tuple(raw)
