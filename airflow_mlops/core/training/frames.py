"""Frames in and out of the storage root: read a Parquet snapshot and verify its sha256, write a frame
as Parquet atomically, and sample text features for the personal-data check."""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.storage import StorageRoot, sha256_bytes

if TYPE_CHECKING:
    import pandas as pd


def read_snapshot(root: StorageRoot, uri: str, expected_sha256: str | None = None) -> tuple[pd.DataFrame, str]:
    """Read a Parquet snapshot; verify its sha256 when one is given. Returns the frame and its sha256.

    The snapshot may live inside the storage root (local or S3) or be any local file.

    :raises IntegrityError: the content does not hash to ``expected_sha256``.
    :raises DataError: the file is not readable Parquet.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from airflow_mlops.core.errors import IntegrityError, SourceNotFoundError

    if root.contains(uri):
        source = root
    elif uri.startswith("s3://"):
        raise SpecError(
            f"The snapshot {uri!r} lies outside the storage root {root.uri!r}; S3 snapshots must be inside it."
        )
    else:  # a local file anywhere (a shipped sample, a file produced outside the pipeline)
        path = os.path.abspath(uri[len("file://") :] if uri.startswith("file://") else uri)
        source, uri = StorageRoot(os.path.dirname(path)), path
    try:
        content = source.read_bytes(uri)
    except SourceNotFoundError as exc:
        raise SourceNotFoundError(f"The snapshot {uri!r} does not exist.") from exc
    digest = sha256_bytes(content)
    if expected_sha256 and digest != expected_sha256.strip().lower():
        raise IntegrityError(
            f"The snapshot {uri!r} has sha256 {digest}, but {expected_sha256} was recorded when it was ingested: "
            "it changed since. Refusing to train on it."
        )
    try:
        table = pq.read_table(pa.BufferReader(content))
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"The snapshot {uri!r} is not a readable Parquet file: {exc}") from exc
    return table.to_pandas(), digest


def feature_samples(frame: pd.DataFrame, features: tuple[str, ...], rows: int = 10_000) -> dict[str, list[Any]]:
    """The first ``rows`` values of each text feature (what the personal-data detector reads); other
    features by name only (numbers are not inspected, a name such as ``email`` still is)."""
    from pandas.api.types import is_numeric_dtype

    head = frame.head(rows)
    return {name: [] if is_numeric_dtype(head[name]) else head[name].tolist() for name in features}


def write_frame(root: StorageRoot, uri: str, frame: pd.DataFrame) -> str:
    """Write ``frame`` as Parquet to ``uri`` atomically; return the content's sha256."""
    return root.write_bytes(uri, parquet_bytes(frame))


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer, compression="zstd")
    return buffer.getvalue()
