"""Inferring a GX suite from a reference snapshot.

:func:`infer_suite` reads a reference frame and writes down what it saw: the columns and their types,
where nulls may appear and how many, the domain of low-cardinality columns, numeric ranges and quantiles
with a margin, and how many rows a batch should hold (see :class:`InferenceSpec`). The inferred suite is
plain GX JSON: it is saved next to the snapshot and logged to the MLflow run of the model it was built
for, so it is versioned and can be reviewed and edited like any hand-written suite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.validation.gx import import_gx
from airflow_mlops.core.validation.json_safe import jsonable
from airflow_mlops.core.validation.results import META_WHY
from airflow_mlops.core.validation.snapshot import check_frame, read_snapshot
from airflow_mlops.core.validation.spec import InferenceSpec, TypeCheck

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.expectation_suite import ExpectationSuite

    from airflow_mlops.core.storage import StorageRoot

# GX type names accepted by its pandas type checks, per family (see ExpectColumnValuesToBeInTypeList:
# numpy dtype names for plain columns, pandas extension dtype class names for nullable ones).
NUMERIC_TYPE_NAMES: tuple[str, ...] = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype",
    "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype", "Float32Dtype", "Float64Dtype",
)  # fmt: skip
BOOLEAN_TYPE_NAMES: tuple[str, ...] = ("bool", "BooleanDtype")
STRING_TYPE_NAMES: tuple[str, ...] = ("str", "StringDtype")
# Python types GX can check value by value in object columns (great_expectations.expectations.type_comparison).
_NATIVE_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "bytes", "complex", "list", "dict"})


def _kind(series: pd.Series) -> str:
    """The type family of a column: numeric, boolean, string, datetime, datetime_tz, timedelta, category, object."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime_tz"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    return "string" if inferred == "string" else "object"


def _value_type_names(series: pd.Series) -> list[str] | None:
    """Python type names of an object column's values, when GX can check each of them."""
    names = sorted({type(v).__name__ for v in series.dropna().tolist()})
    return names if names and set(names) <= _NATIVE_TYPE_NAMES else None


def _type_expectation(gx: Any, column: str, series: pd.Series, kind: str, mode: TypeCheck) -> Any | None:
    gxe: Any = gx.expectations
    why = f"column {column!r} keeps its type"
    meta = {META_WHY: why}
    if kind == "object":
        names = _value_type_names(series)
        if names is None:
            return None
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=names, meta=meta)
    if kind == "string":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(STRING_TYPE_NAMES), meta=meta)
    if mode == "kind" and kind == "numeric":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(NUMERIC_TYPE_NAMES), meta=meta)
    if mode == "kind" and kind == "boolean":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(BOOLEAN_TYPE_NAMES), meta=meta)
    # GX compares the dtype's scalar type by name: int32 covers Int32 too, Timestamp is tz-aware datetime.
    return gxe.ExpectColumnValuesToBeOfType(column=column, type_=series.dtype.type.__name__, meta=meta)


def _python_values(values: Iterable[Any]) -> list[Any]:
    out = [v.item() if hasattr(v, "item") and type(v).__module__ == "numpy" else v for v in values]
    return sorted(out, key=lambda v: (type(v).__name__, v))


def _out(value: float, up: bool) -> float:
    """``value`` rounded away from the checked range to 6 significant digits: readable bounds, never tighter."""
    if value == 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 5)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(f"{rounded:.10g}")


def _pad(low: float, high: float, margin: float) -> float:
    span = high - low
    return margin * (span if span > 0 else max(abs(low), 1.0))


def _flag_rate_expectation(gxe: Any, column: str, finite: Any, low: float, high: float, spec: InferenceSpec) -> Any:
    """A flag (0/1): its quantiles jump between the two values; the rate of the rarer one is what moves."""
    rate = float((finite == high).mean())
    tolerance = spec.rate_margin * min(rate, 1.0 - rate)
    lowest, highest = max(0.0, rate - tolerance), min(1.0, rate + tolerance)
    return gxe.ExpectColumnMeanToBeBetween(
        column=column,
        min_value=_out(low + lowest * (high - low), up=False),
        max_value=_out(low + highest * (high - low), up=True),
        meta={META_WHY: f"share of {high:g} is {rate:.2%} in the reference, {lowest:.2%}..{highest:.2%} allowed"},
    )


def _quantile_expectation(gxe: Any, column: str, finite: Any, low: float, high: float, spec: InferenceSpec) -> Any:
    """The reference's quantiles, each allowed to move by a share of the spread between the outermost ones."""
    import numpy as np

    qs = sorted(set(spec.quantiles))
    observed = [float(v) for v in np.quantile(finite, qs)]
    tolerance = spec.quantile_margin * (observed[-1] - observed[0])
    if tolerance <= 0:
        tolerance = _pad(low, high, spec.quantile_margin)
    shown = {q: round(v, 6) for q, v in zip(qs, observed, strict=True)}
    return gxe.ExpectColumnQuantileValuesToBeBetween(
        column=column,
        quantile_ranges={
            "quantiles": qs,
            "value_ranges": [[_out(v - tolerance, up=False), _out(v + tolerance, up=True)] for v in observed],
        },
        meta={META_WHY: f"reference quantiles {shown}, each may move by {tolerance:.4g}"},
    )


def _numeric_expectations(gx: Any, column: str, series: pd.Series, spec: InferenceSpec) -> list[Any]:
    """A numeric column's value checks: its one value if constant, else its widened range, and its flag
    rate (two values) or quantiles."""
    import numpy as np

    gxe: Any = gx.expectations
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    if distinct.size == 0:
        return []
    if distinct.size == 1:  # a constant: any other value is news, whatever its size
        constant = _python_values(series.dropna().unique()[:1])
        why = {META_WHY: f"constant {constant[0]!r} in the reference"}
        return [gxe.ExpectColumnValuesToBeInSet(column=column, value_set=constant, meta=why)]
    low, high = float(distinct[0]), float(distinct[-1])
    pad = _pad(low, high, spec.range_margin)
    out = [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            min_value=_out(low - pad, up=False),
            max_value=_out(high + pad, up=True),
            meta={META_WHY: f"reference range [{low:g}, {high:g}] widened by {spec.range_margin:g} of its span"},
        )
    ]
    if distinct.size == 2:
        out.append(_flag_rate_expectation(gxe, column, finite, low, high, spec))
    elif spec.quantiles:
        out.append(_quantile_expectation(gxe, column, finite, low, high, spec))
    return out


def _check_reference(frame: pd.DataFrame, spec: InferenceSpec, what: str) -> None:
    """Refuse a reference nothing can be inferred from, and settings naming columns it lacks."""
    check_frame(frame, what)
    if frame.shape[1] == 0:
        raise DataError(f"{what} has no columns: there is nothing to infer a suite from.")
    if len(frame) == 0:
        raise DataError(f"{what} has no rows: ranges, domains and null rates cannot be inferred from it.")
    columns = list(frame.columns)
    for option in ("categorical_columns", "schema_only_columns"):
        unknown = sorted(set(getattr(spec, option)) - set(columns))
        if unknown:
            raise SpecError(f"The {option!r} inference setting names columns {unknown} that {what} lacks.")


def _row_count_expectation(gxe: Any, rows: int, spec: InferenceSpec) -> Any:
    if spec.row_count_tolerance is None:
        return gxe.ExpectTableRowCountToBeBetween(min_value=1)
    low = max(1, math.ceil(rows * (1 - spec.row_count_tolerance)))
    high = math.floor(rows * (1 + spec.row_count_tolerance))
    return gxe.ExpectTableRowCountToBeBetween(
        min_value=low, max_value=high, meta={META_WHY: f"about {rows} rows per batch"}
    )


def _null_expectation(gxe: Any, column: str, null_rate: float, spec: InferenceSpec) -> Any | None:
    """No nulls when the reference had none; a bounded share when it had some; no check when all were null."""
    if null_rate == 0:
        return gxe.ExpectColumnValuesToNotBeNull(column=column, meta={META_WHY: "no nulls in the reference"})
    if null_rate >= 1:
        return None
    allowed = min(1.0, null_rate * spec.null_rate_factor + spec.null_rate_margin)
    return gxe.ExpectColumnValuesToNotBeNull(
        column=column,
        mostly=round(1.0 - allowed, 6),
        meta={META_WHY: f"reference null rate {null_rate:.2%}, up to {allowed:.2%} allowed"},
    )


def _has_domain(series: pd.Series, column: str, kind: str, spec: InferenceSpec) -> bool:
    """Whether a column gets a domain check: named categorical, or few distinct values of a non-numeric kind."""
    if column in spec.categorical_columns:
        return True
    if kind not in {"string", "boolean", "category", "object"}:
        return False
    try:
        distinct = int(series.nunique(dropna=True))
    except TypeError:  # unhashable values (lists, dicts): no domain
        distinct = spec.categorical_max_unique + 1
    non_null = int(series.notna().sum())
    return distinct <= spec.categorical_max_unique and distinct <= spec.categorical_max_ratio * non_null


def _value_expectations(gx: Any, column: str, series: pd.Series, kind: str, spec: InferenceSpec) -> list[Any]:
    """One column's value expectations, in suite order: nulls, then (unless the column is schema-only or
    all null) its range and quantiles or flag rate, then its domain."""
    gxe: Any = gx.expectations
    null_rate = float(series.isna().mean())
    nulls = _null_expectation(gxe, column, null_rate, spec)
    out = [] if nulls is None else [nulls]
    if column in spec.schema_only_columns or null_rate == 1:
        return out
    if kind == "numeric":
        out.extend(_numeric_expectations(gx, column, series, spec))
    if _has_domain(series, column, kind, spec):
        observed = _python_values(series.dropna().unique())
        out.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=observed, meta={META_WHY: f"{len(observed)} values in the reference"}
            )
        )
    return out


def infer_suite(
    frame: pd.DataFrame, spec: InferenceSpec | None = None, *, name: str = "inferred", source: str | None = None
) -> ExpectationSuite:
    """Infer a GX suite from a reference frame (see :class:`InferenceSpec` for what is checked and how).

    Schema expectations carry GX severity ``critical``, value expectations ``warning``; both carry a
    ``meta.mlops_why`` sentence that the HTML report shows next to a failure.
    """
    gx = import_gx()

    spec = spec or InferenceSpec()
    _check_reference(frame, spec, f"The reference {source or 'frame'}")
    columns = list(frame.columns)
    gxe: Any = gx.expectations
    schema: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns, exact_match=True, meta={META_WHY: "no column is missing and none is new"}
        )
    ]
    if spec.column_order:
        schema.append(gxe.ExpectTableColumnsToMatchOrderedList(column_list=columns))
    values: list[Any] = [_row_count_expectation(gxe, spec.expected_rows or len(frame), spec)]
    kinds: dict[str, str] = {}
    for column in columns:
        series = frame[column]
        kind = kinds[column] = _kind(series)
        typed = _type_expectation(gx, column, series, kind, spec.type_check)
        if typed is not None:
            schema.append(typed)
        values.extend(_value_expectations(gx, column, series, kind, spec))
    for expectation in schema:
        expectation.severity = "critical"
    for expectation in values:
        expectation.severity = "warning"
    meta = {
        "mlops": {
            "inferred_from": source,
            "reference_rows": len(frame),
            "column_kinds": kinds,
            "spec": spec.to_dict(),
        }
    }
    suite: ExpectationSuite = gx.ExpectationSuite(name=name, expectations=schema + values, meta=jsonable(meta))
    return suite


def infer_suite_from_snapshot(
    reference_uri: str, root: StorageRoot | None = None, spec: InferenceSpec | None = None, *, name: str = "inferred"
) -> ExpectationSuite:
    """Read a reference snapshot and infer a suite from it."""
    return infer_suite(read_snapshot(reference_uri, root), spec, name=name, source=reference_uri)
