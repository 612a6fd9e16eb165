"""Parsing of the monitoring operators' arguments: templated values arrive as strings, so durations,
timestamps and fractions are read and validated here, raising :class:`~airflow_mlops.core.errors.SpecError`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_duration

__all__ = ["parse_duration", "parse_fraction", "parse_timestamp"]


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
