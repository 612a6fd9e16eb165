"""Ingestion: read one source (a SQL query or table, CSV or Parquet files on S3 or a local disk) in bounded
chunks into one immutable, reproducible Parquet snapshot with a receipt, and tell the data-event sensor
whether new data has landed. Public API: ``IngestSpec``, ``ingest``, ``IngestReceipt``, ``previous_receipt``,
``since_last_snapshot``, ``partition_key``, ``snapshot_uri``, ``receipt_uri``, ``render_sql_template``,
``check_read_only``, ``WatchSpec``, ``probe``, ``Availability``, ``declared_type``, ``normal_type``,
``schema_fingerprint``, ``list_source_files``, ``SourceFile``, ``EmptySourceError``, ``SourceAccessError``,
``SourceUnavailableError`` (modules: ``spec`` validates what to read, ``types`` normalises column types,
``sql`` renders SQL templates and streams SQL rows, ``readonly`` refuses source queries that would write,
``files`` lists and reads files, ``unify`` decides one schema for the files of one ingestion, ``snapshot``
writes the snapshot and its receipt, ``availability`` probes for new data, ``errors`` holds the stem's
failures).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.ingestion.availability import Availability, WatchSpec, probe
    from airflow_mlops.core.ingestion.errors import EmptySourceError, SourceAccessError, SourceUnavailableError
    from airflow_mlops.core.ingestion.files import SourceFile, list_source_files
    from airflow_mlops.core.ingestion.readonly import check_read_only
    from airflow_mlops.core.ingestion.snapshot import (
        RECEIPT_FILE,
        SNAPSHOT_FILE,
        IngestReceipt,
        ingest,
        partition_key,
        previous_receipt,
        receipt_uri,
        since_last_snapshot,
        snapshot_uri,
    )
    from airflow_mlops.core.ingestion.spec import IngestSpec
    from airflow_mlops.core.ingestion.sql import render_sql_template
    from airflow_mlops.core.ingestion.types import declared_type, normal_type, schema_fingerprint

__all__ = [
    "RECEIPT_FILE",
    "SNAPSHOT_FILE",
    "Availability",
    "EmptySourceError",
    "IngestReceipt",
    "IngestSpec",
    "SourceAccessError",
    "SourceFile",
    "SourceUnavailableError",
    "WatchSpec",
    "check_read_only",
    "declared_type",
    "ingest",
    "list_source_files",
    "normal_type",
    "partition_key",
    "previous_receipt",
    "probe",
    "receipt_uri",
    "render_sql_template",
    "schema_fingerprint",
    "since_last_snapshot",
    "snapshot_uri",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "RECEIPT_FILE": "snapshot",
        "SNAPSHOT_FILE": "snapshot",
        "Availability": "availability",
        "EmptySourceError": "errors",
        "IngestReceipt": "snapshot",
        "IngestSpec": "spec",
        "SourceAccessError": "errors",
        "SourceFile": "files",
        "SourceUnavailableError": "errors",
        "WatchSpec": "availability",
        "check_read_only": "readonly",
        "declared_type": "types",
        "ingest": "snapshot",
        "list_source_files": "files",
        "normal_type": "types",
        "partition_key": "snapshot",
        "previous_receipt": "snapshot",
        "since_last_snapshot": "snapshot",
        "probe": "availability",
        "receipt_uri": "snapshot",
        "render_sql_template": "sql",
        "schema_fingerprint": "types",
        "snapshot_uri": "snapshot",
    },
)
