"""Snapshots: read one source in bounded chunks into one immutable, reproducible Parquet file.

Sources are a SQL query or table (through a SQLAlchemy engine), or CSV/Parquet files on S3 or a local
disk (through a pyarrow filesystem). Rows travel in chunks of ``chunk_rows``: a server-side cursor for
SQL, ``pyarrow.dataset`` batches for files, so memory is bounded by the chunk size and not by the size of
the source. Each chunk is conformed to one output schema (declared columns first, with their declared
types; then the source's other columns with deterministically normalised types), re-cut into row groups of
exactly ``chunk_rows`` rows and streamed into ``{root}/{pipeline}/snapshots/{partition}/data.parquet``
through :meth:`StorageRoot.atomic_output`. The sha256 is computed while writing. Reading the same rows
again writes the same bytes: a rerun of a partition replaces it with an identical file and checksum.

A small ``receipt.json`` beside the data records what was written; incremental SQL ingestion reads the
watermark of the latest earlier partition from it.

Reading is in :mod:`~airflow_mlops.core.ingestion.sql` and :mod:`~airflow_mlops.core.ingestion.files`,
conforming in :mod:`~airflow_mlops.core.ingestion.types`. Nothing here imports Airflow: connections
become engines and filesystems in the hooks.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.errors import EmptySourceError
from airflow_mlops.core.ingestion.files import _file_tables, list_source_files
from airflow_mlops.core.ingestion.spec import IngestSpec
from airflow_mlops.core.ingestion.sql import _sql_tables, _url
from airflow_mlops.core.ingestion.types import Scalar, _Conformer, _json_scalar, schema_fingerprint
from airflow_mlops.core.storage import StorageRoot, validate_segment

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

SNAPSHOT_FILE = "data.parquet"
RECEIPT_FILE = "receipt.json"
_COMPRESSION = "zstd"


# -- receipt -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class IngestReceipt:
    """What one ingestion wrote: small and JSON-able, pushed to XCom and carried by the asset event."""

    uri: str
    pipeline: str
    partition: str
    rows: int
    columns: tuple[str, ...]
    schema: tuple[tuple[str, str], ...]
    schema_fingerprint: str
    sha256: str
    bytes: int
    row_groups: int
    source: str
    watermark_column: str | None
    source_watermark: Scalar
    since: Scalar
    warnings: tuple[str, ...] = ()  # what was accepted but deserves a look (also logged by the operator)

    def with_warnings(self, warnings: Iterable[str]) -> IngestReceipt:
        return dataclasses.replace(self, warnings=tuple(warnings))

    def to_dict(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "pipeline": self.pipeline,
            "partition": self.partition,
            "rows": self.rows,
            "columns": list(self.columns),
            "schema": dict(self.schema),
            "schema_fingerprint": self.schema_fingerprint,
            "sha256": self.sha256,
            "bytes": self.bytes,
            "row_groups": self.row_groups,
            "source": self.source,
            "watermark_column": self.watermark_column,
            "source_watermark": self.source_watermark,
            "since": self.since,
            "warnings": list(self.warnings),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> IngestReceipt:
        try:
            return cls(
                uri=str(data["uri"]),
                pipeline=str(data["pipeline"]),
                partition=str(data["partition"]),
                rows=int(data["rows"]),
                columns=tuple(data["columns"]),
                schema=tuple((str(k), str(v)) for k, v in dict(data["schema"]).items()),
                schema_fingerprint=str(data["schema_fingerprint"]),
                sha256=str(data["sha256"]),
                bytes=int(data["bytes"]),
                row_groups=int(data["row_groups"]),
                source=str(data["source"]),
                watermark_column=data.get("watermark_column"),
                source_watermark=data.get("source_watermark"),
                since=data.get("since"),
                warnings=tuple(str(w) for w in data.get("warnings") or ()),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"Not an ingestion receipt: {exc!r} in {dict(data)!r}.") from exc


def partition_key(value: dt.datetime | dt.date | str) -> str:
    """Partition segment for a run: ISO 8601 in UTC (``2013-04-01T00:00:00+00:00``) or a validated string."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        text = aware.astimezone(dt.UTC).isoformat()
    elif isinstance(value, dt.date):
        text = value.isoformat()
    else:
        text = str(value)
    return validate_segment(text, "partition key")


# -- writing -------------------------------------------------------------------------------------
def _rechunk(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Re-cut a stream of tables into contiguous tables of exactly ``rows`` rows (the last may be shorter).

    Row groups and page boundaries then depend only on the data and ``rows``, never on how the source
    happened to batch it: the same rows always give the same bytes.
    """
    pending: list[pa.Table] = []
    count = 0
    for table in tables:
        if table.num_rows == 0:
            continue
        pending.append(table)
        count += table.num_rows
        while count >= rows:
            merged = pa.concat_tables(pending)
            yield merged.slice(0, rows).combine_chunks()
            rest = merged.slice(rows)
            pending = [rest] if rest.num_rows else []
            count -= rows
    if count:
        yield pa.concat_tables(pending).combine_chunks()


class _HashingSink:
    """File-like object that forwards writes to a stream and hashes them on the way."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._digest = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._stream.write(view)
        self.size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        return None

    def close(self) -> None:
        self.closed = True  # the atomic output owns the real stream and commits it

    @property
    def hexdigest(self) -> str:
        return self._digest.hexdigest()


def _max_value(values: Any) -> Any:
    if pa.types.is_null(values.type) or values.null_count == len(values):
        return None
    try:
        return pc.max(values).as_py()
    except (pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise DataError(f"Cannot take the maximum of a {values.type} column as a watermark: {exc}") from exc


@dataclass
class _Written:
    rows: int = 0
    row_groups: int = 0
    watermark: Any = None
    schema: pa.Schema | None = None
    sha256: str = ""
    size: int = 0


def _write_snapshot(
    chunks: Iterable[pa.Table], root: StorageRoot, uri: str, chunk_rows: int, watermark_column: str | None
) -> _Written:
    """Stream tables into one Parquet file at ``uri``; nothing appears there unless every chunk was written."""
    import pyarrow.parquet as pq

    written = _Written()
    with contextlib.ExitStack() as stack:
        close = getattr(chunks, "close", None)
        if close is not None:  # on error too: stops the fetch thread and closes the source connection now
            stack.callback(close)
        writer = None
        sink = None
        for table in _rechunk(chunks, chunk_rows):
            if writer is None:
                stream = stack.enter_context(root.atomic_output(uri))
                sink = _HashingSink(stream)
                written.schema = table.schema
                writer = stack.enter_context(
                    pq.ParquetWriter(
                        pa.PythonFile(sink, mode="w"), table.schema, compression=_COMPRESSION, version="2.6"
                    )
                )
            writer.write_table(table, row_group_size=chunk_rows)
            written.rows += table.num_rows
            written.row_groups += 1
            if watermark_column is not None:
                top = _max_value(table.column(watermark_column))
                if top is not None and (written.watermark is None or top > written.watermark):
                    written.watermark = top
        if writer is not None and sink is not None:
            writer.close()
            written.sha256, written.size = sink.hexdigest, sink.size
    return written


# -- ingest --------------------------------------------------------------------------------------
def snapshot_uri(root: StorageRoot, pipeline: str, partition: str) -> str:
    return root.layout(pipeline, contracts.KIND_SNAPSHOT, partition, SNAPSHOT_FILE)


def receipt_uri(root: StorageRoot, pipeline: str, partition: str) -> str:
    return root.layout(pipeline, contracts.KIND_SNAPSHOT, partition, RECEIPT_FILE)


def previous_receipt(root: StorageRoot, pipeline: str, partition: str) -> IngestReceipt | None:
    """The receipt of the latest partition that sorts before ``partition``, or None."""
    base = root.join(validate_segment(pipeline, "pipeline name"), contracts.KIND_SNAPSHOT)
    earlier = []
    for uri in root.list_files(base):
        head, _, name = uri.rpartition("/")
        found = head.rpartition("/")[2]
        if name == RECEIPT_FILE and head.rpartition("/")[0] == base and found < partition:
            earlier.append((found, uri))
    if not earlier:
        return None
    _, uri = max(earlier)
    return IngestReceipt.from_dict(json.loads(root.read_bytes(uri)))


def since_last_snapshot(root: StorageRoot, pipeline: str, *, rows: bool) -> Scalar:
    """Where new data starts for a watch of the pipeline's source; None before its first snapshot.

    :param rows: True for a SQL source: the latest snapshot's ``source_watermark`` (rows past it are
        new). False for files: the instant the latest snapshot's receipt was written, as ISO 8601 text
        (files modified after it landed after that snapshot was taken).
    """
    latest = previous_receipt(root, pipeline, "\U0010ffff")  # sorts after every partition key
    if latest is None:
        return None
    if rows:
        return latest.source_watermark
    info = root.filesystem.get_file_info(root.fs_path(receipt_uri(root, pipeline, latest.partition)))
    return None if info.mtime is None else info.mtime.astimezone(dt.UTC).isoformat()


def ingest(
    spec: IngestSpec,
    *,
    root: StorageRoot,
    pipeline: str,
    partition: str,
    engine: Engine | None = None,
    filesystem: pafs.FileSystem | None = None,
) -> IngestReceipt | None:
    """Read the source of ``spec`` into the snapshot of ``partition``; return its receipt.

    Returns None when the source is empty and ``spec.on_empty`` is ``skip`` (nothing is written);
    raises :class:`EmptySourceError` when it is ``fail``. On any error nothing is written and an earlier
    snapshot of the same partition stays as it was.

    :param engine: SQLAlchemy engine, for ``sql`` sources.
    :param filesystem: pyarrow filesystem reaching ``spec.path``, for ``s3`` and ``local`` sources.
    """
    validate_segment(pipeline, "pipeline name")
    partition = validate_segment(partition, "partition key")
    uri = snapshot_uri(root, pipeline, partition)
    conformer = _Conformer(spec, spec.describe())
    since = spec.since
    if spec.source == "sql":
        if engine is None:
            raise SpecError("ingest() needs an SQLAlchemy engine for a 'sql' source.")
        if spec.incremental:
            since = _incremental_since(spec, root, pipeline, partition)
        tables: Iterable[pa.Table] = (
            conformer.conform(t, spec.describe()) for t in _sql_tables(spec, engine, since, spec.until, conformer)
        )
        source = f"{spec.describe()} at {_url(engine)}"
    else:
        if filesystem is None:
            raise SpecError(f"ingest() needs a pyarrow filesystem for a {spec.source!r} source.")
        tables = _file_source_tables(spec, filesystem, conformer)
        source = spec.describe()
    written = _write_snapshot(tables, root, uri, spec.chunk_rows, spec.watermark_column)
    if written.rows == 0 or written.schema is None:
        if spec.on_empty == "skip":
            return None
        raise EmptySourceError(
            f"{source} returned no rows for partition {partition!r}"
            + (f" past the watermark {since!r}" if since is not None else "")
            + "; expected at least one (set on_empty='skip' to skip instead of failing). Nothing was written."
        )
    receipt = _receipt(
        written, written.schema, uri=uri, pipeline=pipeline, partition=partition, source=source, spec=spec, since=since
    )
    receipt = receipt.with_warnings(conformer.warnings)
    body = json.dumps(receipt.to_dict(), indent=2).encode() + b"\n"  # key order is fixed by to_dict()
    root.write_bytes(receipt_uri(root, pipeline, partition), body)
    root.remove_stale_temporaries(uri)  # what a killed earlier attempt of this partition left
    return receipt


def _incremental_since(spec: IngestSpec, root: StorageRoot, pipeline: str, partition: str) -> Scalar:
    """The lower watermark bound of an incremental read: where the latest earlier partition stopped."""
    previous = previous_receipt(root, pipeline, partition)
    if previous is not None and previous.watermark_column != spec.watermark_column:
        raise SpecError(
            f"Incremental ingestion of {pipeline!r}: the previous snapshot (partition {previous.partition!r}) "
            f"tracked watermark column {previous.watermark_column!r}, this spec tracks "
            f"{spec.watermark_column!r}. Use the same column or ingest without 'incremental'."
        )
    return previous.source_watermark if previous is not None else None


def _file_source_tables(spec: IngestSpec, filesystem: pafs.FileSystem, conformer: _Conformer) -> Iterator[pa.Table]:
    """The conformed batches of every file of ``spec``; at least one file must match."""
    files = list_source_files(filesystem, str(spec.path), spec.pattern)
    if not files:
        raise SourceNotFoundError(
            f"No {spec.format} file matches {spec.pattern or '*'!r} under {spec.path!r}; expected at least one."
        )
    return _file_tables(spec, filesystem, files, conformer)


def _receipt(
    written: _Written,
    arrow_schema: pa.Schema,
    *,
    uri: str,
    pipeline: str,
    partition: str,
    source: str,
    spec: IngestSpec,
    since: Any,
) -> IngestReceipt:
    """The receipt of a snapshot that was written with ``arrow_schema``."""
    schema = tuple((f.name, str(f.type)) for f in arrow_schema)
    return IngestReceipt(
        uri=uri,
        pipeline=pipeline,
        partition=partition,
        rows=written.rows,
        columns=tuple(arrow_schema.names),
        schema=schema,
        schema_fingerprint=schema_fingerprint(schema),
        sha256=written.sha256,
        bytes=written.size,
        row_groups=written.row_groups,
        source=source,
        watermark_column=spec.watermark_column,
        source_watermark=_json_scalar(written.watermark),
        since=_json_scalar(since),
    )
