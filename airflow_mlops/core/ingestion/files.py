"""File sources: CSV or Parquet files on S3 or a local disk, through a pyarrow filesystem.

:func:`list_source_files` lists what matches a glob under a folder or prefix (hidden names never match);
:func:`_file_tables` reads the files in path order as ``pyarrow.dataset`` batches of ``chunk_rows`` rows,
so memory is bounded by the chunk size and not by the size of the files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from airflow_mlops.core.errors import DataError, MlopsError, SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.errors import SourceAccessError, SourceUnavailableError
from airflow_mlops.core.ingestion.patterns import glob_regex
from airflow_mlops.core.ingestion.unify import unify_file_schemas

if TYPE_CHECKING:
    from airflow_mlops.core.ingestion.spec import IngestSpec
    from airflow_mlops.core.ingestion.types import _Conformer


# -- file listing ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceFile:
    """One file or object of a file source."""

    uri: str
    fs_path: str
    relative: str
    size: int
    modified: dt.datetime | None


def _split_source_path(path: str) -> tuple[bool, str]:
    if path.startswith("s3://"):
        return True, path[len("s3://") :].rstrip("/")
    if path.startswith("file://"):
        path = path[len("file://") :]
    return False, path.rstrip("/") or "/"


def _is_hidden(relative: str) -> bool:
    return any(part.startswith((".", "_")) for part in relative.split("/"))


def list_source_files(
    filesystem: pafs.FileSystem, path: str, pattern: str | None, *, missing_ok: bool = False
) -> list[SourceFile]:
    """Files under ``path`` matching ``pattern`` (all direct children when None), sorted by path.

    ``path`` may also name a single file (then ``pattern`` must be empty). Hidden names, starting with
    ``.`` or ``_`` (temporary uploads, ``_SUCCESS`` markers), are skipped. A missing S3 bucket raises
    :class:`SourceNotFoundError`, and so does a missing local folder unless ``missing_ok``; an S3 prefix
    without objects is simply empty (S3 has no folders).
    """
    is_s3, base = _split_source_path(path)
    scheme = "s3://" if is_s3 else ""
    try:
        info = filesystem.get_file_info(base)
        if info.type == pafs.FileType.File:
            if pattern:
                raise SpecError(f"The path {path!r} names a file; a 'pattern' only applies to a folder or prefix.")
            return [SourceFile(scheme + info.path, info.path, info.base_name, int(info.size or 0), info.mtime)]
        if info.type == pafs.FileType.NotFound:
            if not is_s3:
                if missing_ok:
                    return []
                raise SourceNotFoundError(f"No such folder or file: {path!r}.")
            bucket = base.split("/", 1)[0]
            if filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
                raise SourceNotFoundError(f"The S3 bucket {bucket!r} of {path!r} does not exist.")
            return []
        regex = glob_regex(pattern or "*")
        recursive = pattern is not None and "/" in pattern
        selector = pafs.FileSelector(base, recursive=recursive, allow_not_found=True)
        infos = filesystem.get_file_info(selector)
    except OSError as exc:
        raise _storage_error(exc, path) from exc
    found = []
    folders = []
    prefix = base.rstrip("/") + "/"
    for item in infos:
        if not item.path.startswith(prefix):
            continue
        relative = item.path[len(prefix) :]
        if _is_hidden(relative) or not regex.match(relative):
            continue
        if item.type == pafs.FileType.File:
            found.append(SourceFile(scheme + item.path, item.path, relative, int(item.size or 0), item.mtime))
        elif item.type == pafs.FileType.Directory:
            folders.append(relative)
    if pattern:
        _refuse_matched_folders(path, pattern, folders, [f.relative for f in found])
    return sorted(found, key=lambda f: f.fs_path)


def _refuse_matched_folders(path: str, pattern: str, folders: list[str], files: list[str]) -> None:
    """A pattern that names a folder (a Spark-style ``x.parquet/``) whose files it does not read.

    Skipping it would silently leave its data out of the snapshot, so it is refused.
    """
    unread = sorted(d for d in folders if not any(f.startswith(d + "/") for f in files))
    if unread:
        raise SpecError(
            f"The pattern {pattern!r} under {path!r} matches the folder(s) {unread}, and a pattern reads files, "
            f"not folders. Expected a pattern matching the files inside: {unread[0] + '/*'!r} (or '**/*.parquet')."
        )


_ACCESS_MARKERS = (
    "ACCESS_DENIED", "INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "EXPIRED_TOKEN", "AccessDenied",
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "Permission denied", "HTTP status 403",
)  # fmt: skip


def _storage_error(exc: OSError, where: str) -> MlopsError:
    text = str(exc)
    if isinstance(exc, PermissionError) or any(m in text for m in _ACCESS_MARKERS):
        return SourceAccessError(f"Access to {where!r} was refused (check the credentials of its connection): {text}")
    if isinstance(exc, FileNotFoundError) or "NO_SUCH_BUCKET" in text or "NoSuchBucket" in text:
        return SourceNotFoundError(f"{where!r} does not exist: {text}")
    return SourceUnavailableError(f"Could not read {where!r}: {text}")


# -- reading -------------------------------------------------------------------------------------
def _file_format(spec: IngestSpec, declared: Mapping[str, pa.DataType]) -> Any:
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    if spec.format == "parquet":
        return ds.ParquetFileFormat()
    # Timestamps are parsed as found (with or without an offset) and converted afterwards, exactly as for
    # Parquet: the CSV parser itself refuses a naive text for a tz-aware type and the other way round.
    declared = {name: type_ for name, type_ in declared.items() if not pa.types.is_timestamp(type_)}
    return ds.CsvFileFormat(
        parse_options=pacsv.ParseOptions(delimiter=spec.csv_delimiter),
        convert_options=pacsv.ConvertOptions(column_types=dict(declared), strings_can_be_null=True, check_utf8=True),
        read_options=pacsv.ReadOptions(block_size=1 << 22),
    )


def _file_tables(
    spec: IngestSpec, filesystem: pafs.FileSystem, files: Sequence[SourceFile], conformer: _Conformer
) -> Iterator[pa.Table]:
    """Batches of every file, in path order, each conformed to one output schema.

    Every file is opened (its schema read) before the first batch, so that the output schema is decided
    from all of them: a column all-null in the first file takes its type from the first file with values.
    """
    fmt = _file_format(spec, conformer.declared)
    columns = list(conformer.declared) if not spec.keep_extra_columns else None
    opened = [(_open_file(spec, filesystem, item, fmt, conformer), item) for item in files]
    if opened:
        unified = unify_file_schemas([(d.schema, _where(spec, i)) for d, i in opened], conformer.declared)
        conformer.type_origin.update(unified.type_origin)
        conformer.warnings.extend(unified.warnings)
        conformer.plan(unified.schema, _where(spec, opened[0][1]))
    for dataset, item in opened:
        where = _where(spec, item)
        with _reading(spec, item):
            batches = dataset.to_batches(
                columns=columns, batch_size=spec.chunk_rows, batch_readahead=1, fragment_readahead=1
            )
            for batch in batches:
                yield conformer.conform(batch, where)


def _where(spec: IngestSpec, item: SourceFile) -> str:
    return f"{spec.format} file {item.uri!r}"


@contextlib.contextmanager
def _reading(spec: IngestSpec, item: SourceFile) -> Iterator[None]:
    """Turn Arrow and storage errors raised while reading ``item`` into errors naming it."""
    try:
        yield
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise _file_error(exc, _where(spec, item), spec.format) from exc
    except OSError as exc:
        raise _storage_error(exc, item.uri) from exc


def _open_file(spec: IngestSpec, filesystem: pafs.FileSystem, item: SourceFile, fmt: Any, conformer: _Conformer) -> Any:
    """The ``pyarrow.dataset`` of one file, its columns checked against the spec."""
    import pyarrow.dataset as ds

    where = _where(spec, item)
    with _reading(spec, item):
        try:
            dataset = ds.dataset(item.fs_path, filesystem=filesystem, format=fmt)
        except pa.ArrowInvalid as exc:
            if "duplicate field names" in str(exc) and spec.format == "parquet":
                raise _duplicate_columns(filesystem, item, where) from exc
            raise
        names = dataset.schema.names
        conformer.check_declared(names, where)
        if spec.format == "csv":
            _check_csv_header(spec, names, where)
            binary = [f.name for f in dataset.schema if pa.types.is_binary(f.type)]
            if binary:
                raise DataError(
                    f"The column(s) {binary} of {where} hold bytes that are not valid UTF-8; expected UTF-8 text."
                )
    return dataset


_LIKELY_DELIMITERS = (";", "\t", "|", ",")


def _check_csv_header(spec: IngestSpec, names: Sequence[str], where: str) -> None:
    """A single column whose name holds another likely delimiter: the file is not delimited by ours."""
    if len(names) != 1:
        return
    found = [d for d in _LIKELY_DELIMITERS if d != spec.csv_delimiter and d in names[0]]
    if found:
        raise DataError(
            f"{where} was read as one column named {names[0]!r}: its header holds {found[0]!r} but the "
            f"'csv_delimiter' option is {spec.csv_delimiter!r}. Expected several columns: set "
            f"csv_delimiter={found[0]!r} if that is the file's delimiter."
        )


def _duplicate_columns(filesystem: pafs.FileSystem, item: SourceFile, where: str) -> DataError:
    """Name the duplicated columns of a Parquet file that pyarrow.dataset refuses without naming them."""
    import pyarrow.parquet as pq

    names = list(pq.read_schema(item.fs_path, filesystem=filesystem).names)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    return DataError(f"{where} has duplicate column names {duplicates}; every column needs its own name.")


def _file_error(exc: Exception, where: str, fmt: str | None) -> DataError:
    text = str(exc)
    if "UTF8" in text or "UTF-8" in text:
        return DataError(f"{where} holds bytes that are not valid UTF-8; expected UTF-8 text: {text}")
    if fmt == "parquet" and ("magic bytes" in text or "Parquet" in text or "corrupt" in text.lower()):
        return DataError(f"{where} is not a readable Parquet file (corrupt or not Parquet): {text}")
    if fmt == "csv" and "Empty CSV file" in text:
        return DataError(f"{where} is empty; expected a header line naming the columns, then rows.")
    if "CSV parse error" in text:
        return DataError(f"{where} has a malformed row (expected the same number of fields on every row): {text}")
    if "conversion error" in text:
        return DataError(f"{where} has a value that does not fit its column's type: {text}")
    return DataError(f"{where} could not be read: {text}")
