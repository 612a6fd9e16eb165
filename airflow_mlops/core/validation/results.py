"""The verdict of a suite on a snapshot, and the vocabulary of failure kinds.

Every failed expectation is sorted into one of four kinds:

- ``schema``: a missing or unexpected column, a type change, or a column that holds no values at all
  (a not-null check that finds only nulls: the column is there in name only);
- ``empty``: the snapshot has no rows;
- ``error``: GX could not evaluate the expectation (we cannot vouch for data we could not check);
- ``value``: everything else: ranges, quantiles, domains, null rates, row counts.

The first three block (severity ``error``); value skew alone gives severity ``warn``, so a pipeline can
branch on it (retrain, alert) instead of stopping. The kind follows from the expectation type; a suite
author can override it per expectation with ``meta: {"mlops_skew": "schema" | "value"}``.

A leaf module: the suite, run and report modules all import it, it imports none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["ok", "warn", "error"]
Kind = Literal["schema", "empty", "error", "value"]

#: Failure kinds that stop a pipeline.
BLOCKING_KINDS: frozenset[str] = frozenset({"schema", "empty", "error"})

#: Expectation types whose failure means the data's shape changed, not its values.
SCHEMA_EXPECTATIONS: frozenset[str] = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_type_to_be",
    }
)

#: Expectation meta key a suite author may set to "schema" or "value" to override the classification.
META_SKEW = "mlops_skew"
#: Expectation meta key carrying a human sentence about what the expectation protects.
META_WHY = "mlops_why"


@dataclass(frozen=True)
class FailedExpectation:
    """One failed expectation, classified.

    :param kind: ``schema``, ``empty``, ``error`` (blocking) or ``value`` (warning).
    :param expectation_type: the GX expectation type, e.g. ``expect_column_values_to_be_in_set``.
    :param column: the column it concerns, when it concerns one.
    :param observed: what the data showed (compacted for XCom: long lists are cut to a sample).
    :param expected: the expectation's arguments.
    :param reason: one sentence for people.
    """

    kind: Kind
    expectation_type: str
    column: str | None
    observed: Any
    expected: Any
    reason: str

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "blocking": self.blocking,
            "expectation_type": self.expectation_type,
            "column": self.column,
            "observed": self.observed,
            "expected": self.expected,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ValidationResult:
    """The verdict of one suite on one snapshot; ``to_dict()`` is the receipt pushed to XCom.

    ``passed`` is true when nothing blocking failed (severity ``ok`` or ``warn``). ``failures`` holds at most
    ``max_failures`` entries, blocking ones first; ``failures_omitted`` counts the rest. ``gx_result`` is
    the complete GX result (JSON-safe), written to ``result_uri`` and left out of the receipt.
    """

    passed: bool
    severity: Severity
    suite_name: str
    rows: int
    columns: int
    evaluated: int
    succeeded: int
    counts: Mapping[str, int]
    failures: tuple[FailedExpectation, ...]
    failures_omitted: int = 0
    snapshot_uri: str | None = None
    suite_uri: str | None = None
    result_uri: str | None = None
    report_uri: str | None = None
    gx_version: str = ""
    gx_result: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def failed(self) -> int:
        return self.evaluated - self.succeeded

    @property
    def blocking_failures(self) -> tuple[FailedExpectation, ...]:
        return tuple(f for f in self.failures if f.blocking)

    def summary(self) -> str:
        """One line for logs: severity and counts per kind."""
        kinds = ", ".join(f"{k}={v}" for k, v in self.counts.items() if v)
        return f"severity={self.severity} rows={self.rows} expectations={self.evaluated} failed={self.failed}" + (
            f" ({kinds})" if kinds else ""
        )

    def failure_message(self) -> str:
        """What a no-retry failure says: the snapshot, the suite and every blocking failure listed."""
        lines = [
            f"Snapshot {self.snapshot_uri or '(in memory)'} failed validation against suite {self.suite_name!r}: "
            f"{sum(self.counts[k] for k in BLOCKING_KINDS)} blocking failure(s)."
        ]
        lines += [f"- [{f.kind}] {f.reason}" for f in self.blocking_failures]
        if self.report_uri:
            lines.append(f"Report: {self.report_uri}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "severity": self.severity,
            "suite_name": self.suite_name,
            "snapshot_uri": self.snapshot_uri,
            "suite_uri": self.suite_uri,
            "result_uri": self.result_uri,
            "report_uri": self.report_uri,
            "rows": self.rows,
            "columns": self.columns,
            "counts": {
                "evaluated": self.evaluated,
                "succeeded": self.succeeded,
                "failed": self.failed,
                **dict(self.counts),
            },
            "failed_expectations": [f.to_dict() for f in self.failures],
            "failed_expectations_omitted": self.failures_omitted,
            "gx_version": self.gx_version,
        }
