"""Timing of a model's serving path per feature: the ONNX Runtime profile of the graph (seconds per node)
and the time to coerce each feature column into the ONNX feed, each the fastest of several rounds."""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.onnx_model import OnnxInput

if TYPE_CHECKING:
    import pyarrow as pa


def _profile(model_bytes: bytes, feed: Mapping[str, Any], repeats: int) -> dict[str, float]:
    """Seconds per node (the fastest of ``repeats`` runs of the graph), from ONNX Runtime's profiler."""
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="mlops-feature-cost-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        options.intra_op_num_threads = 1  # one thread: node times add up to the graph's time
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime's errors share no useful base class
            raise ArtifactError(f"The ONNX model could not be loaded by ONNX Runtime: {exc}") from exc
        for _ in range(repeats):
            session.run(None, dict(feed))
        with open(session.end_profiling()) as handle:
            events = json.load(handle)
    fastest: dict[str, float] = {}
    suffix = "_kernel_time"
    for event in events:
        name = str(event.get("name", ""))
        if event.get("cat") == "Node" and name.endswith(suffix):
            node = name[: -len(suffix)]
            seconds = float(event.get("dur", 0)) / 1e6
            fastest[node] = min(fastest.get(node, seconds), seconds)
    return fastest


def _sample_table(parquet: bytes, inputs: Sequence[OnnxInput], rows: int) -> pa.Table:
    """The sample's feature columns as scoring reads them (strings as dictionaries), repeated up to
    ``rows`` rows: a reference sample of a few hundred rows would time mostly the per-call overhead."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = [i.column for i in inputs if i.type == "string"]
    table = pq.read_table(io.BytesIO(parquet), columns=[i.column for i in inputs], read_dictionary=strings)
    if 0 < table.num_rows < rows:
        table = pa.concat_tables([table] * math.ceil(rows / table.num_rows))
    return table.slice(0, rows).combine_chunks()


def _coercion_seconds(table: pa.Table, inputs: Sequence[OnnxInput], repeats: int) -> dict[str, float]:
    """The fastest time to coerce each feature column into the ONNX feed, as scoring does."""
    from airflow_mlops.core.onnx_model import feed_arrow

    fastest: dict[str, float] = {}
    for _ in range(repeats):
        for item in inputs:  # interleaved: a slow moment of the machine hits every feature alike
            started = time.perf_counter()
            feed_arrow(table, [item])
            seconds = time.perf_counter() - started
            fastest[item.name] = min(fastest.get(item.name, seconds), seconds)
    return fastest
