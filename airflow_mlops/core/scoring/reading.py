"""Reading the input of batch scoring: plan from the Parquet footers, stream bounded record batches.

Only the columns the model, the shadow and the passthrough list need are read, string features as
dictionaries (decoded once per distinct value). :class:`_Prefetch` decodes the next batch in a
background thread while ONNX Runtime scores the current one; memory stays bounded by a few batches.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core.errors import ArtifactError, DataError
from airflow_mlops.core.scoring.inputs import InputFile
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.model import ServingModel

_PREFETCH_DEPTH = 2


def _read_error(exc: Exception, file: InputFile) -> Exception:
    """Content errors (not Parquet, corrupt pages) are data errors; remote I/O errors may be transient."""
    import pyarrow as pa

    if isinstance(exc, pa.ArrowInvalid | pa.ArrowNotImplementedError | pa.ArrowTypeError) or (
        isinstance(exc, OSError) and not file.uri.startswith("s3://")
    ):
        return DataError(f"The input file {file.uri!r} is not a readable Parquet file: {exc}")
    return ArtifactError(f"Could not read the input file {file.uri!r}: {exc}")


@contextlib.contextmanager
def _parquet(filesystem: Any, file: InputFile, read_dictionary: Sequence[str] = ()) -> Iterator[Any]:
    """Open one input file's Parquet footer; a file that is not Parquet is named in the error."""
    import pyarrow.parquet as pq

    try:
        source = filesystem.open_input_file(file.path)
    except (OSError, ValueError) as exc:
        raise _read_error(exc, file) from exc
    with source:
        try:
            handle = pq.ParquetFile(source, read_dictionary=list(read_dictionary) or None)
        except (OSError, ValueError, TypeError) as exc:
            raise _read_error(exc, file) from exc
        yield handle


@dataclass(frozen=True)
class _Plan:
    """What the file footers told us before any row is read."""

    files: list[InputFile]
    rows: int
    columns: list[str]  # columns read from every file
    schema: Any  # unified pyarrow schema of those columns
    dictionary_columns: dict[str, list[str]]  # per file path: string feature columns read as dictionaries
    shadow_problem: str | None
    monitored: tuple[str, ...] = ()  # columns the model does not read, kept in the serving log for drift
    label: str | None = None  # the target column, read with a shadow when every file has it: quality of both


def _plan(
    files: list[InputFile], filesystem: Any, model: ServingModel, spec: ScoringSpec, shadow: ServingModel | None
) -> _Plan:
    """Read every file's footer: check the columns, count the rows, unify the column types."""
    import pyarrow as pa

    features = model.spec.input_columns  # before the version's transforms run
    wanted = list(dict.fromkeys([*spec.passthrough_columns, *features]))
    shadow_columns = [c for c in (shadow.spec.input_columns if shadow else []) if c not in wanted]
    schemas, rows, dictionary_columns = [], 0, {}
    shadow_missing: set[str] = set()
    string_features = {i.column for i in model.spec.inputs if i.type == "string"}
    for file in files:
        with _parquet(filesystem, file) as handle:
            schema, file_rows = handle.schema_arrow, handle.metadata.num_rows
        _check_columns(file, set(schema.names), model, spec)
        shadow_missing |= {c for c in shadow_columns if c not in schema.names}
        schemas.append((file, schema))
        rows += file_rows
        dictionary_columns[file.path] = [
            c for c in features if c in string_features and pa.types.is_string(schema.field(c).type)
        ]
    columns = wanted + [c for c in shadow_columns if c not in shadow_missing]
    problem = None
    if shadow_missing:
        problem = f"the input lacks column(s) {sorted(shadow_missing)} that the challenger needs"
    target = model.spec.target if shadow is not None else None
    typed = {str(s.field(target).type) if target in s.names else None for _, s in schemas} if target else {None}
    label = target if None not in typed and len(typed) == 1 else None  # every file, one type: else unlabelled
    monitored = _monitored_columns(schemas, columns, spec) if spec.serving_log_rows else ()
    columns += monitored
    columns += [label] if label is not None and label not in columns else []
    schema = _unified_schema(schemas, columns)
    return _Plan(files, rows, columns, schema, dictionary_columns, problem, tuple(monitored), label)


def _monitored_columns(schemas: list[tuple[InputFile, Any]], taken: list[str], spec: ScoringSpec) -> list[str]:
    """The input columns the serving log keeps besides passthrough and features, so drift can watch
    them: ``monitor_columns`` when named, else every flat column (number, boolean, text: what drift
    compares) every file has with one type, in the first file's order. A column whose type differs
    between files is left out rather than failing the scoring."""
    if not schemas:
        return []
    first = schemas[0][1]
    shared = [
        n for n in first.names
        if _flat(first.field(n).type)
        and all(n in s.names and s.field(n).type == first.field(n).type for _, s in schemas[1:])
    ]  # fmt: skip
    wanted = shared if spec.monitor_columns is None else [c for c in spec.monitor_columns if c in shared]
    return [c for c in wanted if c not in taken]


def _flat(arrow_type: Any) -> bool:
    import pyarrow.types as pat

    if pat.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    checks = (pat.is_integer, pat.is_floating, pat.is_decimal, pat.is_boolean, pat.is_string, pat.is_large_string)
    return any(check(arrow_type) for check in checks)


def _check_columns(file: InputFile, names: set[str], model: ServingModel, spec: ScoringSpec) -> None:
    """:raises DataError: the file lacks a feature the model needs or a passthrough column."""
    missing = [c for c in model.spec.input_columns if c not in names]
    if missing:
        raise DataError(
            f"The input file {file.uri!r} is missing feature column(s) {missing} that model "
            f"{model.name!r} version {model.version} needs (its features and what its feature transforms read). "
            f"Columns present: {sorted(names)}."
        )
    absent = [c for c in spec.passthrough_columns if c not in names]
    if absent:
        raise DataError(
            f"The input file {file.uri!r} has no passthrough column(s) {absent}. Columns present: {sorted(names)}."
        )


def _unified_schema(schemas: list[tuple[InputFile, Any]], columns: list[str]) -> Any:
    """One schema for ``columns`` of every file (types promoted where they differ, metadata dropped).

    :raises DataError: the files disagree on a column's type beyond promotion.
    """
    import pyarrow as pa

    try:
        unified = pa.unify_schemas(
            [pa.schema([s.field(c) for c in columns]) for _, s in schemas], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        types = {f.uri: {c: str(s.field(c).type) for c in columns} for f, s in schemas}
        raise DataError(
            f"The input files disagree on column types and cannot be read as one table ({exc}): {types}."
        ) from exc
    return pa.schema([f.remove_metadata() for f in unified])


def _batches(plan: _Plan, filesystem: Any, chunk_rows: int) -> Iterator[Any]:
    for file in plan.files:
        with _parquet(filesystem, file, plan.dictionary_columns[file.path]) as handle:
            # One row group at a time: the reader pre-buffers (coalesces) the byte ranges it will read,
            # which saves round trips on S3, but keeps them until the reader is done. Per row group,
            # that is one row group's compressed columns; per file, it would grow with the file.
            for row_group in range(handle.num_row_groups):
                iterator = handle.iter_batches(
                    batch_size=chunk_rows, row_groups=[row_group], columns=plan.columns, use_threads=True
                )
                while True:
                    try:
                        batch = next(iterator)
                    except StopIteration:
                        break
                    except (OSError, ValueError, TypeError) as exc:
                        raise _read_error(exc, file) from exc
                    if batch.num_rows:
                        yield batch


class _Prefetch:
    """Run an iterator in a background thread, ``depth`` items ahead (pyarrow decodes without the GIL,
    so the next batch is read while ONNX Runtime scores this one). Errors surface in the consumer."""

    _DONE = object()

    def __init__(self, source: Iterator[Any], depth: int = _PREFETCH_DEPTH) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._source = source
        self._thread = threading.Thread(target=self._run, name="mlops-scoring-reader", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for item in self._source:
                if not self._put(item):
                    return
            self._put(self._DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(_Failure(exc))

    def __iter__(self) -> Iterator[Any]:
        while True:
            item = self._queue.get()
            if item is self._DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
        self._thread.join()


@dataclass(frozen=True)
class _Failure:
    error: BaseException
