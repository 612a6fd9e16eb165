"""What a failed expectation saw, and one sentence a person can act on, from GX's result details."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from airflow_mlops.core.validation.json_safe import SAMPLE, compact, jsonable


def observed_value(result: Mapping[str, Any]) -> Any:
    """What the data showed: GX's observed value, or the counts and a sample of unexpected values."""
    if "observed_value" in result:
        return result["observed_value"]
    if "unexpected_count" in result:
        return {
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_percent": result.get("unexpected_percent"),
            "element_count": result.get("element_count"),
            "missing_count": result.get("missing_count"),
            "sample": list(result.get("partial_unexpected_list") or [])[:SAMPLE],
        }
    return None


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(jsonable(value))


def _pct(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value:.2g}%" if 0 < value < 0.01 else f"{value:.2f}%"


def _values(count: Any) -> str:
    return "1 value" if count == 1 else f"{count} values"


def failure_reason(etype: str, column: str | None, kwargs: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """One sentence a person can act on."""
    col = f"column {column!r}" if column else "the table"
    sample = jsonable(list(result.get("partial_unexpected_list") or [])[:5])
    count, pct = result.get("unexpected_count"), _pct(result.get("unexpected_percent"))
    details = result.get("details") or {}
    if etype == "expect_table_columns_to_match_set":
        mismatch = details.get("mismatched") or {}
        parts = []
        if mismatch.get("missing"):
            parts.append(f"missing columns {sorted(mismatch['missing'])}")
        if mismatch.get("unexpected"):
            parts.append(f"unexpected columns {sorted(mismatch['unexpected'])}")
        return "; ".join(parts) or f"columns {result.get('observed_value')} differ from {kwargs.get('column_set')}"
    if etype == "expect_table_columns_to_match_ordered_list":
        return f"column order {result.get('observed_value')} differs from {kwargs.get('column_list')}"
    if etype in {"expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"}:
        wanted = kwargs.get("type_list") or kwargs.get("type_")
        if count:
            return f"{col}: {_values(count)} ({pct}) not of type {wanted}, e.g. {sample}"
        return f"{col} has type {result.get('observed_value')!r}, expected {wanted}"
    if etype == "expect_column_proportion_of_non_null_values_to_be_between":
        bounds = f"[{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
        return f"{col}: non-null share {result.get('observed_value')} outside {bounds}"
    if all_null(etype, result):
        return f"{col} holds no values: all {result.get('element_count')} rows are null"
    if etype == "expect_column_values_to_not_be_null":
        allowed = 100.0 * (1.0 - float(kwargs.get("mostly") or 1.0))
        return f"{col}: {count} nulls ({pct}), at most {allowed:.2f}% allowed"
    if etype == "expect_column_values_to_be_in_set":
        return f"{col}: {_values(count)} ({pct}) outside the known domain, e.g. {sample}"
    if etype == "expect_column_values_to_be_between":
        bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
        return f"{col}: {_values(count)} ({pct}) outside {bounds}, e.g. {sample}"
    if etype == "expect_column_quantile_values_to_be_between":
        ranges = kwargs.get("quantile_ranges") or {}
        obs = (result.get("observed_value") or {}).get("values") or []
        flags = details.get("success_details") or []
        off = [
            f"q{q:g}={jsonable(v)} not in [{r[0]:.4g}, {r[1]:.4g}]"
            for q, v, r, ok in zip(
                ranges.get("quantiles", []), obs, ranges.get("value_ranges", []), flags, strict=False
            )
            if not ok
        ]
        return f"{col}: " + ("; ".join(off) if off else "quantiles moved")
    if etype in {"expect_column_mean_to_be_between", "expect_column_median_to_be_between"}:
        bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
        return f"{col}: {etype.split('_')[2]} {_num(result.get('observed_value'))} outside {bounds}"
    if etype == "expect_table_row_count_to_be_between":
        return f"{result.get('observed_value')} rows, expected [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    observed = compact(observed_value(result))
    return f"{etype} failed on {col}" + (f": observed {observed}" if observed is not None else "")


def all_null(etype: str, result: Mapping[str, Any]) -> bool:
    """A not-null check that found nothing but nulls: the column is there in name only."""
    return (
        etype == "expect_column_values_to_not_be_null"
        and bool(result.get("element_count"))
        and result.get("unexpected_count") == result.get("element_count")
    )
