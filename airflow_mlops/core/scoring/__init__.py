"""Scoring: stream a Parquet partition through the champion's ONNX graph and write its predictions,
serving log and shadow report atomically; explain single predictions.

Public API: ``score_partition``, ``ScoringSpec``, ``ScoringResult``, ``resolve_input``,
``input_filesystem``, ``list_partitions``, ``InputFile``, ``output_schema``, ``load_challenger``,
``CONTRIBUTION_FEATURE``, ``CONTRIBUTION_VALUE``, ``explain_row``, ``read_row``, ``Explanation``
(modules: ``run`` is the scoring loop, ``inputs`` finds the input files and partitions, ``reading``
plans and streams record batches, ``output`` defines what is written, ``reservoir`` samples the
serving log, ``shadow`` compares the challenger, ``spec`` and ``result`` are the request and the
receipt, ``explain`` explains one prediction). The model itself is :mod:`airflow_mlops.core.serving`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.scoring.explain import Explanation, explain_row, read_row
    from airflow_mlops.core.scoring.inputs import InputFile, input_filesystem, list_partitions, resolve_input
    from airflow_mlops.core.scoring.output import CONTRIBUTION_FEATURE, CONTRIBUTION_VALUE, output_schema
    from airflow_mlops.core.scoring.result import ScoringResult
    from airflow_mlops.core.scoring.run import score_partition
    from airflow_mlops.core.scoring.shadow import load_challenger
    from airflow_mlops.core.scoring.spec import ScoringSpec

__all__ = [
    "CONTRIBUTION_FEATURE",
    "CONTRIBUTION_VALUE",
    "Explanation",
    "InputFile",
    "ScoringResult",
    "ScoringSpec",
    "explain_row",
    "input_filesystem",
    "list_partitions",
    "load_challenger",
    "output_schema",
    "read_row",
    "resolve_input",
    "score_partition",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CONTRIBUTION_FEATURE": "output",
        "CONTRIBUTION_VALUE": "output",
        "Explanation": "explain",
        "InputFile": "inputs",
        "ScoringResult": "result",
        "ScoringSpec": "spec",
        "explain_row": "explain",
        "input_filesystem": "inputs",
        "list_partitions": "inputs",
        "load_challenger": "shadow",
        "output_schema": "output",
        "read_row": "explain",
        "resolve_input": "inputs",
        "score_partition": "run",
    },
)
