"""Inputs of batch scoring: which Parquet files an input URI names, and the partitions under a prefix.

An input is one Parquet file, every data file under a folder, or a glob's matches; local, ``file://``
or ``s3://``. Files whose path has a segment starting with ``.`` or ``_`` are not data (temporaries,
``_SUCCESS`` markers, checksum files) and are skipped. Everything is sorted by path, so a partition
always streams in the same order.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot, validate_segment

_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class InputFile:
    """One Parquet file of the input: ``uri`` for messages and receipts, ``path`` for the filesystem."""

    uri: str
    path: str


def _parse_uri(uri: str) -> tuple[bool, str]:
    """(is_s3, filesystem path) of a local path, ``file://`` or ``s3://`` URI."""
    text = str(uri).strip()
    if not text:
        raise SpecError("The input URI is empty: give a Parquet file, a folder or a glob (local or s3://).")
    if text.startswith("s3://"):
        path = text[len("s3://") :].rstrip("/")
        if not path:
            raise SpecError(f"An S3 input must name a bucket: s3://bucket/key. Got {uri!r}.")
        return True, path
    if text.startswith("file://"):
        text = text[len("file://") :]
    elif "://" in text:
        raise SpecError(f"Input URIs must be local paths, file:// or s3://. Got {uri!r}.")
    return False, os.path.abspath(text)


def input_filesystem(uri: str, root: StorageRoot) -> Any:
    """The filesystem that reaches ``uri``: the storage root's for S3 inputs on an S3 root, local otherwise."""
    import pyarrow.fs as pafs

    is_s3, _ = _parse_uri(uri)
    if not is_s3:
        return pafs.LocalFileSystem()
    if root.is_s3:
        return root.filesystem
    raise SpecError(
        f"The input {uri!r} is on S3 but the storage root {root.uri!r} is local: pass a filesystem for it "
        "(the operator builds one from its AWS connection)."
    )


def _hidden(relative: str) -> bool:
    """Files that are not data: temporaries, checksums, markers (``.x``, ``_SUCCESS``, ``_temporary/``)."""
    return any(part.startswith((".", "_")) for part in relative.split("/") if part)


def _glob_match(pattern: Sequence[str], parts: Sequence[str]) -> bool:
    """Match path segments against glob segments: ``*``, ``?`` and ``[...]`` stay within a segment,
    ``**`` spans any number of segments."""
    if not pattern:
        return not parts
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        return any(_glob_match(rest, parts[i:]) for i in range(len(parts) + 1))
    return bool(parts) and fnmatch.fnmatchcase(parts[0], head) and _glob_match(rest, parts[1:])


def resolve_input(uri: str, filesystem: Any) -> list[InputFile]:
    """The Parquet files of an input: one file, every data file under a folder, or a glob's matches.

    Files whose path below the folder (or glob base) has a segment starting with ``.`` or ``_`` are
    skipped (temporaries, ``_SUCCESS`` markers, checksum files). The order is sorted by path, so a
    partition always streams in the same order.

    :raises SourceNotFoundError: nothing exists at ``uri``, or the glob matches no file.
    """
    import pyarrow.fs as pafs

    is_s3, path = _parse_uri(uri)
    prefix = "s3://" if is_s3 else ""
    if _GLOB.search(path):
        found = _glob_files(path, filesystem)
        if not found:
            raise SourceNotFoundError(f"No Parquet file matches the input glob {uri!r}.")
        return [InputFile(prefix + p, p) for p in found]
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [InputFile(prefix + path, path)]
    if info.type == pafs.FileType.Directory:
        found = sorted(i.path for i in _listing(path, filesystem) if not _hidden(i.path[len(path) :]))
        if not found:
            raise SourceNotFoundError(f"The input folder {uri!r} holds no data file.")
        return [InputFile(prefix + p, p) for p in found]
    raise SourceNotFoundError(f"The input {uri!r} does not exist: expected a Parquet file, a folder or a glob.")


def _listing(base: str, filesystem: Any) -> list[Any]:
    """Every file below ``base`` (recursively; nothing when ``base`` does not exist)."""
    import pyarrow.fs as pafs

    selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
    return [i for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File]


def _glob_files(path: str, filesystem: Any) -> list[str]:
    """The data files a glob path matches, sorted: listed from the glob's fixed base folder."""
    parts = path.split("/")
    first = next(i for i, p in enumerate(parts) if _GLOB.search(p))
    base = "/".join(parts[:first]) or "/"
    pattern = [p for p in parts[first:] if p]
    found = []
    for info in _listing(base, filesystem):
        relative = info.path[len(base) :].strip("/")
        if not _hidden(relative) and _glob_match(pattern, relative.split("/")):
            found.append(info.path)
    return sorted(found)


def list_partitions(uri: str, filesystem: Any, pattern: str = "*") -> list[dict[str, str]]:
    """The partitions directly under ``uri``, as keyword sets for ``ScoreBatchOperator.partial().expand_kwargs()``.

    A partition is a sub-folder (``month=2013-01/``) or a Parquet file (``2013-01.parquet``) whose name
    matches ``pattern``; its key is the folder name or the file name without ``.parquet``. Hidden
    entries (``.x``, ``_x``) are skipped. Sorted by key.

    :raises SourceNotFoundError: ``uri`` is not a folder.
    :raises SpecError: a partition name is not a safe storage path segment.
    """
    import pyarrow.fs as pafs

    is_s3, path = _parse_uri(uri)
    prefix = "s3://" if is_s3 else ""
    if filesystem.get_file_info(path).type != pafs.FileType.Directory:
        raise SourceNotFoundError(f"The partition prefix {uri!r} is not a folder.")
    found: dict[str, str] = {}
    for info in filesystem.get_file_info(pafs.FileSelector(path, recursive=False)):
        name = info.path.rstrip("/").rpartition("/")[2]
        if _hidden(name) or not fnmatch.fnmatchcase(name, pattern):
            continue
        if info.type == pafs.FileType.Directory:
            key = name
        elif info.type == pafs.FileType.File and name.endswith(".parquet"):
            key = name[: -len(".parquet")]
        else:
            continue
        found[validate_segment(key, f"partition name (from {prefix}{info.path!s})")] = prefix + info.path
    return [{"input_uri": found[key], "partition": key} for key in sorted(found)]
