"""Validation: check a dataset snapshot against a Great Expectations 1.x suite, loaded from a suite file or
inferred from a reference snapshot; schema skew (a missing, new or retyped column, no rows, an expectation GX
could not evaluate) blocks, value skew (ranges, quantiles, domains, null rates, row counts) warns.

Public API: ``prepare_suite``, ``validate_snapshot``, ``validate_frame``, ``ValidationResult``,
``FailedExpectation``, ``InferenceSpec``, ``infer_suite`` ... (modules: ``spec`` holds the inference
settings, ``inference`` infers a suite from a reference frame, ``suite`` loads, saves, logs and resolves a
run's suite, ``snapshot`` reads a Parquet snapshot, ``run`` runs GX and classifies the failures,
``reasons`` words them, ``results`` holds the verdict types and failure kinds, ``report`` writes the JSON
and HTML reports and logs them to MLflow, ``json_safe`` makes GX results JSON-safe, ``gx`` imports GX).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.validation.inference import infer_suite, infer_suite_from_snapshot
    from airflow_mlops.core.validation.json_safe import dumps, jsonable
    from airflow_mlops.core.validation.report import log_validation, render_html, report_url, write_reports
    from airflow_mlops.core.validation.results import (
        BLOCKING_KINDS,
        META_SKEW,
        META_WHY,
        SCHEMA_EXPECTATIONS,
        FailedExpectation,
        ValidationResult,
    )
    from airflow_mlops.core.validation.run import classify, run_gx, validate_frame, validate_snapshot
    from airflow_mlops.core.validation.snapshot import read_snapshot
    from airflow_mlops.core.validation.spec import InferenceSpec
    from airflow_mlops.core.validation.suite import (
        load_suite,
        log_suite,
        log_suite_file,
        model_suite,
        prepare_suite,
        save_suite,
        suite_from_dict,
        suite_to_dict,
    )

__all__ = [
    "BLOCKING_KINDS",
    "META_SKEW",
    "META_WHY",
    "SCHEMA_EXPECTATIONS",
    "FailedExpectation",
    "InferenceSpec",
    "ValidationResult",
    "classify",
    "dumps",
    "infer_suite",
    "infer_suite_from_snapshot",
    "jsonable",
    "load_suite",
    "log_suite",
    "log_suite_file",
    "log_validation",
    "model_suite",
    "prepare_suite",
    "read_snapshot",
    "render_html",
    "report_url",
    "run_gx",
    "save_suite",
    "suite_from_dict",
    "suite_to_dict",
    "validate_frame",
    "validate_snapshot",
    "write_reports",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BLOCKING_KINDS": "results",
        "META_SKEW": "results",
        "META_WHY": "results",
        "SCHEMA_EXPECTATIONS": "results",
        "FailedExpectation": "results",
        "InferenceSpec": "spec",
        "ValidationResult": "results",
        "classify": "run",
        "dumps": "json_safe",
        "infer_suite": "inference",
        "infer_suite_from_snapshot": "inference",
        "jsonable": "json_safe",
        "load_suite": "suite",
        "log_suite": "suite",
        "log_suite_file": "suite",
        "model_suite": "suite",
        "log_validation": "report",
        "prepare_suite": "suite",
        "read_snapshot": "snapshot",
        "render_html": "report",
        "report_url": "report",
        "run_gx": "run",
        "save_suite": "suite",
        "suite_from_dict": "suite",
        "suite_to_dict": "suite",
        "validate_frame": "run",
        "validate_snapshot": "run",
        "write_reports": "report",
    },
)
