"""Which file of the storage root a report request names, refusing every path that could leave the root.

A request names a path relative to the storage root (``flights/drift/2013-04-01/report.html``). It is
served only when it is relative, made of safe segments (no ``..``, no hidden or temporary names, see
:func:`~airflow_mlops.core.storage.validate_segment`), names a file of a report type, and, on a local
root, still lies inside the root once symlinks are resolved. Nothing here imports Airflow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.storage import validate_key
from airflow_mlops.links.urls import TABLE_NAMES, is_table

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot

# The report types served, by extension. Anything else under the root (snapshots, models) is not a report.
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".md": "text/markdown; charset=utf-8",
    ".txt": "text/plain; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
MAX_BYTES = 64 * 1024 * 1024  # a report larger than this is refused rather than read into memory
PREVIEW_ROWS = 50


class ReportPathRefused(SpecError):
    """The path is not a safe relative path to a report under the storage root (HTTP 400)."""


class ReportOutsideRoot(SpecError):
    """The path resolves outside the storage root, through a symlink (HTTP 403)."""


class NotAReport(SpecError):
    """The file is not of a report type, or too large to serve (HTTP 415)."""


@dataclass(frozen=True)
class TablePreview:
    uri: str
    columns: list[str]
    rows: list[tuple[object, ...]]
    total_rows: int


@dataclass(frozen=True)
class Report:
    uri: str
    content_type: str
    content: bytes


def checked_path(relative: str, what: str = "report path") -> str:
    """``relative`` when it is a safe path relative to the storage root; refuses absolute paths, ``..``,
    hidden and odd segments (:class:`ReportPathRefused`)."""
    try:
        return validate_key(relative, what)
    except SpecError as exc:
        raise ReportPathRefused(str(exc)) from exc


def report_uri(root: StorageRoot, relative: str) -> str:
    """The URI of ``relative`` under ``root``; refuses absolute paths, ``..``, hidden and odd segments."""
    return root.join(checked_path(relative))


def content_type(uri: str) -> str:
    """The content type of a report by its extension; other files are refused."""
    extension = os.path.splitext(uri)[1].lower()
    if extension not in CONTENT_TYPES:
        raise NotAReport(
            f"Only reports are served ({', '.join(sorted(CONTENT_TYPES))}). Got {uri.rpartition('/')[2]!r} instead."
        )
    return CONTENT_TYPES[extension]


def _check_local_containment(root: StorageRoot, uri: str) -> None:
    """A symlink inside a local root may point anywhere: the resolved file must still be inside the root."""
    real_root = os.path.realpath(root.fs_path(root.uri))
    real = os.path.realpath(root.fs_path(uri))
    if real != real_root and not real.startswith(real_root.rstrip(os.sep) + os.sep):
        raise ReportOutsideRoot(f"The report path resolves outside the storage root {root.uri!r}; refusing it.")


def read_report(root: StorageRoot, relative: str) -> Report:
    """The report at ``relative`` under ``root``: its URI, content type and bytes.

    :raises ReportPathRefused: the path is absolute, climbs with ``..`` or has unsafe segments.
    :raises ReportOutsideRoot: a symlink takes it outside a local root.
    :raises NotAReport: not a report type, or larger than :data:`MAX_BYTES`.
    :raises SourceNotFoundError: no file there (a folder is not a report either).
    """
    import pyarrow.fs as pafs

    uri = report_uri(root, relative)
    kind = content_type(uri)
    if not root.is_s3:
        _check_local_containment(root, uri)
    info = root.filesystem.get_file_info(root.fs_path(uri))
    if info.type != pafs.FileType.File:
        raise SourceNotFoundError(f"No report at {relative!r} under the storage root.")
    if info.size is not None and info.size > MAX_BYTES:
        raise NotAReport(f"The report {relative!r} has {info.size} bytes; at most {MAX_BYTES} are served.")
    return Report(uri, kind, root.read_bytes(uri))


def report_link(root: StorageRoot, uri: str | None, base_url: str) -> str | None:
    """The address under ``base_url`` (the plugin's report route) of ``uri``, or None when it lies outside
    ``root``. Built by the same function as the validation and drift task links."""
    from airflow_mlops.core.validation.report import report_url

    if not uri:
        return None
    try:
        return report_url(root, uri, base_url) if root.contains(uri) else None
    except SpecError:
        return None


def read_table_preview(root: StorageRoot, relative: str, rows: int = PREVIEW_ROWS) -> TablePreview:
    """The first ``rows`` rows and the row count of the table at ``relative``, with the same path checks as
    :func:`read_report`; only :data:`TABLE_NAMES` are read (:class:`NotAReport` otherwise)."""
    import pyarrow.parquet as pq

    uri = report_uri(root, relative)
    if not is_table(relative):
        raise NotAReport(f"Only {', '.join(TABLE_NAMES)} tables are shown. Got {uri.rpartition('/')[2]!r} instead.")
    if not root.is_s3:
        _check_local_containment(root, uri)
    if root.filesystem.get_file_info(root.fs_path(uri)).type.name != "File":
        raise SourceNotFoundError(f"No table at {relative!r} under the storage root.")
    with root.filesystem.open_input_file(root.fs_path(uri)) as handle:
        parquet = pq.ParquetFile(handle)
        total = parquet.metadata.num_rows
        head = next(parquet.iter_batches(batch_size=rows), None)
        table = head.to_pylist() if head is not None else []
        columns = list(parquet.schema_arrow.names)
    return TablePreview(uri, columns, [tuple(row.get(c) for c in columns) for row in table], total)
