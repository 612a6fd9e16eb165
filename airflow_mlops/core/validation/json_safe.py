"""JSON-safe copies of what GX and pandas return, and short renderings of them for receipts.

GX puts ``numpy.bool_`` values in the details of ``expect_column_quantile_values_to_be_between`` (GX 1.24)
and strict JSON has no NaN: every result passes through :func:`jsonable` before it is written.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

#: Items of a list kept in a receipt; the rest is counted.
SAMPLE = 10
#: Characters of a text kept in a receipt.
TEXT_CAP = 200


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``: numpy scalars unwrapped, NaN/inf spelled out, timestamps as ISO text.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``: strict JSON has
    no such numbers, and a report must still show that an infinity was seen.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return [jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, datetime | date):
        return value.isoformat()
    module = type(value).__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if module.startswith("pandas"):
        if type(value).__name__ in {"NAType", "NaTType"}:
            return None
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if hasattr(value, "to_json_dict"):
        return jsonable(value.to_json_dict())
    return str(value)


def dumps(value: Any) -> bytes:
    """Deterministic, strict JSON (sorted keys, UTF-8, no NaN literals)."""
    return (json.dumps(jsonable(value), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def compact(value: Any, depth: int = 0) -> Any:
    """A short JSON-safe rendering for receipts: lists cut to a sample, long text cut."""
    if isinstance(value, Mapping):
        return {str(k): compact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        head = [compact(v, depth + 1) for v in list(value)[:SAMPLE]]
        if len(value) > SAMPLE:
            head.append(f"... {len(value) - SAMPLE} more")
        return head
    value = jsonable(value)
    if isinstance(value, str) and len(value) > TEXT_CAP:
        return value[:TEXT_CAP] + "..."
    return value


def first_line(exc: BaseException | str) -> str:
    """The first line of an error, cut to :data:`TEXT_CAP` characters (its type name when it has no text)."""
    text = str(exc).strip()
    if not text and isinstance(exc, BaseException):
        text = type(exc).__name__
    return text.splitlines()[0][:TEXT_CAP] if text else ""
