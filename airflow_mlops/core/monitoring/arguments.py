"""Parsing of the monitoring operators' arguments: templated values arrive as strings, so durations,
timestamps and fractions are read and validated here, raising :class:`~airflow_mlops.core.errors.SpecError`."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_mlops.core.errors import SpecError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


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
