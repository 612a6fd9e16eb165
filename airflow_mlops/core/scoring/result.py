"""The receipt of one scoring run: what was read, what was written, by which model version."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ScoringResult:
    """What one scoring run produced (the operator's receipt is :meth:`to_dict`)."""

    output_uri: str
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
        }
