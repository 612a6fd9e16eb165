"""The current batch of a drift check as the champion saw it: a raw batch goes through the champion's
feature transforms before it is compared.

A serving log already holds the transformed features (the scoring path wrote them) and is compared as it
is. A raw batch (the landing files' columns only) lacks the columns the champion's transforms produce: a
derived day of week, the weather joined at departure. The champion version's transforms (from its training
spec artifact, never the current pipeline file) are applied to it through
:class:`~airflow_mlops.core.features.apply.Transformer`, the one implementation training and scoring use,
record batch by record batch into a Parquet file the check then reads column by column: memory stays
bounded, and the produced columns are checked like any feature. A batch that lacks a column the transforms
read is left as it is, and the check reports the missing features as schema skew.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.drift.tables import parquet_location
from airflow_mlops.core.errors import DataError, SourceNotFoundError

if TYPE_CHECKING:
    from airflow_mlops.core.features.dimensions import SqlEngine
    from airflow_mlops.core.storage import StorageRoot

CHUNK_ROWS = 65_536
TRANSFORMED_NAME = "current-transformed.parquet"


@dataclass(frozen=True)
class PreparedBatch:
    """What the drift check compares: the batch as given, or (``transforms`` set) its transformed copy.

    :ivar transforms: the transforms' receipt when they ran: rows, derived columns, and per join its
        dimension (URI, sha256) with matched and unmatched rows.
    """

    location: Any
    transforms: dict[str, Any] | None = None


def with_champion_transforms(
    current: Any,
    training_spec: Mapping[str, Any] | None,
    *,
    root: StorageRoot,
    pipeline: str,
    folder: str,
    sql_engine: SqlEngine | None = None,
) -> PreparedBatch:
    """``current`` (a Parquet URI or a frame) with the champion's transforms applied when it is a raw batch.

    :param training_spec: the champion's training spec artifact (its ``transforms``); None: no transforms.
    :param folder: a local folder for the transformed copy (the check's temporary folder).
    :param sql_engine: a connection id -> a SQLAlchemy engine, for joins whose dimension is a SQL table.
    :raises SourceNotFoundError: the batch or a dimension does not exist.
    :raises DataError: a batch value or a dimension does not fit the transforms.
    """
    import pandas as pd

    from airflow_mlops.core.features.spec import FeatureTransforms

    transforms = FeatureTransforms.from_mapping((training_spec or {}).get("transforms"), where="transforms")
    if not transforms:
        return PreparedBatch(current)
    if isinstance(current, pd.DataFrame):
        if not _raw(list(current.columns), transforms):
            return PreparedBatch(current)
        transformer = _bind(transforms, root, pipeline, sql_engine)
        return PreparedBatch(transformer.apply_frame(current), transformer.receipt())
    parquet = _open(str(current), root)
    if not _raw(parquet.schema_arrow.names, transforms):
        return PreparedBatch(current)
    transformer = _bind(transforms, root, pipeline, sql_engine)
    path = os.path.join(folder, TRANSFORMED_NAME)
    _write_transformed(parquet, transformer, path)
    return PreparedBatch(path, transformer.receipt())


def _raw(columns: list[str], transforms: Any) -> bool:
    """A raw batch: it carries every column the transforms read and lacks a column they produce."""
    present = set(columns)
    return all(c in present for c in transforms.inputs()) and any(c not in present for c in transforms.outputs)


def _bind(transforms: Any, root: StorageRoot, pipeline: str, sql_engine: SqlEngine | None) -> Any:
    from airflow_mlops.core.features.apply import bind

    return bind(transforms, root, pipeline, sql_engine)


def _open(uri: str, root: StorageRoot) -> Any:
    import pyarrow.parquet as pq

    filesystem, path = parquet_location(uri, root, "current batch")
    try:
        return pq.ParquetFile(filesystem.open_input_file(path))
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"The current batch {uri!r} does not exist: no Parquet file there.") from exc
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"The current batch {uri!r} could not be read as Parquet: {exc}") from exc


def _write_transformed(parquet: Any, transformer: Any, path: str) -> None:
    """Every record batch through the transforms into ``path`` (an empty batch gives an empty file)."""
    import pyarrow.parquet as pq

    schema = transformer.output_schema(parquet.schema_arrow)
    with pq.ParquetWriter(path, schema) as writer:
        for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
            writer.write_batch(transformer.apply(batch).select(schema.names))
