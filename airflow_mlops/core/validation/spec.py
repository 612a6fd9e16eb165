"""How a suite is inferred from a reference snapshot: :class:`InferenceSpec` and its coercion from
rendered template values (numbers and yes/no values read by :mod:`airflow_mlops.core.params`)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_flag, parse_number

TypeCheck = Literal["kind", "exact"]


@dataclass(frozen=True)
class InferenceSpec:
    """How a suite is inferred from a reference snapshot.

    :param categorical_max_unique: a text, boolean or categorical column gets a domain check when it has at
        most this many distinct values ...
    :param categorical_max_ratio: ... and distinct values make at most this share of its non-null values
        (a column of mostly unique strings is an identifier, not a category).
    :param categorical_columns: columns that always get a domain check (e.g. integer codes).
    :param schema_only_columns: columns checked for presence, type and nulls only (time keys, ids: their
        values move with every batch by design).
    :param range_margin: numeric ranges are widened by this share of the reference range on each side.
    :param quantiles: quantiles checked for numeric columns; empty to check none.
    :param quantile_margin: each quantile may move by this share of the spread between the outermost
        checked quantiles of the reference.
    :param rate_margin: for two-valued numeric columns (flags) the mean is checked instead of quantiles: the
        share of the rarer value may move by this share of itself (0.5: a 4% rate may read 2%..6%).
    :param null_rate_factor: a column with nulls in the reference may hold up to
        ``null_rate * null_rate_factor + null_rate_margin`` nulls ...
    :param null_rate_margin: ... see above. Columns without nulls in the reference must have none.
    :param row_count_tolerance: a batch may hold ``expected_rows * (1 +/- tolerance)`` rows; ``None`` checks
        only that it is not empty.
    :param expected_rows: rows a batch should hold; the reference's row count when omitted (set it when the
        reference spans several batches, e.g. three months of data checked against monthly batches).
    :param type_check: ``"kind"`` accepts any dtype of the reference's kind (integers and floats are one
        kind, because pandas turns an integer column with nulls into floats; nulls are checked separately),
        ``"exact"`` accepts only the reference's dtype (nullable and plain variants alike).
    :param column_order: also expect the columns in the reference's order.
    """

    categorical_max_unique: int = 50
    categorical_max_ratio: float = 0.5
    categorical_columns: tuple[str, ...] = ()
    schema_only_columns: tuple[str, ...] = ()
    range_margin: float = 0.1
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantile_margin: float = 0.1
    rate_margin: float = 0.5
    null_rate_factor: float = 1.5
    null_rate_margin: float = 0.01
    row_count_tolerance: float | None = 0.5
    expected_rows: int | None = None
    type_check: TypeCheck = "kind"
    column_order: bool = False

    def __post_init__(self) -> None:
        _check(
            self.categorical_max_unique >= 1, "categorical_max_unique", "an integer >= 1", self.categorical_max_unique
        )
        _check(
            0 < self.categorical_max_ratio <= 1,
            "categorical_max_ratio",
            "a float in (0, 1]",
            self.categorical_max_ratio,
        )
        _check(self.range_margin >= 0, "range_margin", "a float >= 0", self.range_margin)
        _check(self.quantile_margin >= 0, "quantile_margin", "a float >= 0", self.quantile_margin)
        _check(self.rate_margin >= 0, "rate_margin", "a float >= 0", self.rate_margin)
        _check(all(0 <= q <= 1 for q in self.quantiles), "quantiles", "floats in [0, 1]", self.quantiles)
        _check(self.null_rate_factor >= 1, "null_rate_factor", "a float >= 1", self.null_rate_factor)
        _check(0 <= self.null_rate_margin <= 1, "null_rate_margin", "a float in [0, 1]", self.null_rate_margin)
        tolerance = self.row_count_tolerance
        _check(tolerance is None or tolerance >= 0, "row_count_tolerance", "a float >= 0 or None", tolerance)
        rows = self.expected_rows
        _check(rows is None or rows >= 1, "expected_rows", "an integer >= 1 or None", rows)
        _check(self.type_check in ("kind", "exact"), "type_check", "'kind' or 'exact'", self.type_check)
        overlap = sorted(set(self.categorical_columns) & set(self.schema_only_columns))
        _check(not overlap, "categorical_columns", "no column also in schema_only_columns", overlap)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> InferenceSpec:
        """Build a spec from a mapping of rendered template values (strings are coerced)."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise SpecError(f"The inference settings must be a mapping. Got {type(mapping).__name__} instead.")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise SpecError(f"Unknown inference settings {unknown}. Known settings: {sorted(known)}.")
        values: dict[str, Any] = {}
        for name, raw in mapping.items():
            values[name] = _coerce(name, raw)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_INT_FIELDS = frozenset({"categorical_max_unique", "expected_rows"})
_FLOAT_FIELDS = frozenset(
    {
        "categorical_max_ratio",
        "range_margin",
        "quantile_margin",
        "rate_margin",
        "null_rate_factor",
        "null_rate_margin",
        "row_count_tolerance",
    }
)
_TUPLE_FIELDS = frozenset({"categorical_columns", "schema_only_columns", "quantiles"})
#: Settings whose ``None`` means something (no row count check, the reference's row count).
_OPTIONAL_FIELDS = frozenset({"expected_rows", "row_count_tolerance"})


def _coerce(name: str, raw: Any) -> Any:
    """Coerce one rendered setting; Jinja renders numbers and lists as strings."""
    what = f"The {name!r} inference setting"
    try:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "none", "null"}):
            if name in _OPTIONAL_FIELDS:
                return None
            raise ValueError("missing")
        if name in _INT_FIELDS or name in _FLOAT_FIELDS:
            return _finite_number(name, raw)
        if name == "column_order":
            return parse_flag(raw, what)
        if name in _TUPLE_FIELDS:
            return _items(name, raw)
        return str(raw)
    except (TypeError, ValueError) as exc:  # SpecError from params is a ValueError too
        raise SpecError(f"{what} could not be read. Got {raw!r} instead.") from exc


def _finite_number(name: str, raw: Any) -> int | float:
    """A finite number, integral for the count settings. Its bounds are left to :class:`InferenceSpec`,
    which checks them the same way for settings given in code."""
    integer = name in _INT_FIELDS
    value = parse_number(raw, name, low=-math.inf, integer=integer)
    if not math.isfinite(value):
        raise ValueError(raw)
    return int(value) if integer else value


def _items(name: str, raw: Any) -> tuple[Any, ...]:
    """A list setting, given as a list or as its JSON text: quantiles as numbers, columns as names."""
    items = json.loads(raw) if isinstance(raw, str) else raw
    if isinstance(items, str) or not isinstance(items, Iterable):
        raise ValueError(raw)
    if name == "quantiles":
        return tuple(_finite_number(name, q) for q in items)
    return tuple(str(c) for c in items)


def _check(ok: bool, name: str, expected: str, got: Any) -> None:
    if not ok:
        raise SpecError(f"The {name!r} parameter of InferenceSpec must be {expected}. Got {got!r} instead.")
