"""Reading snapshots: missing and unreadable ones are named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import validation as v
from airflow_mlops.core.errors import DataError, SourceNotFoundError
from airflow_mlops.core.storage import StorageRoot


def test_unreadable_snapshots_are_named(tmp_path: Path, suite: Any) -> None:
    root = StorageRoot(str(tmp_path))
    uri = root.layout("p", "snapshots", "x", "data.parquet")
    with pytest.raises(SourceNotFoundError, match=r"No snapshot at"):
        v.read_snapshot(uri, root)
    root.write_bytes(uri, b"not parquet")
    with pytest.raises(DataError, match=r"is not a readable Parquet file"):
        v.read_snapshot(uri, root)
