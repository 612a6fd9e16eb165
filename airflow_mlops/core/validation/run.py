"""Running a suite on a frame with Great Expectations and classifying every failure.

:func:`validate_frame` runs a suite with GX on a frame and sorts every failed expectation into a kind
(``schema``, ``empty``, ``error`` or ``value``, see :mod:`~airflow_mlops.core.validation.results`): the
first three block, value skew alone warns. :func:`validate_snapshot` does the same for a snapshot under
the storage root and writes the JSON result and the HTML report next to it.

GX runs in an ephemeral context (no project folder) through ``Batch.validate``. We do not go through
``ValidationDefinition.run``: it also stores the result in the context's result store, and that store's
serializer fails on the ``numpy.bool_`` values ``expect_column_quantile_values_to_be_between`` puts in
its details (GX 1.24). For the same reason results pass through :func:`jsonable` before they are written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from airflow_mlops.core.validation.gx import import_gx
from airflow_mlops.core.validation.json_safe import compact, first_line, jsonable
from airflow_mlops.core.validation.reasons import all_null, failure_reason, observed_value
from airflow_mlops.core.validation.report import write_reports
from airflow_mlops.core.validation.results import (
    BLOCKING_KINDS,
    META_SKEW,
    META_WHY,
    SCHEMA_EXPECTATIONS,
    FailedExpectation,
    Kind,
    Severity,
    ValidationResult,
)
from airflow_mlops.core.validation.snapshot import check_frame, read_snapshot

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.expectation_suite import ExpectationSuite

    from airflow_mlops.core.storage import StorageRoot

_KWARGS_NOT_EXPECTED = frozenset({"column", "batch_id", "result_format", "catch_exceptions", "include_config"})
_RESULT_FORMAT = "SUMMARY"


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX reports exceptions flat ({raised_exception, exception_message}) or keyed by metric id."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for nested in info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return str(nested.get("exception_message") or "unknown error")
    return None


def _columns_of(etype: str, kwargs: Mapping[str, Any]) -> list[str]:
    """Columns an expectation reads (table-level expectations name columns but read the table)."""
    names = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    if not etype.startswith("expect_table") and isinstance(kwargs.get("column_list"), list):
        names += [c for c in kwargs["column_list"] if isinstance(c, str)]
    return names


def _classify(
    etype: str, meta: Mapping[str, Any], result: Mapping[str, Any], missing: list[str], exception: str | None,
    column: str | None, retyped: set[str],
) -> Kind:  # fmt: skip
    if missing:
        return "schema"  # a column the suite names is gone
    if exception is not None:
        # An exception on a column whose type check failed is that type change showing again.
        return "schema" if column in retyped else "error"
    override = meta.get(META_SKEW)
    if override in ("schema", "value"):
        return cast(Kind, override)
    if etype in SCHEMA_EXPECTATIONS or all_null(etype, result):
        return "schema"
    return "value"


def _batch_definition() -> Any:
    """A whole-dataframe batch definition in a fresh ephemeral context (no project folder, no progress bars)."""
    gx = import_gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("mlops").add_dataframe_asset("snapshot")
    return asset.add_batch_definition_whole_dataframe("whole")


def _column_groups(frame: pd.DataFrame, suite: ExpectationSuite) -> dict[tuple[str, ...], list[int]]:
    """Positions of the suite's expectations grouped by the columns they read; ``()``: the whole frame
    (table-level expectations, and any naming a column the frame lacks, so GX reports it as usual)."""
    present = set(frame.columns)
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, config in enumerate(suite.expectation_configurations):
        if config.type.startswith("expect_table"):
            key: tuple[str, ...] = ()
        else:
            names = _columns_of(config.type, dict(config.kwargs))
            key = tuple(dict.fromkeys(names)) if names and set(names) <= present else ()
        groups.setdefault(key, []).append(position)
    return groups


def run_gx(frame: pd.DataFrame, suite: ExpectationSuite) -> Any:
    """Run ``suite`` on ``frame`` with GX; returns GX's ``ExpectationSuiteValidationResult``.

    The expectations on a column run on a frame of that column alone. GX's pandas engine filters and
    copies the whole batch frame for every column map metric, so on a wide table the cost grows with
    expectations x columns; on one column each metric reads what it needs. Every expectation is still
    GX's, with the same result format, so results are the same as one run on the whole frame
    (``tests/core/validation/test_wide.py``); table-level expectations run on the whole frame.
    """
    gx = import_gx()
    from great_expectations.core import ExpectationSuiteValidationResult
    from great_expectations.validator.validation_statistics import calc_validation_statistics

    definition = _batch_definition()
    configs = suite.expectation_configurations
    results: list[Any] = [None] * len(configs)
    meta: dict[str, Any] = {}
    for columns, positions in _column_groups(frame, suite).items():
        part = frame[list(columns)] if columns else frame
        batch = definition.get_batch(batch_parameters={"dataframe": part})
        group = gx.ExpectationSuite(name=suite.name, expectations=[configs[i] for i in positions])
        outcome = batch.validate(group, result_format=_RESULT_FORMAT)
        for position, item in zip(positions, outcome.results, strict=True):
            results[position] = item
        meta = meta if columns and meta else dict(outcome.meta)
    stats = calc_validation_statistics(results)
    return ExpectationSuiteValidationResult(
        success=stats.success,
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": stats.evaluated_expectations,
            "successful_expectations": stats.successful_expectations,
            "unsuccessful_expectations": stats.unsuccessful_expectations,
            "success_percent": stats.success_percent,
        },
        meta=meta,
    )


@dataclass(frozen=True)
class _Failed:
    """One failed expectation as GX reported it, before it is classified."""

    etype: str
    kwargs: dict[str, Any]
    meta: dict[str, Any]
    result: dict[str, Any]
    exception: str | None
    missing: list[str]  # columns it names that the data lacks

    @property
    def column(self) -> str | None:
        return next(iter(_columns_of(self.etype, self.kwargs)), None)


def _failed_items(gx_result: Any, present: set[str]) -> tuple[int, int, list[_Failed]]:
    """Expectations evaluated and met, and every failed one, from GX's result."""
    evaluated = succeeded = 0
    failed: list[_Failed] = []
    for item in gx_result.results:
        evaluated += 1
        if item.success:
            succeeded += 1
            continue
        config = item.expectation_config
        kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
        missing = [c for c in _columns_of(config.type, kwargs) if c not in present]
        exception = _exception_message(item.exception_info)
        failed.append(
            _Failed(config.type, kwargs, dict(config.meta or {}), dict(item.result or {}), exception, missing)
        )
    return evaluated, succeeded, failed


def _describe(failed: _Failed, kind: Kind) -> FailedExpectation:
    """The receipt entry of one classified failure: what was seen, what was expected, and why it failed."""
    etype, column, exception = failed.etype, failed.column, failed.exception
    expected = compact({k: v for k, v in failed.kwargs.items() if k not in _KWARGS_NOT_EXPECTED})
    observed: Any
    if failed.missing:
        reason, observed = f"column {failed.missing[0]!r} is missing from the data", {"missing_columns": failed.missing}
    elif exception is not None:
        message = first_line(exception)
        reason = f"{etype} on {column or 'the table'} could not be evaluated: {message}"
        if kind == "schema":
            reason = f"column {column!r} changed type: {etype} failed with {message}"
        observed = {"exception": message}
    else:
        reason = failure_reason(etype, column, failed.kwargs, failed.result)
        observed = compact(observed_value(failed.result))
        why = failed.meta.get(META_WHY)
        reason = f"{reason} (expected: {why})" if why else reason
    return FailedExpectation(kind, etype, column, observed, expected, reason)


def _sort_failures(raw: list[_Failed], empty: bool) -> tuple[list[FailedExpectation], dict[str, int], int]:
    """Classify and count every failure per kind; return the receipt entries (blocking first), the counts
    and how many failures were counted but not listed."""
    retyped = {c for f in raw if f.etype in SCHEMA_EXPECTATIONS for c in _columns_of(f.etype, f.kwargs)}
    failures: list[FailedExpectation] = []
    if empty:
        failures.append(
            FailedExpectation("empty", "table_is_not_empty", None, 0, {"min_rows": 1}, "the snapshot has no rows")
        )
    counts = {"schema": 0, "empty": int(empty), "error": 0, "value": 0}
    reported_missing: set[str] = set()
    hidden = 0
    for failed in raw:
        kind = _classify(
            failed.etype, failed.meta, failed.result, failed.missing, failed.exception, failed.column, retyped
        )
        if empty and failed.etype not in SCHEMA_EXPECTATIONS and not failed.missing:
            hidden += 1  # on zero rows every value check is vacuous or undefined: emptiness says it all
            continue
        counts[kind] += 1
        if failed.missing and set(failed.missing) <= reported_missing:
            hidden += 1  # one line per missing column, not one per expectation on it
            continue
        reported_missing.update(failed.missing)
        failures.append(_describe(failed, kind))
    order = {"empty": 0, "schema": 1, "error": 2, "value": 3}
    failures.sort(key=lambda f: (order[f.kind], f.column or "", f.expectation_type))
    return failures, counts, hidden


def classify(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    gx_result: Any,
    *,
    max_failures: int = 25,
    snapshot_uri: str | None = None,
    suite_uri: str | None = None,
) -> ValidationResult:
    """Turn GX's result into a classified :class:`ValidationResult`."""
    gx = import_gx()

    evaluated, succeeded, raw = _failed_items(gx_result, set(frame.columns))
    failures, counts, hidden = _sort_failures(raw, empty=len(frame) == 0)
    blocking = any(counts[k] for k in BLOCKING_KINDS)
    severity: Severity = "error" if blocking else ("warn" if counts["value"] else "ok")
    cap = max(0, int(max_failures))
    return ValidationResult(
        passed=not blocking,
        severity=severity,
        suite_name=suite.name,
        rows=len(frame),
        columns=frame.shape[1],
        evaluated=evaluated,
        succeeded=succeeded,
        counts=counts,
        failures=tuple(failures[:cap]),
        failures_omitted=max(0, len(failures) - cap) + hidden,
        snapshot_uri=snapshot_uri,
        suite_uri=suite_uri,
        gx_version=gx.__version__,
        gx_result=cast(Mapping[str, Any], jsonable(gx_result.to_json_dict())),
    )


def validate_frame(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    max_failures: int = 25,
    snapshot_uri: str | None = None,
    suite_uri: str | None = None,
) -> ValidationResult:
    """Run ``suite`` on ``frame`` with GX and classify every failure (see the module docstring)."""
    check_frame(frame, f"The snapshot {snapshot_uri or '(in memory)'}")
    gx_result = run_gx(frame, suite)
    return classify(frame, suite, gx_result, max_failures=max_failures, snapshot_uri=snapshot_uri, suite_uri=suite_uri)


def validate_snapshot(
    root: StorageRoot,
    snapshot_uri: str,
    suite: ExpectationSuite,
    *,
    pipeline: str,
    partition: str,
    suite_uri: str | None = None,
    max_failures: int = 25,
) -> tuple[ValidationResult, str]:
    """Read a snapshot, validate it, write both reports under the root; return the result and the HTML."""
    frame = read_snapshot(snapshot_uri, root)
    result = validate_frame(frame, suite, max_failures=max_failures, snapshot_uri=snapshot_uri, suite_uri=suite_uri)
    return write_reports(root, result, pipeline, partition)
