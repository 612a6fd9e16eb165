"""Batch scoring: stream a Parquet partition through a registered ONNX model and write predictions atomically.

The input (one Parquet file, a folder of them, or a glob; local or S3) is read in bounded record
batches: only the columns the model and the passthrough list need, string features decoded once per
distinct value. A reader thread decodes the next batch while ONNX Runtime scores the current one, and
each scored batch is appended to a Parquet writer whose target is a temporary object of the storage
root: the predictions appear at ``{root}/{pipeline}/predictions/{partition}/predictions.parquet`` whole
or not at all, and a rerun replaces them. Memory is bounded by a few batches, whatever the input size.

Output contract (see :mod:`airflow_mlops.core.contracts`): passthrough columns, ``prediction``, for
classifiers ``probability_<class>`` per class, optional top-k contributions, then ``model_name``,
``model_version`` and ``scored_at`` (the run's logical date, never the wall clock, so that a rerun
writes the same bytes).

Beside the predictions, and committed before them so that the predictions file marks a complete run:

- the serving log, a seeded reservoir sample of inputs and predictions (deterministic for a given
  input, whatever the chunk size) that drift monitoring compares with the training reference;
- optionally the shadow report: the same batches scored by the ``challenger`` alias, compared with the
  champion (agreement rate, score distributions). The shadow never changes or fails the served output.

Model loading never unpickles anything: the ONNX bytes and the JSON training spec are downloaded from
the model version's run and the bytes are checked against the sha256 recorded at registration.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import math
import os
import queue
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, DataError, IntegrityError, SourceNotFoundError, SpecError
from airflow_mlops.core.onnx_model import MISSING_CATEGORY, OnnxInput, OnnxModel, feed_arrow, inputs_from_spec
from airflow_mlops.core.storage import StorageRoot, validate_segment

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

Task = Literal["binary", "multiclass", "regression"]
Progress = Callable[[int, int], None]

DEFAULT_CHUNK_ROWS = 65_536
MAX_CHUNK_ROWS = 4_194_304
DEFAULT_SERVING_LOG_ROWS = 10_000
MAX_SERVING_LOG_ROWS = 1_000_000
SHADOW_SAMPLE_ROWS = 100_000
REGRESSION_AGREEMENT_TOLERANCE = 0.1  # shadow: two regression predictions agree within 10 % of the larger
CONTRIBUTION_FEATURE = "contribution_{rank}_feature"
CONTRIBUTION_VALUE = "contribution_{rank}_value"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
_PREFETCH_DEPTH = 2
_GLOB = re.compile(r"[*?\[]")


# -- the model ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """What scoring needs from the training spec artifact (``contracts.ARTIFACT_SPEC``).

    :param task: ``binary``, ``multiclass`` or ``regression``.
    :param inputs: graph inputs and the frame columns that feed them.
    :param classes: class labels in the order of the ``probabilities`` output (classifiers only).
    :param target: the label column the model was trained on (informational).
    """

    task: Task
    inputs: tuple[OnnxInput, ...]
    classes: tuple[Any, ...] = ()
    target: str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ModelSpec:
        task = raw.get("task")
        if task not in ("binary", "multiclass", "regression"):
            raise SpecError(
                f"The training spec's 'task' must be 'binary', 'multiclass' or 'regression'. Got {task!r} instead."
            )
        classes = tuple(raw.get("classes") or ())
        if task != "regression":
            if len(classes) < 2 or len({str(c) for c in classes}) != len(classes):
                raise SpecError(
                    f"A {task} training spec must list at least two distinct 'classes'. Got {list(classes)!r}."
                )
            if task == "binary" and len(classes) != 2:
                raise SpecError(f"A binary training spec must list exactly two 'classes'. Got {list(classes)!r}.")
        target = raw.get("target")
        return cls(
            task=task,
            inputs=tuple(inputs_from_spec(raw)),
            classes=classes if task != "regression" else (),
            target=str(target) if target is not None else None,
        )

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def feature_columns(self) -> list[str]:
        return [i.column for i in self.inputs]

    @property
    def probability_columns(self) -> list[str]:
        return [f"{contracts.PROBABILITY_COLUMN_PREFIX}{c}" for c in self.classes]


@dataclass(frozen=True)
class Prediction:
    """The outputs of one batch: ``values`` (labels or regression values) and class probabilities."""

    values: np.ndarray
    probabilities: np.ndarray | None

    def score(self, task: Task) -> np.ndarray:
        """One number per row to compare models by: P(positive class) for binary (the second class),
        the probability of the predicted class for multiclass, the value for regression."""
        import numpy as np

        if self.probabilities is None:
            return self.values
        if task == "binary":
            return self.probabilities[:, 1]
        return np.asarray(self.probabilities.max(axis=1))


@dataclass(frozen=True, eq=False)
class ServingModel:
    """A registered model version ready to score: its ONNX graph, its training spec and where it came from.

    Build it with :meth:`from_bytes` (or :func:`load_serving_model` from the registry).
    """

    name: str
    version: str
    onnx: OnnxModel
    spec: ModelSpec
    alias: str | None = None
    baseline: Mapping[str, Any] | None = None

    @classmethod
    def from_bytes(
        cls,
        model_bytes: bytes,
        spec: Mapping[str, Any],
        *,
        name: str,
        version: str,
        expected_sha256: str | None,
        threads: int = 1,
        alias: str | None = None,
        baseline: Mapping[str, Any] | None = None,
    ) -> ServingModel:
        """Check the bytes against ``expected_sha256``, load them and check the graph keeps the contract.

        :raises IntegrityError: the bytes do not hash to ``expected_sha256`` or are not a valid model.
        :raises SpecError: the graph's outputs do not follow the ONNX model contract for the spec's task.
        """
        model_spec = ModelSpec.from_mapping(spec)
        onnx = OnnxModel(model_bytes, model_spec.inputs, expected_sha256=expected_sha256, threads=threads)
        model = cls(name=str(name), version=str(version), onnx=onnx, spec=model_spec, alias=alias, baseline=baseline)
        model._check_outputs()
        return model

    @property
    def sha256(self) -> str:
        return self.onnx.sha256

    def _output(self, name: str) -> Any:
        return next((o for o in self.onnx.session.get_outputs() if o.name == name), None)

    def _check_outputs(self) -> None:
        needed = (
            [contracts.ONNX_OUTPUT_LABEL, contracts.ONNX_OUTPUT_PROBABILITIES]
            if self.spec.is_classifier
            else [contracts.ONNX_OUTPUT_REGRESSION]
        )
        missing = [n for n in needed if n not in self.onnx.output_names]
        if missing:
            raise SpecError(
                f"Model {self.name!r} version {self.version} is a {self.spec.task} model but its ONNX graph "
                f"lacks output(s) {missing} (it has {self.onnx.output_names}); the ONNX model contract expects "
                f"{needed}. Was it exported with ZipMap, or by an incompatible trainer?"
            )
        if self.spec.is_classifier:
            shape = self._output(contracts.ONNX_OUTPUT_PROBABILITIES).shape
            width = shape[1] if len(shape) == 2 else None
            if isinstance(width, int) and width != len(self.spec.classes):
                raise SpecError(
                    f"Model {self.name!r} version {self.version}: the 'probabilities' output has {width} columns "
                    f"but the spec lists {len(self.spec.classes)} classes {list(self.spec.classes)!r}."
                )

    def prediction_type(self) -> pa.DataType:
        import pyarrow as pa

        if not self.spec.is_classifier:
            return pa.float32()
        kind = self._output(contracts.ONNX_OUTPUT_LABEL).type
        return pa.string() if "string" in kind else pa.int64()

    def predict(self, feed: Mapping[str, np.ndarray], *, first_row: int = 0) -> Prediction:
        """Run the graph on a prepared feed and check every row got a usable prediction.

        :param first_row: position of the feed's first row in the partition, for error messages.
        :raises DataError: the model produced NaN for some rows (the message names the feature
            columns that are missing in those rows: this model does not accept missing values there).
        """
        import numpy as np

        outputs = self.onnx.run_feed(feed)
        if self.spec.is_classifier:
            values = np.asarray(outputs[contracts.ONNX_OUTPUT_LABEL]).reshape(-1)
            probabilities = np.asarray(outputs[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float32)
            if probabilities.ndim != 2 or probabilities.shape[1] != len(self.spec.classes):
                raise SpecError(
                    f"Model {self.name!r} version {self.version} returned probabilities of shape "
                    f"{probabilities.shape}; the contract expects (rows, {len(self.spec.classes)})."
                )
            bad = np.asarray(np.isnan(probabilities).any(axis=1))
            prediction = Prediction(values=values, probabilities=probabilities)
        else:
            values = np.asarray(outputs[contracts.ONNX_OUTPUT_REGRESSION], dtype=np.float32).reshape(-1)
            bad = np.asarray(~np.isfinite(values))
            prediction = Prediction(values=values, probabilities=None)
        rows = len(next(iter(feed.values()))) if feed else 0
        if len(values) != rows or (prediction.probabilities is not None and prediction.probabilities.shape[0] != rows):
            raise ArtifactError(
                f"Model {self.name!r} version {self.version} returned {len(values)} predictions for {rows} rows."
            )
        if bad.any():
            self._explain_invalid(feed, bad, first_row)
        return prediction

    def _explain_invalid(self, feed: Mapping[str, np.ndarray], bad: np.ndarray, first_row: int) -> None:
        import numpy as np

        culprits = [
            i.column
            for i in self.spec.inputs
            if i.type == "float" and np.isnan(feed[i.name][bad].astype(np.float32)).any()
        ]
        where = (
            f"those rows hold missing values (NaN/null) in feature column(s) {culprits}, "
            "which this model does not accept"
            if culprits
            else "no feature column is missing there: the values may be out of the model's range"
        )
        raise DataError(
            f"Model {self.name!r} version {self.version} produced no valid prediction (NaN) for {int(bad.sum())} "
            f"row(s), the first at row {first_row + int(np.flatnonzero(bad)[0])} of the partition; {where}."
        )


# -- input files and partitions -------------------------------------------------------------------
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

    def listing(base: str) -> list[Any]:
        selector = pafs.FileSelector(base, recursive=True, allow_not_found=True)
        return [i for i in filesystem.get_file_info(selector) if i.type == pafs.FileType.File]

    if _GLOB.search(path):
        parts = path.split("/")
        first = next(i for i, p in enumerate(parts) if _GLOB.search(p))
        base = "/".join(parts[:first]) or "/"
        pattern = [p for p in parts[first:] if p]
        found = []
        for info in listing(base):
            relative = info.path[len(base) :].strip("/")
            if not _hidden(relative) and _glob_match(pattern, relative.split("/")):
                found.append(info.path)
        found.sort()
        if not found:
            raise SourceNotFoundError(f"No Parquet file matches the input glob {uri!r}.")
        return [InputFile(prefix + p, p) for p in found]
    info = filesystem.get_file_info(path)
    if info.type == pafs.FileType.File:
        return [InputFile(prefix + path, path)]
    if info.type == pafs.FileType.Directory:
        found = sorted(i.path for i in listing(path) if not _hidden(i.path[len(path) :]))
        if not found:
            raise SourceNotFoundError(f"The input folder {uri!r} holds no data file.")
        return [InputFile(prefix + p, p) for p in found]
    raise SourceNotFoundError(f"The input {uri!r} does not exist: expected a Parquet file, a folder or a glob.")


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


# -- the scoring request --------------------------------------------------------------------------
def _as_int(raw: Any, name: str, low: int, high: int, *, strict: bool = False) -> int:
    """``raw`` as an int in [low, high]; rendered templates give strings, which are parsed unless strict."""
    value: int | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, str) and not strict:
        with contextlib.suppress(ValueError):
            value = int(raw.strip())
    if value is None or not low <= value <= high:
        raise SpecError(f"The {name!r} parameter must be an integer in [{low}, {high}]. Got {raw!r} instead.")
    return value


def _as_columns(raw: Any) -> tuple[str, ...]:
    if raw is None or raw == "":
        return ()
    if isinstance(raw, str):
        text = raw.strip()
        items = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",")]
    else:
        items = list(raw)
    columns = tuple(str(c) for c in items if str(c).strip())
    if len(set(columns)) != len(columns):
        raise SpecError(f"The 'passthrough_columns' parameter lists a column twice: {list(columns)!r}.")
    return columns


def _as_datetime(raw: Any) -> datetime:
    if isinstance(raw, datetime):
        value = raw
    else:
        try:
            value = datetime.fromisoformat(str(raw).strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SpecError(f"The 'scored_at' parameter must be an ISO 8601 timestamp. Got {raw!r} instead.") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class ScoringSpec:
    """One partition to score.

    :param pipeline: pipeline name (first segment of the storage layout).
    :param partition: partition key: where the outputs go, ``{root}/{pipeline}/predictions/{partition}/``.
    :param input_uri: a Parquet file, a folder of Parquet files or a glob; local or ``s3://``.
    :param scored_at: the run's logical date, written to every row (UTC).
    :param passthrough_columns: input columns copied to the output as they are (ids, keys).
    :param chunk_rows: rows per record batch; memory grows with it, throughput barely beyond 64 Ki.
    :param threads: ONNX Runtime intra-op threads.
    :param serving_log_rows: size of the serving log sample (0 turns it off).
    :param explain_top_k: per-row top-k feature contributions (0 turns them off).
    :param seed: seed of the serving log and shadow samples.
    """

    pipeline: str
    partition: str
    input_uri: str
    scored_at: datetime
    passthrough_columns: tuple[str, ...] = ()
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    threads: int = 1
    serving_log_rows: int = DEFAULT_SERVING_LOG_ROWS
    explain_top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        validate_segment(self.pipeline, "pipeline name")
        validate_segment(self.partition, "partition key")
        _parse_uri(self.input_uri)
        _as_int(self.chunk_rows, "chunk_rows", 1, MAX_CHUNK_ROWS, strict=True)
        _as_int(self.threads, "threads", 1, 256, strict=True)
        _as_int(self.serving_log_rows, "serving_log_rows", 0, MAX_SERVING_LOG_ROWS, strict=True)
        _as_int(self.explain_top_k, "explain_top_k", 0, 1000, strict=True)
        _as_int(self.seed, "seed", 0, 2**32 - 1, strict=True)
        if not isinstance(self.passthrough_columns, tuple):
            raise SpecError(f"'passthrough_columns' must be a tuple of names. Got {self.passthrough_columns!r}.")
        if not isinstance(self.scored_at, datetime) or self.scored_at.tzinfo is None:
            raise SpecError(f"'scored_at' must be timezone-aware. Got {self.scored_at!r}.")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ScoringSpec:
        """Build from rendered operator arguments: numbers may arrive as strings, columns as a
        comma-separated string or a JSON list, ``scored_at`` as an ISO timestamp."""
        for name in ("pipeline", "partition", "input_uri", "scored_at"):
            if raw.get(name) in (None, ""):
                raise SpecError(f"The {name!r} parameter of the scoring spec is required.")
        return cls(
            pipeline=str(raw["pipeline"]),
            partition=str(raw["partition"]),
            input_uri=str(raw["input_uri"]),
            scored_at=_as_datetime(raw["scored_at"]),
            passthrough_columns=_as_columns(raw.get("passthrough_columns")),
            chunk_rows=_as_int(raw.get("chunk_rows", DEFAULT_CHUNK_ROWS), "chunk_rows", 1, MAX_CHUNK_ROWS),
            threads=_as_int(raw.get("threads", 1), "threads", 1, 256),
            serving_log_rows=_as_int(
                raw.get("serving_log_rows", DEFAULT_SERVING_LOG_ROWS), "serving_log_rows", 0, MAX_SERVING_LOG_ROWS
            ),
            explain_top_k=_as_int(raw.get("explain_top_k", 0), "explain_top_k", 0, 1000),
            seed=_as_int(raw.get("seed", 0), "seed", 0, 2**32 - 1),
        )


@dataclass(frozen=True)
class ScoringResult:
    """What one scoring run produced (the operator's receipt is :meth:`to_dict`)."""

    output_uri: str
    rows_in: int
    rows_out: int
    input_files: int
    model_name: str
    model_version: str
    onnx_sha256: str
    partition: str
    scored_at: str
    seconds: float
    serving_log_uri: str | None
    serving_log_rows: int
    shadow_report_uri: str | None = None
    shadow: Mapping[str, Any] | None = None
    explain_top_k: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows_out / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_uri": self.output_uri,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "input_files": self.input_files,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "onnx_sha256": self.onnx_sha256,
            "partition": self.partition,
            "scored_at": self.scored_at,
            "seconds": round(self.seconds, 3),
            "throughput_rows_per_s": round(self.rows_per_second, 1),
            "serving_log_uri": self.serving_log_uri,
            "serving_log_rows": self.serving_log_rows,
            "shadow_report_uri": self.shadow_report_uri,
            "shadow": dict(self.shadow) if self.shadow is not None else None,
            "explain_top_k": self.explain_top_k,
        }


# -- reading --------------------------------------------------------------------------------------
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


def _plan(
    files: list[InputFile], filesystem: Any, model: ServingModel, spec: ScoringSpec, shadow: ServingModel | None
) -> _Plan:
    import pyarrow as pa

    features = model.spec.feature_columns
    wanted = list(dict.fromkeys([*spec.passthrough_columns, *features]))
    shadow_columns = [c for c in (shadow.spec.feature_columns if shadow else []) if c not in wanted]
    schemas, rows, dictionary_columns = [], 0, {}
    shadow_missing: set[str] = set()
    string_features = {i.column for i in model.spec.inputs if i.type == "string"}
    for file in files:
        with _parquet(filesystem, file) as handle:
            schema, file_rows = handle.schema_arrow, handle.metadata.num_rows
        names = set(schema.names)
        missing = [c for c in features if c not in names]
        if missing:
            raise DataError(
                f"The input file {file.uri!r} is missing feature column(s) {missing} that model "
                f"{model.name!r} version {model.version} needs. Columns present: {sorted(names)}."
            )
        absent = [c for c in spec.passthrough_columns if c not in names]
        if absent:
            raise DataError(
                f"The input file {file.uri!r} has no passthrough column(s) {absent}. Columns present: {sorted(names)}."
            )
        shadow_missing |= {c for c in shadow_columns if c not in names}
        schemas.append((file, schema))
        rows += file_rows
        dictionary_columns[file.path] = [
            c for c in features if c in string_features and pa.types.is_string(schema.field(c).type)
        ]
    shadow_extra = [c for c in shadow_columns if c not in shadow_missing]
    columns = wanted + shadow_extra
    try:
        unified = pa.unify_schemas(
            [pa.schema([s.field(c) for c in columns]) for _, s in schemas], promote_options="permissive"
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        types = {f.uri: {c: str(s.field(c).type) for c in columns} for f, s in schemas}
        raise DataError(
            f"The input files disagree on column types and cannot be read as one table ({exc}): {types}."
        ) from exc
    unified = pa.schema([f.remove_metadata() for f in unified])
    problem = None
    if shadow_missing:
        problem = f"the input lacks column(s) {sorted(shadow_missing)} that the challenger needs"
    return _Plan(files, rows, columns, unified, dictionary_columns, problem)


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


# -- samples --------------------------------------------------------------------------------------
class _Reservoir:
    """A uniform sample of at most ``capacity`` rows of a stream, deterministic for a seed.

    Every row draws a key from one seeded generator, in stream order, and the sample is the rows with
    the smallest keys: the draws do not depend on how the stream is cut into batches, so neither does
    the sample. Rows come out in stream order.
    """

    def __init__(self, capacity: int, seed: int) -> None:
        import numpy as np

        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._keys = np.empty(0)
        self._parts: list[Any] = []
        self._pending = np.empty(0)
        self._threshold = math.inf
        self._seen = 0

    def select(self, rows: int) -> np.ndarray:
        """Indices (within the next ``rows`` rows) that may enter the sample; pass them to :meth:`add`."""
        import numpy as np

        keys = self._rng.random(rows)
        self._seen += rows
        if self.capacity == 0:
            return np.empty(0, dtype=np.int64)
        chosen = np.flatnonzero(keys < self._threshold)
        self._pending = keys[chosen]
        return chosen

    def add(self, table: Any) -> None:
        import numpy as np

        if table is None or table.num_rows == 0:
            return
        self._keys = np.concatenate([self._keys, self._pending])
        self._parts.append(table)
        if len(self._keys) >= 2 * self.capacity:
            self._compact()

    def _compact(self) -> None:
        import numpy as np
        import pyarrow as pa

        if not self._parts:
            return
        merged = pa.concat_tables(self._parts) if len(self._parts) > 1 else self._parts[0]
        if len(self._keys) > self.capacity:
            keep = np.sort(np.argpartition(self._keys, self.capacity - 1)[: self.capacity])
            merged, self._keys = merged.take(keep), self._keys[keep]
        if len(self._keys) >= self.capacity:
            self._threshold = float(self._keys.max())
        self._parts = [merged.combine_chunks()]

    def result(self) -> Any:
        self._compact()
        return self._parts[0] if self._parts else None


class _ShadowTracker:
    """Streaming comparison of the champion's and the challenger's predictions on the same rows."""

    def __init__(self, champion: ServingModel, challenger: ServingModel, seed: int) -> None:
        self.champion, self.challenger = champion, challenger
        self.rows = 0
        self.agree = 0
        self.error: str | None = None
        self._sums = {"champion": [0.0, 0.0], "challenger": [0.0, 0.0]}
        self._extremes = {"champion": [math.inf, -math.inf], "challenger": [math.inf, -math.inf]}
        self._abs_diff_sum = 0.0
        self._abs_diff_max = 0.0
        self._labels: dict[str, dict[str, int]] = {"champion": {}, "challenger": {}}
        self._sample = _Reservoir(SHADOW_SAMPLE_ROWS, seed + 1)

    def update(self, champion: Prediction, challenger: Prediction) -> None:
        import numpy as np
        import pyarrow as pa

        task = self.champion.spec.task
        a = np.asarray(champion.score(task), dtype=np.float64)
        b = np.asarray(challenger.score(self.challenger.spec.task), dtype=np.float64)
        if self.champion.spec.is_classifier:
            agree = np.asarray(champion.values).astype(str) == np.asarray(challenger.values).astype(str)
            for who, values in (("champion", champion.values), ("challenger", challenger.values)):
                labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
                for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                    self._labels[who][label] = self._labels[who].get(label, 0) + int(count)
        else:
            agree = np.abs(a - b) <= REGRESSION_AGREEMENT_TOLERANCE * np.maximum(np.abs(a), np.abs(b))
        self.rows += len(a)
        self.agree += int(agree.sum())
        for who, values in (("champion", a), ("challenger", b)):
            self._sums[who][0] += float(values.sum())
            self._sums[who][1] += float(np.square(values).sum())
            if len(values):
                self._extremes[who][0] = min(self._extremes[who][0], float(values.min()))
                self._extremes[who][1] = max(self._extremes[who][1], float(values.max()))
        diff = np.abs(a - b)
        self._abs_diff_sum += float(diff.sum())
        self._abs_diff_max = max(self._abs_diff_max, float(diff.max()) if len(diff) else 0.0)
        chosen = self._sample.select(len(a))
        self._sample.add(pa.table({"champion": a[chosen], "challenger": b[chosen]}))

    def report(self, spec: ScoringSpec) -> dict[str, Any]:
        import numpy as np

        report: dict[str, Any] = {
            "status": "failed" if self.error else "ok",
            "error": self.error,
            "partition": spec.partition,
            "input_uri": spec.input_uri,
            "scored_at": spec.scored_at.isoformat(),
            "task": self.champion.spec.task,
            "champion": _identity(self.champion),
            "challenger": _identity(self.challenger),
            "rows": self.rows,
        }
        if self.error or not self.rows:
            return report
        sample = self._sample.result()
        a = sample.column("champion").to_numpy() if sample is not None else np.empty(0)
        b = sample.column("challenger").to_numpy() if sample is not None else np.empty(0)
        report["agreement_rate"] = self.agree / self.rows
        report["agreement"] = (
            "same predicted label"
            if self.champion.spec.is_classifier
            else f"values within {REGRESSION_AGREEMENT_TOLERANCE:.0%} of the larger of the two"
        )
        report["score"] = {
            "definition": {
                "binary": "probability of the positive class (the second class)",
                "multiclass": "probability of the predicted class",
                "regression": "predicted value",
            }[self.champion.spec.task],
            "champion": self._summary("champion", a),
            "challenger": self._summary("challenger", b),
            "mean_abs_difference": self._abs_diff_sum / self.rows,
            "max_abs_difference": self._abs_diff_max,
            "ks_statistic": _ks(a, b),
            "psi": _psi(a, b),
            "sample_rows": len(a),
        }
        if self.champion.spec.is_classifier:
            report["label_share"] = {
                who: {k: v / self.rows for k, v in sorted(counts.items())} for who, counts in self._labels.items()
            }
        return report

    def _summary(self, who: str, sample: np.ndarray) -> dict[str, Any]:
        import numpy as np

        total, squares = self._sums[who]
        mean = total / self.rows
        quantiles = np.quantile(sample, QUANTILES) if len(sample) else [math.nan] * len(QUANTILES)
        return {
            "mean": mean,
            "std": math.sqrt(max(squares / self.rows - mean * mean, 0.0)),
            "min": self._extremes[who][0],
            "max": self._extremes[who][1],
            "quantiles": {f"p{int(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        }


def _identity(model: ServingModel) -> dict[str, Any]:
    return {"name": model.name, "version": model.version, "alias": model.alias, "onnx_sha256": model.sha256}


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    import numpy as np

    if not len(a) or not len(b):
        return math.nan
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    gap = np.abs(np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(b, grid, side="right") / len(b))
    return float(gap.max())


def _psi(a: np.ndarray, b: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``b`` against ``a`` on the deciles of ``a``."""
    import numpy as np

    if not len(a) or not len(b):
        return math.nan
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1))[1:-1])
    share_a = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) / len(a)
    share_b = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1) / len(b)
    share_a, share_b = np.clip(share_a, 1e-6, None), np.clip(share_b, 1e-6, None)
    return float(np.sum((share_b - share_a) * np.log(share_b / share_a)))


# -- explanations ---------------------------------------------------------------------------------
def baseline_from_reference(reference: Any, inputs: Sequence[OnnxInput]) -> dict[str, Any]:
    """The baseline row of occlusion explanations: per feature, the median (numeric) or the most frequent
    value (categorical, ties to the smallest) of the training reference sample (a pyarrow table)."""
    import numpy as np

    feed = feed_arrow(reference, inputs)
    baseline: dict[str, Any] = {}
    for item in inputs:
        values = feed[item.name].reshape(-1)
        if item.type == "float":
            finite = values[~np.isnan(values)]
            baseline[item.name] = float(np.median(finite)) if len(finite) else math.nan
        else:
            present = values[values != MISSING_CATEGORY]
            if not len(present):
                baseline[item.name] = MISSING_CATEGORY
                continue
            labels, counts = np.unique(present.astype(str), return_counts=True)
            baseline[item.name] = str(labels[np.argmax(counts)])
    return baseline


class _Explainer:
    """Per-row feature contributions by occlusion, with ONNX Runtime only.

    The contribution of feature j to a row's score is ``score(row) - score(row with feature j set to
    the baseline value)``; the baseline row holds each feature's median or most frequent value in the
    training reference sample. It shows how much each feature, alone, moves this row's score away from
    a typical row. It is not SHAP: with interactions the contributions do not sum to the score's gap to
    the baseline score. Cost: one extra model run per feature and batch.
    """

    def __init__(self, model: ServingModel, top_k: int) -> None:
        if model.baseline is None:
            raise SpecError(
                f"Explanations need a baseline row, and model {model.name!r} version {model.version} was loaded "
                "without one (its run has no reference sample artifact)."
            )
        if top_k > len(model.spec.inputs):
            raise SpecError(
                f"'explain_top_k' is {top_k} but model {model.name!r} has only {len(model.spec.inputs)} features."
            )
        self.model, self.top_k = model, top_k
        self.names = [i.column for i in model.spec.inputs]

    def columns(self) -> list[tuple[str, Any]]:
        import pyarrow as pa

        out = []
        for rank in range(1, self.top_k + 1):
            out.append((CONTRIBUTION_FEATURE.format(rank=rank), pa.string()))
            out.append((CONTRIBUTION_VALUE.format(rank=rank), pa.float32()))
        return out

    def _score(self, prediction: Prediction, classes: np.ndarray | None) -> np.ndarray:
        import numpy as np

        if prediction.probabilities is None:
            return prediction.values.astype(np.float32)
        if self.model.spec.task == "binary":
            return prediction.probabilities[:, 1]
        return np.take_along_axis(prediction.probabilities, classes[:, None], axis=1)[:, 0]  # type: ignore[index]

    def explain(self, feed: Mapping[str, np.ndarray], prediction: Prediction) -> list[Any]:
        import numpy as np
        import pyarrow as pa

        rows = len(prediction.values)
        classes = prediction.probabilities.argmax(axis=1) if prediction.probabilities is not None else None
        base = self._score(prediction, classes)
        contributions = np.empty((rows, len(self.names)), dtype=np.float32)
        for j, item in enumerate(self.model.spec.inputs):
            value = self.model.baseline[item.name]  # type: ignore[index]
            dtype = np.float32 if item.type == "float" else object
            occluded = {**feed, item.name: np.full((rows, 1), value, dtype=dtype)}
            outputs = self.model.onnx.run_feed(occluded)
            if self.model.spec.is_classifier:
                probabilities = np.asarray(outputs[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float32)
                other = Prediction(values=prediction.values, probabilities=probabilities)
            else:
                other = Prediction(
                    values=np.asarray(outputs[contracts.ONNX_OUTPUT_REGRESSION]).reshape(-1), probabilities=None
                )
            contributions[:, j] = base - self._score(other, classes)
        order = np.argsort(-np.abs(contributions), axis=1, kind="stable")[:, : self.top_k]
        names = np.asarray(self.names, dtype=object)
        arrays = []
        for rank in range(self.top_k):
            arrays.append(pa.array(names[order[:, rank]], type=pa.string()))
            arrays.append(pa.array(np.take_along_axis(contributions, order[:, rank : rank + 1], axis=1)[:, 0]))
        return arrays


# -- scoring --------------------------------------------------------------------------------------
def output_schema(model: ServingModel, spec: ScoringSpec, input_schema: Any, explain_top_k: int = 0) -> Any:
    """The Arrow schema of ``predictions.parquet`` for this model and request."""
    import pyarrow as pa

    fields = [input_schema.field(c) for c in spec.passthrough_columns]
    fields.append(pa.field(contracts.PREDICTION_COLUMN, model.prediction_type()))
    fields += [pa.field(c, pa.float32()) for c in model.spec.probability_columns]
    for rank in range(1, explain_top_k + 1):
        fields.append(pa.field(CONTRIBUTION_FEATURE.format(rank=rank), pa.string()))
        fields.append(pa.field(CONTRIBUTION_VALUE.format(rank=rank), pa.float32()))
    fields += [
        pa.field(contracts.MODEL_NAME_COLUMN, pa.string()),
        pa.field(contracts.MODEL_VERSION_COLUMN, pa.string()),
        pa.field(contracts.SCORED_AT_COLUMN, pa.timestamp("us", tz="UTC")),
    ]
    names = [f.name for f in fields]
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:
        raise SpecError(
            f"Passthrough column(s) {clash} clash with the output columns the scorer writes; rename them or "
            "leave them out of 'passthrough_columns'."
        )
    metadata = {
        "mlops.model_name": model.name,
        "mlops.model_version": model.version,
        "mlops.onnx_sha256": model.sha256,
        "mlops.task": model.spec.task,
        "mlops.classes": json.dumps([str(c) for c in model.spec.classes]),
        "mlops.partition": spec.partition,
        "mlops.scored_at": spec.scored_at.isoformat(),
    }
    return pa.schema(fields, metadata=metadata)


def _cast(batch: Any, columns: Sequence[str], schema: Any) -> list[Any]:
    """Columns of ``batch`` in the unified input types (dictionaries decoded)."""
    return [batch.column(c).cast(schema.field(c).type) for c in columns]


class _Abandoned(Exception):
    """Carries an ``OSError`` out of ``atomic_output`` unchanged (it would wrap it as a write error)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Scorer:
    """The state of one scoring run: schemas, constant columns, samples, shadow and explainer."""

    def __init__(self, spec: ScoringSpec, model: ServingModel, plan: _Plan, shadow: ServingModel | None) -> None:
        import pyarrow as pa

        self.spec, self.model, self.plan, self.shadow = spec, model, plan, shadow
        self.explainer = _Explainer(model, spec.explain_top_k) if spec.explain_top_k else None
        self.schema = output_schema(model, spec, plan.schema, spec.explain_top_k)
        self.features = [c for c in model.spec.feature_columns if c not in spec.passthrough_columns]
        log_columns = [*spec.passthrough_columns, *self.features]
        self.log_schema = pa.schema(
            [*(plan.schema.field(c) for c in log_columns), *(f for f in self.schema if f.name not in log_columns)]
        )
        self.reservoir = _Reservoir(spec.serving_log_rows, spec.seed)
        self.shadow_problem = plan.shadow_problem if shadow is not None else None
        self.tracker = _ShadowTracker(model, shadow, spec.seed) if shadow and not self.shadow_problem else None
        self.constants = [
            pa.scalar(model.name, pa.string()),
            pa.scalar(model.version, pa.string()),
            pa.scalar(spec.scored_at, pa.timestamp("us", tz="UTC")),
        ]
        self.rows_read = 0

    def score(self, batch: Any) -> Any:
        """The output record batch of one input batch; feeds the serving log and the shadow on the way."""
        import numpy as np
        import pyarrow as pa

        rows = batch.num_rows
        feed = feed_arrow(batch, self.model.spec.inputs)
        prediction = self.model.predict(feed, first_row=self.rows_read)
        arrays = _cast(batch, self.spec.passthrough_columns, self.plan.schema)
        arrays.append(pa.array(prediction.values, type=self.schema.field(contracts.PREDICTION_COLUMN).type))
        if prediction.probabilities is not None:
            arrays += [pa.array(np.ascontiguousarray(column)) for column in prediction.probabilities.T]
        if self.explainer is not None:
            arrays += self.explainer.explain(feed, prediction)
        arrays += [pa.repeat(value, rows) for value in self.constants]
        scored = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        chosen = self.reservoir.select(rows)
        if len(chosen):
            features = pa.table(_cast(batch.take(chosen), self.features, self.plan.schema), names=self.features)
            self.reservoir.add(_log_rows(pa.Table.from_batches([scored.take(chosen)]), features, self.log_schema))
        if self.tracker is not None and self.tracker.error is None:
            self.tracker.error = _shadow_step(self.tracker, self.shadow, batch, prediction, self.rows_read)
        self.rows_read += rows
        return scored

    def stream(self, sink: Any, batches: Iterator[Any], progress: Progress | None) -> int:
        """Write every scored batch to ``sink``; return the row count the Parquet footer records."""
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(sink, self.schema, compression="zstd")
        reader = _Prefetch(batches)
        try:
            for batch in reader:
                writer.write_batch(self.score(batch))
                if progress is not None:
                    progress(self.rows_read, self.plan.rows)
        except BaseException:
            reader.close()
            with contextlib.suppress(Exception):  # the temporary output is discarded anyway
                writer.close()
            raise
        reader.close()
        writer.close()
        footer = getattr(getattr(writer, "writer", None), "metadata", None)
        return int(footer.num_rows) if footer is not None else self.rows_read

    def write_serving_log(self, root: StorageRoot, uri: str) -> int:
        sample = self.reservoir.result()
        table = sample if sample is not None else self.log_schema.empty_table()
        _write_parquet(root, uri, table.replace_schema_metadata(self.schema.metadata))
        return int(table.num_rows)

    def write_shadow_report(self, root: StorageRoot, uri: str, skipped: str | None) -> dict[str, Any]:
        report = _shadow_report(self.spec, self.model, self.shadow, self.tracker, skipped, self.shadow_problem)
        root.write_bytes(uri, (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode())
        return {
            "status": report["status"],
            "challenger_version": (report.get("challenger") or {}).get("version"),
            "agreement_rate": report.get("agreement_rate"),
            "reason": report.get("error"),
        }


def score_partition(
    root: StorageRoot,
    spec: ScoringSpec,
    model: ServingModel,
    *,
    input_fs: Any = None,
    shadow: ServingModel | None = None,
    shadow_skipped: str | None = None,
    progress: Progress | None = None,
) -> ScoringResult:
    """Score one partition and write its predictions, serving log and shadow report.

    The serving log and the shadow report are committed first and the predictions last, so a
    predictions file always comes with the side outputs of the same run. On any error nothing new is
    published: earlier outputs of the partition stay as they were.

    :param root: storage root that receives the outputs.
    :param spec: what to score and where to write it.
    :param model: the champion (the served model).
    :param input_fs: pyarrow filesystem of the input; :func:`input_filesystem` decides when omitted.
    :param shadow: a challenger scored on the same batches, for the shadow report only.
    :param shadow_skipped: why a requested challenger could not be loaded; written as the report.
    :param progress: called with (rows scored so far, rows in the partition) after each batch.
    :raises SourceNotFoundError: the input does not exist.
    :raises DataError: a feature or passthrough column is missing, a value cannot be coerced, the model
        produced NaN, or a file is not readable Parquet.
    """
    started = time.perf_counter()
    filesystem = input_fs if input_fs is not None else input_filesystem(spec.input_uri, root)
    files = resolve_input(spec.input_uri, filesystem)
    plan = _plan(files, filesystem, model, spec, shadow)
    scorer = _Scorer(spec, model, plan, shadow)
    output_uri = root.layout(spec.pipeline, contracts.KIND_PREDICTIONS, spec.partition, contracts.PREDICTIONS_FILE)
    log_uri = root.layout(spec.pipeline, contracts.KIND_SERVING_LOG, spec.partition, contracts.SERVING_LOG_FILE)
    shadow_uri = root.layout(spec.pipeline, contracts.KIND_SHADOW, spec.partition, contracts.SHADOW_REPORT_FILE)
    log_rows, summary = 0, None
    try:
        with root.atomic_output(output_uri) as sink:
            try:
                written = scorer.stream(sink, _batches(plan, filesystem, spec.chunk_rows), progress)
                if not plan.rows == scorer.rows_read == written:
                    raise ArtifactError(
                        f"Row count mismatch while scoring {spec.input_uri!r}: the file footers announce {plan.rows} "
                        f"rows, {scorer.rows_read} were read and {written} written. Nothing was published."
                    )
                if spec.serving_log_rows:
                    log_rows = scorer.write_serving_log(root, log_uri)
                if shadow is not None or shadow_skipped is not None:
                    summary = scorer.write_shadow_report(root, shadow_uri, shadow_skipped)
            except OSError as exc:
                raise _Abandoned(exc) from exc
    except _Abandoned as abandoned:
        abandoned.error.__suppress_context__ = True
        raise abandoned.error  # noqa: B904 - the original error, not the carrier, is what the caller needs
    for uri in (output_uri, log_uri, shadow_uri):
        root.remove_stale_temporaries(uri)
    return ScoringResult(
        output_uri=output_uri,
        rows_in=plan.rows,
        rows_out=written,
        input_files=len(files),
        model_name=model.name,
        model_version=model.version,
        onnx_sha256=model.sha256,
        partition=spec.partition,
        scored_at=spec.scored_at.isoformat(),
        seconds=time.perf_counter() - started,
        serving_log_uri=log_uri if spec.serving_log_rows else None,
        serving_log_rows=log_rows,
        shadow_report_uri=shadow_uri if summary is not None else None,
        shadow=summary,
        explain_top_k=spec.explain_top_k,
    )


def _log_rows(scored: Any, features: Any, schema: Any) -> Any:
    import pyarrow as pa

    columns = {name: scored.column(name) for name in scored.column_names}
    columns.update({name: features.column(name) for name in features.column_names})
    return pa.table([columns[f.name] for f in schema], schema=schema.remove_metadata())


def _shadow_step(
    tracker: _ShadowTracker, shadow: ServingModel | None, batch: Any, champion: Prediction, first_row: int
) -> str | None:
    """Score the batch with the challenger; any failure ends the shadow, never the served output."""
    if shadow is None:
        return None
    try:
        challenger = shadow.predict(feed_arrow(batch, shadow.spec.inputs), first_row=first_row)
        tracker.update(champion, challenger)
    except Exception as exc:  # the shadow must not fail the served output, whatever went wrong
        return f"{type(exc).__name__}: {exc}"
    return None


def _shadow_report(
    spec: ScoringSpec,
    champion: ServingModel,
    challenger: ServingModel | None,
    tracker: _ShadowTracker | None,
    skipped: str | None,
    problem: str | None,
) -> dict[str, Any]:
    """The tracker's report, or why there is none: ``skipped`` (no challenger could be loaded) or
    ``failed`` (the challenger cannot score this input)."""
    if tracker is not None:
        return tracker.report(spec)
    return {
        "status": "failed" if problem else "skipped",
        "error": problem or skipped,
        "partition": spec.partition,
        "input_uri": spec.input_uri,
        "scored_at": spec.scored_at.isoformat(),
        "task": champion.spec.task,
        "champion": _identity(champion),
        "challenger": _identity(challenger) if challenger is not None else None,
        "rows": 0,
    }


def _write_parquet(root: StorageRoot, uri: str, table: Any) -> None:
    import pyarrow.parquet as pq

    with root.atomic_output(uri) as stream:
        pq.write_table(table, stream, compression="zstd")


# -- the registry ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelReference:
    """A model version pinned for a run: what was resolved and the checksum it must match."""

    name: str
    version: str
    run_id: str
    onnx_sha256: str
    alias: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_name": self.name,
            "model_version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "onnx_sha256": self.onnx_sha256,
        }


def _not_found(exc: Exception) -> bool:
    return "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")) or "not found" in str(exc).lower()


def resolve_model_version(
    client: Any, name: str, *, alias: str | None = None, version: str | int | None = None
) -> ModelReference:
    """Pin a model version: by ``version`` when given, else by ``alias``.

    :param client: an ``MlflowClient`` (the operator gets it from ``MlflowHook().get_conn()``).
    :raises SourceNotFoundError: no such registered model, version or alias.
    :raises IntegrityError: the version carries no ``mlops.onnx_sha256`` tag, or its tag disagrees with
        the one on its training run: there is nothing trustworthy to verify the file against.
    :raises ArtifactError: the version is not READY yet (a retry may succeed).
    """
    from mlflow.exceptions import MlflowException

    if not name:
        raise SpecError("The 'model_name' parameter is required.")
    if version in (None, "") and not alias:
        raise SpecError("Give the model 'alias' to resolve or a pinned 'model_version'.")
    try:
        if version not in (None, ""):
            found = client.get_model_version(name, str(version))
        else:
            found = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if _not_found(exc):
            what = f"version {version}" if version not in (None, "") else f"version with alias {alias!r}"
            raise SourceNotFoundError(f"The registered model {name!r} has no {what}: {exc.message}") from exc
        raise
    status = str(getattr(found, "status", "READY"))
    if status not in ("READY", "ModelVersionStatus.READY"):
        raise ArtifactError(f"Model {name!r} version {found.version} is {status}, not READY yet.")
    if not found.run_id:
        raise IntegrityError(
            f"Model {name!r} version {found.version} has no source run, so its ONNX artifact cannot be found."
        )
    tags = dict(found.tags or {})
    expected = tags.get(contracts.TAG_ONNX_SHA256)
    if not expected:
        raise IntegrityError(
            f"Model {name!r} version {found.version} carries no {contracts.TAG_ONNX_SHA256!r} tag, so its ONNX "
            "file cannot be verified. Register it with RegisterModelOperator (which copies the tag from the run)."
        )
    run_tag = client.get_run(found.run_id).data.tags.get(contracts.TAG_ONNX_SHA256)
    if run_tag and run_tag != expected:
        raise IntegrityError(
            f"Model {name!r} version {found.version} records ONNX sha256 {expected}, but its run {found.run_id} "
            f"records {run_tag}: one of them was changed. Refusing to use it."
        )
    return ModelReference(
        name=name,
        version=str(found.version),
        run_id=str(found.run_id),
        onnx_sha256=str(expected),
        alias=alias if version in (None, "") else None,
    )


def _download(client: Any, run_id: str, path: str, folder: str) -> bytes:
    from mlflow.exceptions import MlflowException

    try:
        local = client.download_artifacts(run_id, path, folder)
        with open(local, "rb") as handle:
            return handle.read()
    except (MlflowException, OSError) as exc:
        if isinstance(exc, MlflowException) and not _not_found(exc):
            raise
        raise ArtifactError(
            f"The run {run_id} has no artifact {path!r}: it was not logged by a compatible trainer ({exc})."
        ) from exc


def load_serving_model(
    client: Any, ref: ModelReference, *, threads: int = 1, with_baseline: bool = False
) -> ServingModel:
    """Download the ONNX file and training spec of ``ref``'s run, verify the sha256 and load the graph.

    Reads only ONNX bytes, JSON and (for ``with_baseline``) the Parquet reference sample: nothing
    here unpickles.

    :raises IntegrityError: the ONNX file does not match the recorded sha256.
    :raises ArtifactError: an artifact is missing.
    """
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="mlops-model-") as folder:
        model_bytes = _download(client, ref.run_id, contracts.ARTIFACT_ONNX, folder)
        spec_bytes = _download(client, ref.run_id, contracts.ARTIFACT_SPEC, folder)
        try:
            raw_spec = json.loads(spec_bytes)
        except ValueError as exc:
            raise ArtifactError(f"The training spec of run {ref.run_id} is not valid JSON: {exc}") from exc
        baseline = None
        if with_baseline:
            reference_bytes = _download(client, ref.run_id, contracts.ARTIFACT_REFERENCE, folder)
            import pyarrow as pa

            reference = pq.read_table(pa.BufferReader(reference_bytes))
            baseline = baseline_from_reference(reference, ModelSpec.from_mapping(raw_spec).inputs)
    return ServingModel.from_bytes(
        model_bytes,
        raw_spec,
        name=ref.name,
        version=ref.version,
        expected_sha256=ref.onnx_sha256,
        threads=threads,
        alias=ref.alias,
        baseline=baseline,
    )


def load_challenger(
    client: Any,
    name: str,
    *,
    champion: ServingModel,
    alias: str = contracts.ALIAS_CHALLENGER,
    threads: int = 1,
) -> tuple[ServingModel | None, str | None]:
    """The shadow model, or ``(None, reason)`` when there is none to compare with.

    A shadow must never stop the served output, so every failure becomes a reason in the report: no
    version with the alias, the alias pointing at the champion itself, a checksum mismatch, a registry
    error.
    """
    try:
        ref = resolve_model_version(client, name, alias=alias)
        if ref.version == champion.version:
            return None, f"alias {alias!r} points at the champion itself (version {ref.version})"
        return load_serving_model(client, ref, threads=threads), None
    except Exception as exc:  # reported in the shadow report, never raised
        return None, f"{type(exc).__name__}: {exc}"
