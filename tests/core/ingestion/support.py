"""Helpers of the ingestion tests: specs over landed files, and checks that nothing was written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from airflow_mlops.cli import replay
from airflow_mlops.core.ingestion.spec import IngestSpec
from airflow_mlops.core.storage import StorageRoot

LOCAL = pafs.LocalFileSystem()
MONTH_1, MONTH_2, MONTH_3 = 27004, 24951, 28834


def files_spec(path: Path | str, pattern: str | None = "*.parquet", **extra: object) -> IngestSpec:
    return IngestSpec.from_mapping({"source": "local", "path": str(path), "pattern": pattern, **extra})


def nothing_written(root: StorageRoot) -> bool:
    return root.list_files(root.uri) == [] and not any(Path(root.uri).rglob(".tmp-*"))


def write_month(flights: pa.Table, month: int, path: Path) -> pa.Table:
    rows = replay.month_rows(flights, month)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(rows, path)
    return rows
