"""What batch scoring writes: the schema of ``predictions.parquet``, its top-k contribution columns,
the serving log's rows, atomic Parquet writes, and where a partition's outputs go.

Output contract (see :mod:`airflow_mlops.core.contracts`): passthrough columns, ``prediction``, for
classifiers ``probability_<class>`` per class, optional top-k contributions, then ``model_name``,
``model_version`` and ``scored_at`` (the run's logical date, never the wall clock, so that a rerun
writes the same bytes).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.explanations import occlusion_contributions, require_baseline
from airflow_mlops.core.serving.model import Prediction, ServingModel
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    import numpy as np

CONTRIBUTION_FEATURE = "contribution_{rank}_feature"
CONTRIBUTION_VALUE = "contribution_{rank}_value"


def output_schema(model: ServingModel, spec: ScoringSpec, input_schema: Any, explain_top_k: int = 0) -> Any:
    """The Arrow schema of ``predictions.parquet`` for this model and request."""
    import pyarrow as pa

    fields = [input_schema.field(c) for c in spec.passthrough_columns]
    fields.append(pa.field(contracts.PREDICTION_COLUMN, model.prediction_type()))
    fields += [pa.field(c, pa.float32()) for c in model.spec.probability_columns]
    for rank in range(1, explain_top_k + 1):
        fields.append(pa.field(CONTRIBUTION_FEATURE.format(rank=rank), pa.string()))
        fields.append(pa.field(CONTRIBUTION_VALUE.format(rank=rank), pa.float32()))
    fields += [
        pa.field(contracts.MODEL_NAME_COLUMN, pa.string()),
        pa.field(contracts.MODEL_VERSION_COLUMN, pa.string()),
        pa.field(contracts.SCORED_AT_COLUMN, pa.timestamp("us", tz="UTC")),
    ]
    names = [f.name for f in fields]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise SpecError(
            f"Passthrough column(s) {clash} clash with the output columns the scorer writes; rename them or "
            "leave them out of 'passthrough_columns'."
        )
    metadata = {
        "mlops.model_name": model.name,
        "mlops.model_version": model.version,
        "mlops.onnx_sha256": model.sha256,
        "mlops.task": model.spec.task,
        "mlops.classes": json.dumps([str(c) for c in model.spec.classes]),
        "mlops.partition": spec.partition,
        "mlops.scored_at": spec.scored_at.isoformat(),
    }
    return pa.schema(fields, metadata=metadata)


def _cast(batch: Any, columns: Sequence[str], schema: Any) -> list[Any]:
    """Columns of ``batch`` in the unified input types (dictionaries decoded)."""
    return [batch.column(c).cast(schema.field(c).type) for c in columns]


def _log_rows(scored: Any, features: Any, schema: Any) -> Any:
    import pyarrow as pa

    columns = {name: scored.column(name) for name in scored.column_names}
    columns.update({name: features.column(name) for name in features.column_names})
    return pa.table([columns[f.name] for f in schema], schema=schema.remove_metadata())


def parquet_options(schema: Any) -> dict[str, Any]:
    """Writer options of the Parquet files scoring writes: zstd, and dictionary encoding for every column
    but the floating-point ones.

    Probabilities and numeric features take nearly as many values as rows: Parquet's writer builds a
    dictionary for each such column until it outgrows a page and then falls back to plain encoding, work
    that costs more than the rest of the write and ends in a larger file (measured on the wide case's
    predictions: 0.040 s against 0.016 s of CPU, 4.8 MB against 3.5 MB per 100,000 rows).
    """
    import pyarrow as pa

    return {"compression": "zstd", "use_dictionary": [f.name for f in schema if not pa.types.is_floating(f.type)]}


def _write_parquet(root: StorageRoot, uri: str, table: Any) -> None:
    import pyarrow.parquet as pq

    with root.atomic_output(uri) as stream:
        pq.write_table(table, stream, **parquet_options(table.schema))


class _TopContributions:
    """The ``explain_top_k`` columns of each scored batch: the k features with the largest absolute
    occlusion contributions (:mod:`airflow_mlops.core.serving.explanations`), largest first."""

    def __init__(self, model: ServingModel, top_k: int) -> None:
        require_baseline(model)
        if top_k > len(model.spec.inputs):
            raise SpecError(
                f"'explain_top_k' is {top_k} but model {model.name!r} has only {len(model.spec.inputs)} features."
            )
        self.model, self.top_k = model, top_k
        self.names = [i.column for i in model.spec.inputs]

    def columns(self, feed: Mapping[str, np.ndarray], prediction: Prediction) -> list[Any]:
        """Arrays ``contribution_<k>_feature``, ``contribution_<k>_value`` for k = 1..top_k, in order."""
        import numpy as np
        import pyarrow as pa

        contributions = occlusion_contributions(self.model, feed, prediction)
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, : self.top_k]
        names = np.asarray(self.names, dtype=object)
        arrays = []
        for rank in range(self.top_k):
            arrays.append(pa.array(names[order[:, rank]], type=pa.string()))
            arrays.append(pa.array(np.take_along_axis(contributions, order[:, rank : rank + 1], axis=1)[:, 0]))
        return arrays


@dataclass(frozen=True)
class PartitionOutputs:
    """Where one partition's outputs go in the storage layout."""

    predictions: str
    serving_log: str
    shadow_report: str

    @classmethod
    def of(cls, root: StorageRoot, spec: ScoringSpec) -> PartitionOutputs:
        def place(kind: str, name: str) -> str:
            return root.layout(spec.pipeline, kind, spec.partition, name)

        return cls(
            predictions=place(contracts.KIND_PREDICTIONS, contracts.PREDICTIONS_FILE),
            serving_log=place(contracts.KIND_SERVING_LOG, contracts.SERVING_LOG_FILE),
            shadow_report=place(contracts.KIND_SHADOW, contracts.SHADOW_REPORT_FILE),
        )


def missing_folders(root: StorageRoot, outputs: PartitionOutputs) -> list[str]:
    """The local folders the outputs need that do not exist yet, deepest first (S3 has no folders)."""
    if root.is_s3:
        return []
    base = os.path.normpath(root.fs_path(root.uri))
    missing: set[str] = set()
    for uri in (outputs.predictions, outputs.serving_log, outputs.shadow_report):
        folder = os.path.dirname(os.path.normpath(root.fs_path(uri)))
        while folder.startswith(base + os.sep) and not os.path.isdir(folder):
            missing.add(folder)
            folder = os.path.dirname(folder)
    return sorted(missing, key=lambda f: f.count(os.sep), reverse=True)


def remove_if_empty(folders: list[str]) -> None:
    """Remove each folder that is empty (``rmdir`` never removes content), deepest first."""
    for folder in folders:
        with contextlib.suppress(OSError):
            os.rmdir(folder)
