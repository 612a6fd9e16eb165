"""The receipt of one scoring run: what was read, what was written, by which model version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoringResult:
    """What one scoring run produced (the operator's receipt is :meth:`to_dict`).

    ``output_uri`` is None when the input was empty and ``on_empty`` is ``skip``: ``skipped`` says why.
    ``input_checks`` counts what the input held that the model reads without a word
    (:mod:`airflow_mlops.core.scoring.checks`); ``warnings`` says it in sentences, as the log does.
    """

    output_uri: str | None
    rows_in: int
    rows_out: int
    input_files: int
    model_name: str
    model_version: str
    onnx_sha256: str
    partition: str
    scored_at: str
    seconds: float
    serving_log_uri: str | None
    serving_log_rows: int
    shadow_report_uri: str | None = None
    shadow: Mapping[str, Any] | None = None
    explain_top_k: int = 0
    on_empty: str = "fail"
    skipped: str | None = None
    input_checks: Mapping[str, Any] | None = None
    warnings: tuple[str, ...] = ()
    feature_transforms: Mapping[str, Any] | None = None  # rows transformed; per join its dimension and matches

    @property
    def rows_per_second(self) -> float:
        return self.rows_out / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_uri": self.output_uri,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "input_files": self.input_files,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "onnx_sha256": self.onnx_sha256,
            "partition": self.partition,
            "scored_at": self.scored_at,
            "seconds": round(self.seconds, 3),
            "throughput_rows_per_s": round(self.rows_per_second, 1),
            "serving_log_uri": self.serving_log_uri,
            "serving_log_rows": self.serving_log_rows,
            "shadow_report_uri": self.shadow_report_uri,
            "shadow": dict(self.shadow) if self.shadow is not None else None,
            "explain_top_k": self.explain_top_k,
            "on_empty": self.on_empty,
            "skipped": self.skipped,
            "input_checks": dict(self.input_checks) if self.input_checks is not None else None,
            "warnings": list(self.warnings),
            "feature_transforms": dict(self.feature_transforms) if self.feature_transforms is not None else None,
        }
