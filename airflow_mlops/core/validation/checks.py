"""Data validation with Great Expectations 1.x: inferred suites, schema skew stops, value skew warns.

A suite comes from one of two places: a GX suite file (JSON, e.g. shipped in ``include/``) or
:func:`infer_suite`, which reads a reference snapshot and writes down what it saw: the columns and
their types, where nulls may appear and how many, the domain of low-cardinality columns, numeric ranges
and quantiles with a margin, and how many rows a batch should hold. The inferred suite is plain GX JSON:
it is saved next to the snapshot and logged to the MLflow run of the model it was built for, so it is
versioned and can be reviewed and edited like any hand-written suite.

:func:`validate_frame` runs a suite with GX on a frame and sorts every failed expectation into one of
four kinds:

- ``schema``: a missing or unexpected column, a type change, or a column that holds no values at all
  (a not-null check that finds only nulls: the column is there in name only);
- ``empty``: the snapshot has no rows;
- ``error``: GX could not evaluate the expectation (we cannot vouch for data we could not check);
- ``value``: everything else: ranges, quantiles, domains, null rates, row counts.

The first three block (severity ``error``); value skew alone gives severity ``warn``, so a pipeline can
branch on it (retrain, alert) instead of stopping. The kind follows from the expectation type; a suite
author can override it per expectation with ``meta: {"mlops_skew": "schema" | "value"}``.

GX runs in an ephemeral context (no project folder) through ``Batch.validate``. We do not go through
``ValidationDefinition.run``: it also stores the result in the context's result store, and that store's
serializer fails on the ``numpy.bool_`` values ``expect_column_quantile_values_to_be_between`` puts in
its details (GX 1.24). For the same reason results pass through :func:`jsonable` before they are written.

Heavy libraries (great_expectations, pandas, pyarrow) are imported inside the functions that use them,
so that operator modules can import this module while DAG files parse.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError

if TYPE_CHECKING:
    import pandas as pd
    from great_expectations.core.expectation_suite import ExpectationSuite
    from mlflow import MlflowClient

    from airflow_mlops.core.storage import StorageRoot

Severity = Literal["ok", "warn", "error"]
Kind = Literal["schema", "empty", "error", "value"]
TypeCheck = Literal["kind", "exact"]

SUITE_FILE = "expectation_suite.json"
RESULT_FILE = "validation_result.json"
REPORT_FILE = "report.html"

#: Failure kinds that stop a pipeline.
BLOCKING_KINDS: frozenset[str] = frozenset({"schema", "empty", "error"})

#: Expectation types whose failure means the data's shape changed, not its values.
SCHEMA_EXPECTATIONS: frozenset[str] = frozenset(
    {
        "expect_table_columns_to_match_set",
        "expect_table_columns_to_match_ordered_list",
        "expect_table_column_count_to_equal",
        "expect_table_column_count_to_be_between",
        "expect_column_to_exist",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_be_in_type_list",
        "expect_column_type_to_be",
    }
)

#: Expectation meta key a suite author may set to "schema" or "value" to override the classification.
META_SKEW = "mlops_skew"
#: Expectation meta key carrying a human sentence about what the expectation protects.
META_WHY = "mlops_why"

# GX type names accepted by its pandas type checks, per family (see ExpectColumnValuesToBeInTypeList:
# numpy dtype names for plain columns, pandas extension dtype class names for nullable ones).
NUMERIC_TYPE_NAMES: tuple[str, ...] = (
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64",
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype",
    "UInt8Dtype", "UInt16Dtype", "UInt32Dtype", "UInt64Dtype", "Float32Dtype", "Float64Dtype",
)  # fmt: skip
BOOLEAN_TYPE_NAMES: tuple[str, ...] = ("bool", "BooleanDtype")
STRING_TYPE_NAMES: tuple[str, ...] = ("str", "StringDtype")
# Python types GX can check value by value in object columns (great_expectations.expectations.type_comparison).
_NATIVE_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "bytes", "complex", "list", "dict"})

_KWARGS_NOT_EXPECTED = frozenset({"column", "batch_id", "result_format", "catch_exceptions", "include_config"})
_RESULT_FORMAT = "SUMMARY"
_SAMPLE = 10
_TEXT_CAP = 200


# -- specification --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InferenceSpec:
    """How a suite is inferred from a reference snapshot.

    :param categorical_max_unique: a text, boolean or categorical column gets a domain check when it has at
        most this many distinct values ...
    :param categorical_max_ratio: ... and distinct values make at most this share of its non-null values
        (a column of mostly unique strings is an identifier, not a category).
    :param categorical_columns: columns that always get a domain check (e.g. integer codes).
    :param schema_only_columns: columns checked for presence, type and nulls only (time keys, ids: their
        values move with every batch by design).
    :param range_margin: numeric ranges are widened by this share of the reference range on each side.
    :param quantiles: quantiles checked for numeric columns; empty to check none.
    :param quantile_margin: each quantile may move by this share of the spread between the outermost
        checked quantiles of the reference.
    :param rate_margin: for two-valued numeric columns (flags) the mean is checked instead of quantiles: the
        share of the rarer value may move by this share of itself (0.5: a 4% rate may read 2%..6%).
    :param null_rate_factor: a column with nulls in the reference may hold up to
        ``null_rate * null_rate_factor + null_rate_margin`` nulls ...
    :param null_rate_margin: ... see above. Columns without nulls in the reference must have none.
    :param row_count_tolerance: a batch may hold ``expected_rows * (1 +/- tolerance)`` rows; ``None`` checks
        only that it is not empty.
    :param expected_rows: rows a batch should hold; the reference's row count when omitted (set it when the
        reference spans several batches, e.g. three months of data checked against monthly batches).
    :param type_check: ``"kind"`` accepts any dtype of the reference's kind (integers and floats are one
        kind, because pandas turns an integer column with nulls into floats; nulls are checked separately),
        ``"exact"`` accepts only the reference's dtype (nullable and plain variants alike).
    :param column_order: also expect the columns in the reference's order.
    """

    categorical_max_unique: int = 50
    categorical_max_ratio: float = 0.5
    categorical_columns: tuple[str, ...] = ()
    schema_only_columns: tuple[str, ...] = ()
    range_margin: float = 0.1
    quantiles: tuple[float, ...] = (0.05, 0.25, 0.5, 0.75, 0.95)
    quantile_margin: float = 0.1
    rate_margin: float = 0.5
    null_rate_factor: float = 1.5
    null_rate_margin: float = 0.01
    row_count_tolerance: float | None = 0.5
    expected_rows: int | None = None
    type_check: TypeCheck = "kind"
    column_order: bool = False

    def __post_init__(self) -> None:
        _check(
            self.categorical_max_unique >= 1, "categorical_max_unique", "an integer >= 1", self.categorical_max_unique
        )
        _check(
            0 < self.categorical_max_ratio <= 1,
            "categorical_max_ratio",
            "a float in (0, 1]",
            self.categorical_max_ratio,
        )
        _check(self.range_margin >= 0, "range_margin", "a float >= 0", self.range_margin)
        _check(self.quantile_margin >= 0, "quantile_margin", "a float >= 0", self.quantile_margin)
        _check(self.rate_margin >= 0, "rate_margin", "a float >= 0", self.rate_margin)
        _check(all(0 <= q <= 1 for q in self.quantiles), "quantiles", "floats in [0, 1]", self.quantiles)
        _check(self.null_rate_factor >= 1, "null_rate_factor", "a float >= 1", self.null_rate_factor)
        _check(0 <= self.null_rate_margin <= 1, "null_rate_margin", "a float in [0, 1]", self.null_rate_margin)
        tolerance = self.row_count_tolerance
        _check(tolerance is None or tolerance >= 0, "row_count_tolerance", "a float >= 0 or None", tolerance)
        rows = self.expected_rows
        _check(rows is None or rows >= 1, "expected_rows", "an integer >= 1 or None", rows)
        _check(self.type_check in ("kind", "exact"), "type_check", "'kind' or 'exact'", self.type_check)
        overlap = sorted(set(self.categorical_columns) & set(self.schema_only_columns))
        _check(not overlap, "categorical_columns", "no column also in schema_only_columns", overlap)

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any] | None) -> InferenceSpec:
        """Build a spec from a mapping of rendered template values (strings are coerced)."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise SpecError(f"The inference settings must be a mapping. Got {type(mapping).__name__} instead.")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(mapping) - set(known))
        if unknown:
            raise SpecError(f"Unknown inference settings {unknown}. Known settings: {sorted(known)}.")
        values: dict[str, Any] = {}
        for name, raw in mapping.items():
            values[name] = _coerce(name, raw)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


_INT_FIELDS = frozenset({"categorical_max_unique", "expected_rows"})
_FLOAT_FIELDS = frozenset(
    {"categorical_max_ratio", "range_margin", "quantile_margin", "rate_margin", "null_rate_factor", "null_rate_margin"}
)
_TUPLE_FIELDS = frozenset({"categorical_columns", "schema_only_columns", "quantiles"})


def _coerce(name: str, raw: Any) -> Any:
    """Coerce one rendered setting; Jinja renders numbers and lists as strings."""
    what = f"The {name!r} inference setting"
    try:
        if raw is None or (isinstance(raw, str) and raw.strip().lower() in {"", "none", "null"}):
            if name in {"expected_rows", "row_count_tolerance"}:
                return None
            raise ValueError("missing")
        if name in _INT_FIELDS:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError(raw)
            return int(str(raw).strip()) if isinstance(raw, str) else int(raw)
        if name in _FLOAT_FIELDS or name == "row_count_tolerance":
            if isinstance(raw, bool):
                raise ValueError(raw)
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        if name == "column_order":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"true", "1", "yes"}:
                return True
            if text in {"false", "0", "no"}:
                return False
            raise ValueError(raw)
        if name in _TUPLE_FIELDS:
            items = json.loads(raw) if isinstance(raw, str) else raw
            if isinstance(items, str) or not isinstance(items, Iterable):
                raise ValueError(raw)
            if name == "quantiles":
                return tuple(float(q) for q in items)
            return tuple(str(c) for c in items)
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"{what} could not be read. Got {raw!r} instead.") from exc


def _check(ok: bool, name: str, expected: str, got: Any) -> None:
    if not ok:
        raise SpecError(f"The {name!r} parameter of InferenceSpec must be {expected}. Got {got!r} instead.")


# -- results --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FailedExpectation:
    """One failed expectation, classified.

    :param kind: ``schema``, ``empty``, ``error`` (blocking) or ``value`` (warning).
    :param expectation_type: the GX expectation type, e.g. ``expect_column_values_to_be_in_set``.
    :param column: the column it concerns, when it concerns one.
    :param observed: what the data showed (compacted for XCom: long lists are cut to a sample).
    :param expected: the expectation's arguments.
    :param reason: one sentence for people.
    """

    kind: Kind
    expectation_type: str
    column: str | None
    observed: Any
    expected: Any
    reason: str

    @property
    def blocking(self) -> bool:
        return self.kind in BLOCKING_KINDS

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "blocking": self.blocking,
            "expectation_type": self.expectation_type,
            "column": self.column,
            "observed": self.observed,
            "expected": self.expected,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class ValidationResult:
    """The verdict of one suite on one snapshot; ``to_dict()`` is the receipt pushed to XCom.

    ``passed`` is true when nothing blocking failed (severity ``ok`` or ``warn``). ``failures`` holds at most
    ``max_failures`` entries, blocking ones first; ``failures_omitted`` counts the rest. ``gx_result`` is
    the complete GX result (JSON-safe), written to ``result_uri`` and left out of the receipt.
    """

    passed: bool
    severity: Severity
    suite_name: str
    rows: int
    columns: int
    evaluated: int
    succeeded: int
    counts: Mapping[str, int]
    failures: tuple[FailedExpectation, ...]
    failures_omitted: int = 0
    snapshot_uri: str | None = None
    suite_uri: str | None = None
    result_uri: str | None = None
    report_uri: str | None = None
    gx_version: str = ""
    gx_result: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def failed(self) -> int:
        return self.evaluated - self.succeeded

    @property
    def blocking_failures(self) -> tuple[FailedExpectation, ...]:
        return tuple(f for f in self.failures if f.blocking)

    def summary(self) -> str:
        """One line for logs: severity and counts per kind."""
        kinds = ", ".join(f"{k}={v}" for k, v in self.counts.items() if v)
        return f"severity={self.severity} rows={self.rows} expectations={self.evaluated} failed={self.failed}" + (
            f" ({kinds})" if kinds else ""
        )

    def failure_message(self) -> str:
        """What a no-retry failure says: the snapshot, the suite and every blocking failure listed."""
        lines = [
            f"Snapshot {self.snapshot_uri or '(in memory)'} failed validation against suite {self.suite_name!r}: "
            f"{sum(self.counts[k] for k in BLOCKING_KINDS)} blocking failure(s)."
        ]
        lines += [f"- [{f.kind}] {f.reason}" for f in self.blocking_failures]
        if self.report_uri:
            lines.append(f"Report: {self.report_uri}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "severity": self.severity,
            "suite_name": self.suite_name,
            "snapshot_uri": self.snapshot_uri,
            "suite_uri": self.suite_uri,
            "result_uri": self.result_uri,
            "report_uri": self.report_uri,
            "rows": self.rows,
            "columns": self.columns,
            "counts": {
                "evaluated": self.evaluated,
                "succeeded": self.succeeded,
                "failed": self.failed,
                **dict(self.counts),
            },
            "failed_expectations": [f.to_dict() for f in self.failures],
            "failed_expectations_omitted": self.failures_omitted,
            "gx_version": self.gx_version,
        }


# -- JSON -----------------------------------------------------------------------------------------------------
def jsonable(value: Any) -> Any:
    """A JSON-safe copy of ``value``: numpy scalars unwrapped, NaN/inf spelled out, timestamps as ISO text.

    Non-finite floats become the strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``: strict JSON has
    no such numbers, and a report must still show that an infinity was seen.
    """
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return [jsonable(v) for v in sorted(value, key=repr)]
    if isinstance(value, datetime | date):
        return value.isoformat()
    module = type(value).__module__
    if (module == "numpy" or module.startswith("numpy.")) and hasattr(value, "tolist"):
        return jsonable(value.tolist())
    if module.startswith("pandas"):
        if type(value).__name__ in {"NAType", "NaTType"}:
            return None
        if hasattr(value, "isoformat"):
            return value.isoformat()
    if hasattr(value, "to_json_dict"):
        return jsonable(value.to_json_dict())
    return str(value)


def dumps(value: Any) -> bytes:
    """Deterministic, strict JSON (sorted keys, UTF-8, no NaN literals)."""
    return (json.dumps(jsonable(value), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n").encode()


def _compact(value: Any, depth: int = 0) -> Any:
    """A short JSON-safe rendering for receipts: lists cut to a sample, long text cut."""
    if isinstance(value, Mapping):
        return {str(k): _compact(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        head = [_compact(v, depth + 1) for v in list(value)[:_SAMPLE]]
        if len(value) > _SAMPLE:
            head.append(f"... {len(value) - _SAMPLE} more")
        return head
    value = jsonable(value)
    if isinstance(value, str) and len(value) > _TEXT_CAP:
        return value[:_TEXT_CAP] + "..."
    return value


def _gx() -> Any:
    """Import great_expectations with its INFO chatter kept out of task logs.

    GX logs a line per decorated function while it imports, and pins one module logger to INFO (a
    line per context created). Unless someone configured the ``great_expectations`` logger, raise it to
    WARNING and let that module logger inherit it.
    """
    import logging

    logger = logging.getLogger("great_expectations")
    quiet = logger.level == logging.NOTSET
    if quiet:
        logger.setLevel(logging.WARNING)
    import great_expectations

    pinned = logging.getLogger("great_expectations.data_context.types.base")
    if (quiet or logger.level >= logging.WARNING) and pinned.level == logging.INFO:
        pinned.setLevel(logging.NOTSET)
    return great_expectations


# -- suites: load, save, log ----------------------------------------------------------------------------------
def _read_uri(uri: str, root: StorageRoot | None) -> bytes:
    """Bytes at ``uri``: through the storage root when it lies inside it, else from the local disk."""
    if root is not None and root.contains(uri):
        return root.read_bytes(uri)
    if uri.startswith("s3://"):
        raise SpecError(f"The URI {uri!r} is on S3 but outside the storage root {getattr(root, 'uri', None)!r}.")
    path = uri[len("file://") :] if uri.startswith("file://") else uri
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"No file at {uri!r}.") from exc
    except IsADirectoryError as exc:
        raise SpecError(f"Expected a file at {uri!r}, found a folder.") from exc


def suite_from_dict(data: Mapping[str, Any], source: str = "(mapping)") -> ExpectationSuite:
    """Build a GX suite from its JSON form, refusing anything GX would silently drop.

    ``ExpectationSuite(...)`` logs and skips an expectation it cannot build; a gate that quietly checks
    less than its file says is worse than one that refuses to start, so each entry is built first and the
    first bad one is named. Suites in the GX 0.x layout (``expectation_suite_name``, ``expectation_type``)
    are read too.
    """
    gx = _gx()
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    if not isinstance(data, Mapping):
        raise SpecError(f"The suite {source} must be a JSON object. Got {type(data).__name__} instead.")
    name = data.get("name") or data.get("expectation_suite_name")
    if not isinstance(name, str) or not name:
        raise SpecError(f"The suite {source} has no 'name' (a non-empty string).")
    raw = data.get("expectations")
    if not isinstance(raw, list) or not raw:
        raise SpecError(f"The suite {source} must list at least one expectation under 'expectations'.")
    configs = []
    for index, entry in enumerate(raw):
        if not isinstance(entry, Mapping):
            raise SpecError(f"Expectation #{index} of suite {source} must be an object. Got {entry!r}.")
        entry = dict(entry)
        if "type" not in entry and "expectation_type" in entry:
            entry["type"] = entry.pop("expectation_type")
        entry.pop("id", None)
        expectation_type = entry.get("type")
        try:
            config = ExpectationConfiguration(**entry)
            config.to_domain_obj()
        except Exception as exc:  # GX raises a zoo of types here (pydantic, KeyError, its own)
            raise SpecError(
                f"Expectation #{index} ({expectation_type!r}) of suite {source} is not a valid GX "
                f"{gx.__version__} expectation: {_first_line(exc)}"
            ) from exc
        configs.append(config)
    meta = data.get("meta")
    suite: ExpectationSuite = gx.ExpectationSuite(
        name=name,
        expectations=configs,
        meta=dict(meta) if isinstance(meta, Mapping) else None,
        notes=data.get("notes"),
        suite_parameters=data.get("suite_parameters") or data.get("evaluation_parameters") or None,
    )
    return suite


def load_suite(uri: str, root: StorageRoot | None = None) -> ExpectationSuite:
    """Load a GX suite file: from the storage root when ``uri`` lies inside it, else a local file."""
    data = _read_uri(uri, root)
    try:
        parsed = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SpecError(f"The suite file {uri!r} is not valid JSON: {exc}") from exc
    return suite_from_dict(parsed, source=repr(uri))


def suite_to_dict(suite: ExpectationSuite) -> dict[str, Any]:
    """The suite's GX JSON form without its random ids, so equal suites serialize to equal bytes."""
    data = cast(dict[str, Any], jsonable(suite.to_json_dict()))
    data.pop("id", None)
    for expectation in data.get("expectations", []):
        expectation.pop("id", None)
        expectation.pop("rendered_content", None)
    return data


def save_suite(root: StorageRoot, suite: ExpectationSuite, pipeline: str, partition: str) -> str:
    """Write the suite atomically to ``{root}/{pipeline}/validation/{partition}/expectation_suite.json``."""
    uri = root.layout(pipeline, contracts.KIND_VALIDATION, partition, SUITE_FILE)
    root.write_bytes(uri, dumps(suite_to_dict(suite)))
    return uri


def log_suite(client: MlflowClient, run_id: str, suite: ExpectationSuite) -> None:
    """Log the suite to an MLflow run at ``contracts.ARTIFACT_SUITE``, versioning it with the model."""
    client.log_text(run_id, dumps(suite_to_dict(suite)).decode(), contracts.ARTIFACT_SUITE)


def log_validation(client: MlflowClient, run_id: str, result: ValidationResult, report_html: str | None) -> None:
    """Log a validation summary to an MLflow run: tags, counts as metrics, the receipt and the HTML page."""
    from mlflow.entities import Metric, RunTag

    now = int(datetime.now().timestamp() * 1000)
    metrics = [Metric(f"validation_{k}", float(v), now, 0) for k, v in result.to_dict()["counts"].items()]
    tags = [RunTag(contracts.TAG_VALIDATION_SEVERITY, result.severity)]
    if result.report_uri:
        tags.append(RunTag(contracts.TAG_VALIDATION_REPORT_URI, result.report_uri))
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.log_text(run_id, dumps(result.to_dict()).decode(), contracts.ARTIFACT_VALIDATION_SUMMARY)
    if report_html is not None:
        client.log_text(run_id, report_html, contracts.ARTIFACT_VALIDATION_REPORT)


# -- snapshots ------------------------------------------------------------------------------------------------
def read_snapshot(uri: str, root: StorageRoot | None = None) -> pd.DataFrame:
    """Read a Parquet snapshot (file or dataset folder) into pandas, keeping nullable dtypes."""
    import pyarrow as pa
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    if root is not None and root.contains(uri):
        filesystem, path = root.filesystem, root.fs_path(uri)
    elif uri.startswith("s3://"):
        raise SpecError(f"The snapshot {uri!r} is on S3 but outside the storage root {getattr(root, 'uri', None)!r}.")
    else:
        filesystem, path = pafs.LocalFileSystem(), os.path.abspath(uri.removeprefix("file://"))
    if filesystem.get_file_info(path).type == pafs.FileType.NotFound:
        raise SourceNotFoundError(f"No snapshot at {uri!r}.")
    try:
        table = pq.read_table(path, filesystem=filesystem)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"The snapshot {uri!r} is not a readable Parquet file or dataset: {exc}") from exc
    return table.to_pandas()


def _check_frame(frame: pd.DataFrame, what: str) -> None:
    names = list(frame.columns)
    not_text = [c for c in names if not isinstance(c, str)]
    if not_text:
        raise DataError(f"Column names of {what} must be strings. Got {not_text[:5]!r}.")
    duplicated = sorted({c for c in names if names.count(c) > 1})
    if duplicated:
        raise DataError(f"{what} has duplicate column names {duplicated}: each column must have one name.")


# -- inference ------------------------------------------------------------------------------------------------
def _kind(series: pd.Series) -> str:
    """The type family of a column: numeric, boolean, string, datetime, datetime_tz, timedelta, category, object."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "category"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_numeric_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return "datetime_tz"
    if pd.api.types.is_datetime64_dtype(dtype):
        return "datetime"
    if pd.api.types.is_timedelta64_dtype(dtype):
        return "timedelta"
    if isinstance(dtype, pd.StringDtype):
        return "string"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    return "string" if inferred == "string" else "object"


def _value_type_names(series: pd.Series) -> list[str] | None:
    """Python type names of an object column's values, when GX can check each of them."""
    names = sorted({type(v).__name__ for v in series.dropna().tolist()})
    return names if names and set(names) <= _NATIVE_TYPE_NAMES else None


def _type_expectation(gx: Any, column: str, series: pd.Series, kind: str, mode: TypeCheck) -> Any | None:
    gxe: Any = gx.expectations
    why = f"column {column!r} keeps its type"
    meta = {META_WHY: why}
    if kind == "object":
        names = _value_type_names(series)
        if names is None:
            return None
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=names, meta=meta)
    if kind == "string":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(STRING_TYPE_NAMES), meta=meta)
    if mode == "kind" and kind == "numeric":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(NUMERIC_TYPE_NAMES), meta=meta)
    if mode == "kind" and kind == "boolean":
        return gxe.ExpectColumnValuesToBeInTypeList(column=column, type_list=list(BOOLEAN_TYPE_NAMES), meta=meta)
    # GX compares the dtype's scalar type by name: int32 covers Int32 too, Timestamp is tz-aware datetime.
    return gxe.ExpectColumnValuesToBeOfType(column=column, type_=series.dtype.type.__name__, meta=meta)


def _python_values(values: Iterable[Any]) -> list[Any]:
    out = [v.item() if hasattr(v, "item") and type(v).__module__ == "numpy" else v for v in values]
    return sorted(out, key=lambda v: (type(v).__name__, v))


def _out(value: float, up: bool) -> float:
    """``value`` rounded away from the checked range to 6 significant digits: readable bounds, never tighter."""
    if value == 0 or not math.isfinite(value):
        return value
    step = 10.0 ** (math.floor(math.log10(abs(value))) - 5)
    rounded = (math.ceil if up else math.floor)(value / step) * step
    return float(f"{rounded:.10g}")


def _pad(low: float, high: float, margin: float) -> float:
    span = high - low
    return margin * (span if span > 0 else max(abs(low), 1.0))


def _numeric_expectations(gx: Any, column: str, series: pd.Series, spec: InferenceSpec) -> list[Any]:
    import numpy as np

    gxe: Any = gx.expectations
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    finite = values[np.isfinite(values)]
    distinct = np.unique(finite)
    if distinct.size == 0:
        return []
    if distinct.size == 1:  # a constant: any other value is news, whatever its size
        constant = _python_values(series.dropna().unique()[:1])
        why = {META_WHY: f"constant {constant[0]!r} in the reference"}
        return [gxe.ExpectColumnValuesToBeInSet(column=column, value_set=constant, meta=why)]
    low, high = float(distinct[0]), float(distinct[-1])
    pad = _pad(low, high, spec.range_margin)
    out = [
        gxe.ExpectColumnValuesToBeBetween(
            column=column,
            min_value=_out(low - pad, up=False),
            max_value=_out(high + pad, up=True),
            meta={META_WHY: f"reference range [{low:g}, {high:g}] widened by {spec.range_margin:g} of its span"},
        )
    ]
    if distinct.size == 2:
        # A flag (0/1): its quantiles jump between the two values; the rate of the rarer one is what moves.
        rate = float((finite == high).mean())
        tolerance = spec.rate_margin * min(rate, 1.0 - rate)
        lowest, highest = max(0.0, rate - tolerance), min(1.0, rate + tolerance)
        out.append(
            gxe.ExpectColumnMeanToBeBetween(
                column=column,
                min_value=_out(low + lowest * (high - low), up=False),
                max_value=_out(low + highest * (high - low), up=True),
                meta={
                    META_WHY: f"share of {high:g} is {rate:.2%} in the reference, {lowest:.2%}..{highest:.2%} allowed"
                },
            )
        )
    elif spec.quantiles:
        qs = sorted(set(spec.quantiles))
        observed = [float(v) for v in np.quantile(finite, qs)]
        tolerance = spec.quantile_margin * (observed[-1] - observed[0])
        if tolerance <= 0:
            tolerance = _pad(low, high, spec.quantile_margin)
        shown = {q: round(v, 6) for q, v in zip(qs, observed, strict=True)}
        out.append(
            gxe.ExpectColumnQuantileValuesToBeBetween(
                column=column,
                quantile_ranges={
                    "quantiles": qs,
                    "value_ranges": [[_out(v - tolerance, up=False), _out(v + tolerance, up=True)] for v in observed],
                },
                meta={META_WHY: f"reference quantiles {shown}, each may move by {tolerance:.4g}"},
            )
        )
    return out


def infer_suite(
    frame: pd.DataFrame, spec: InferenceSpec | None = None, *, name: str = "inferred", source: str | None = None
) -> ExpectationSuite:
    """Infer a GX suite from a reference frame (see :class:`InferenceSpec` for what is checked and how).

    Schema expectations carry GX severity ``critical``, value expectations ``warning``; both carry a
    ``meta.mlops_why`` sentence that the HTML report shows next to a failure.
    """
    gx = _gx()

    spec = spec or InferenceSpec()
    what = f"The reference {source or 'frame'}"
    _check_frame(frame, what)
    if frame.shape[1] == 0:
        raise DataError(f"{what} has no columns: there is nothing to infer a suite from.")
    if len(frame) == 0:
        raise DataError(f"{what} has no rows: ranges, domains and null rates cannot be inferred from it.")
    columns = list(frame.columns)
    for option in ("categorical_columns", "schema_only_columns"):
        unknown = sorted(set(getattr(spec, option)) - set(columns))
        if unknown:
            raise SpecError(f"The {option!r} inference setting names columns {unknown} that {what} lacks.")
    gxe: Any = gx.expectations
    schema: list[Any] = [
        gxe.ExpectTableColumnsToMatchSet(
            column_set=columns, exact_match=True, meta={META_WHY: "no column is missing and none is new"}
        )
    ]
    if spec.column_order:
        schema.append(gxe.ExpectTableColumnsToMatchOrderedList(column_list=columns))
    values: list[Any] = []
    rows = spec.expected_rows or len(frame)
    if spec.row_count_tolerance is None:
        values.append(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    else:
        low = max(1, math.ceil(rows * (1 - spec.row_count_tolerance)))
        high = math.floor(rows * (1 + spec.row_count_tolerance))
        values.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=low, max_value=high, meta={META_WHY: f"about {rows} rows per batch"}
            )
        )
    kinds: dict[str, str] = {}
    for column in columns:
        series = frame[column]
        kind = kinds[column] = _kind(series)
        typed = _type_expectation(gx, column, series, kind, spec.type_check)
        if typed is not None:
            schema.append(typed)
        null_rate = float(series.isna().mean())
        if null_rate == 0:
            values.append(
                gxe.ExpectColumnValuesToNotBeNull(column=column, meta={META_WHY: "no nulls in the reference"})
            )
        elif null_rate < 1:
            allowed = min(1.0, null_rate * spec.null_rate_factor + spec.null_rate_margin)
            values.append(
                gxe.ExpectColumnValuesToNotBeNull(
                    column=column,
                    mostly=round(1.0 - allowed, 6),
                    meta={META_WHY: f"reference null rate {null_rate:.2%}, up to {allowed:.2%} allowed"},
                )
            )
        if column in spec.schema_only_columns or null_rate == 1:
            continue
        if kind == "numeric":
            values.extend(_numeric_expectations(gx, column, series, spec))
        domain = column in spec.categorical_columns
        if not domain and kind in {"string", "boolean", "category", "object"}:
            try:
                distinct = int(series.nunique(dropna=True))
            except TypeError:  # unhashable values (lists, dicts): no domain
                distinct = spec.categorical_max_unique + 1
            non_null = int(series.notna().sum())
            domain = distinct <= spec.categorical_max_unique and distinct <= spec.categorical_max_ratio * non_null
        if domain:
            observed = _python_values(series.dropna().unique())
            values.append(
                gxe.ExpectColumnValuesToBeInSet(
                    column=column, value_set=observed, meta={META_WHY: f"{len(observed)} values in the reference"}
                )
            )
    for expectation in schema:
        expectation.severity = "critical"
    for expectation in values:
        expectation.severity = "warning"
    meta = {
        "mlops": {
            "inferred_from": source,
            "reference_rows": len(frame),
            "column_kinds": kinds,
            "spec": spec.to_dict(),
        }
    }
    suite: ExpectationSuite = gx.ExpectationSuite(name=name, expectations=schema + values, meta=jsonable(meta))
    return suite


def infer_suite_from_snapshot(
    reference_uri: str, root: StorageRoot | None = None, spec: InferenceSpec | None = None, *, name: str = "inferred"
) -> ExpectationSuite:
    """Read a reference snapshot and infer a suite from it."""
    return infer_suite(read_snapshot(reference_uri, root), spec, name=name, source=reference_uri)


# -- running and classifying ----------------------------------------------------------------------------------
def _first_line(exc: BaseException | str) -> str:
    text = str(exc).strip()
    if not text and isinstance(exc, BaseException):
        text = type(exc).__name__
    return text.splitlines()[0][:_TEXT_CAP] if text else ""


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX reports exceptions flat ({raised_exception, exception_message}) or keyed by metric id."""
    if not info:
        return None
    if info.get("raised_exception"):
        return str(info.get("exception_message") or "unknown error")
    for nested in info.values():
        if isinstance(nested, Mapping) and nested.get("raised_exception"):
            return str(nested.get("exception_message") or "unknown error")
    return None


def _columns_of(etype: str, kwargs: Mapping[str, Any]) -> list[str]:
    """Columns an expectation reads (table-level expectations name columns but read the table)."""
    names = [kwargs[k] for k in ("column", "column_A", "column_B") if isinstance(kwargs.get(k), str)]
    if not etype.startswith("expect_table") and isinstance(kwargs.get("column_list"), list):
        names += [c for c in kwargs["column_list"] if isinstance(c, str)]
    return names


def _observed(result: Mapping[str, Any]) -> Any:
    if "observed_value" in result:
        return result["observed_value"]
    if "unexpected_count" in result:
        return {
            "unexpected_count": result.get("unexpected_count"),
            "unexpected_percent": result.get("unexpected_percent"),
            "element_count": result.get("element_count"),
            "missing_count": result.get("missing_count"),
            "sample": list(result.get("partial_unexpected_list") or [])[:_SAMPLE],
        }
    return None


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(jsonable(value))


def _pct(value: Any) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value:.2g}%" if 0 < value < 0.01 else f"{value:.2f}%"


def _values(count: Any) -> str:
    return "1 value" if count == 1 else f"{count} values"


def _reason(etype: str, column: str | None, kwargs: Mapping[str, Any], result: Mapping[str, Any]) -> str:
    """One sentence a person can act on."""
    col = f"column {column!r}" if column else "the table"
    sample = jsonable(list(result.get("partial_unexpected_list") or [])[:5])
    count, pct = result.get("unexpected_count"), _pct(result.get("unexpected_percent"))
    details = result.get("details") or {}
    if etype == "expect_table_columns_to_match_set":
        mismatch = details.get("mismatched") or {}
        parts = []
        if mismatch.get("missing"):
            parts.append(f"missing columns {sorted(mismatch['missing'])}")
        if mismatch.get("unexpected"):
            parts.append(f"unexpected columns {sorted(mismatch['unexpected'])}")
        return "; ".join(parts) or f"columns {result.get('observed_value')} differ from {kwargs.get('column_set')}"
    if etype == "expect_table_columns_to_match_ordered_list":
        return f"column order {result.get('observed_value')} differs from {kwargs.get('column_list')}"
    if etype in {"expect_column_values_to_be_in_type_list", "expect_column_values_to_be_of_type"}:
        wanted = kwargs.get("type_list") or kwargs.get("type_")
        if count:
            return f"{col}: {_values(count)} ({pct}) not of type {wanted}, e.g. {sample}"
        return f"{col} has type {result.get('observed_value')!r}, expected {wanted}"
    if etype == "expect_column_proportion_of_non_null_values_to_be_between":
        bounds = f"[{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
        return f"{col}: non-null share {result.get('observed_value')} outside {bounds}"
    if _all_null(etype, result):
        return f"{col} holds no values: all {result.get('element_count')} rows are null"
    if etype == "expect_column_values_to_not_be_null":
        allowed = 100.0 * (1.0 - float(kwargs.get("mostly") or 1.0))
        return f"{col}: {count} nulls ({pct}), at most {allowed:.2f}% allowed"
    if etype == "expect_column_values_to_be_in_set":
        return f"{col}: {_values(count)} ({pct}) outside the known domain, e.g. {sample}"
    if etype == "expect_column_values_to_be_between":
        bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
        return f"{col}: {_values(count)} ({pct}) outside {bounds}, e.g. {sample}"
    if etype == "expect_column_quantile_values_to_be_between":
        ranges = kwargs.get("quantile_ranges") or {}
        obs = (result.get("observed_value") or {}).get("values") or []
        flags = details.get("success_details") or []
        off = [
            f"q{q:g}={jsonable(v)} not in [{r[0]:.4g}, {r[1]:.4g}]"
            for q, v, r, ok in zip(
                ranges.get("quantiles", []), obs, ranges.get("value_ranges", []), flags, strict=False
            )
            if not ok
        ]
        return f"{col}: " + ("; ".join(off) if off else "quantiles moved")
    if etype in {"expect_column_mean_to_be_between", "expect_column_median_to_be_between"}:
        bounds = f"[{_num(kwargs.get('min_value'))}, {_num(kwargs.get('max_value'))}]"
        return f"{col}: {etype.split('_')[2]} {_num(result.get('observed_value'))} outside {bounds}"
    if etype == "expect_table_row_count_to_be_between":
        return f"{result.get('observed_value')} rows, expected [{kwargs.get('min_value')}, {kwargs.get('max_value')}]"
    observed = _compact(_observed(result))
    return f"{etype} failed on {col}" + (f": observed {observed}" if observed is not None else "")


def _all_null(etype: str, result: Mapping[str, Any]) -> bool:
    """A not-null check that found nothing but nulls: the column is there in name only."""
    return (
        etype == "expect_column_values_to_not_be_null"
        and bool(result.get("element_count"))
        and result.get("unexpected_count") == result.get("element_count")
    )


def _classify(
    etype: str, meta: Mapping[str, Any], result: Mapping[str, Any], missing: list[str], exception: str | None,
    column: str | None, retyped: set[str],
) -> Kind:  # fmt: skip
    if missing:
        return "schema"  # a column the suite names is gone
    if exception is not None:
        # An exception on a column whose type check failed is that type change showing again.
        return "schema" if column in retyped else "error"
    override = meta.get(META_SKEW)
    if override in ("schema", "value"):
        return cast(Kind, override)
    if etype in SCHEMA_EXPECTATIONS or _all_null(etype, result):
        return "schema"
    return "value"


def _gx_batch(frame: pd.DataFrame) -> Any:
    """A GX batch over ``frame`` in a fresh ephemeral context (no project folder, no progress bars)."""
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    asset = context.data_sources.add_pandas("mlops").add_dataframe_asset("snapshot")
    return asset.add_batch_definition_whole_dataframe("whole").get_batch(batch_parameters={"dataframe": frame})


def run_gx(frame: pd.DataFrame, suite: ExpectationSuite) -> Any:
    """Run ``suite`` on ``frame`` with GX; returns GX's ``ExpectationSuiteValidationResult``."""
    return _gx_batch(frame).validate(suite, result_format=_RESULT_FORMAT)


def classify(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    gx_result: Any,
    *,
    max_failures: int = 25,
    snapshot_uri: str | None = None,
    suite_uri: str | None = None,
) -> ValidationResult:
    """Turn GX's result into a classified :class:`ValidationResult`."""
    gx = _gx()

    present = set(frame.columns)
    empty = len(frame) == 0
    evaluated = succeeded = 0
    raw: list[tuple[str, dict[str, Any], dict[str, Any], dict[str, Any], str | None, list[str]]] = []
    for item in gx_result.results:
        evaluated += 1
        if item.success:
            succeeded += 1
            continue
        config = item.expectation_config
        kwargs = {k: v for k, v in dict(config.kwargs).items() if k != "batch_id"}
        missing = [c for c in _columns_of(config.type, kwargs) if c not in present]
        exception = _exception_message(item.exception_info)
        raw.append((config.type, kwargs, dict(config.meta or {}), dict(item.result or {}), exception, missing))
    retyped = {c for etype, kwargs, *_ in raw if etype in SCHEMA_EXPECTATIONS for c in _columns_of(etype, kwargs)}
    failures: list[FailedExpectation] = []
    if empty:
        failures.append(
            FailedExpectation("empty", "table_is_not_empty", None, 0, {"min_rows": 1}, "the snapshot has no rows")
        )
    counts = {"schema": 0, "empty": int(empty), "error": 0, "value": 0}
    reported_missing: set[str] = set()
    hidden = 0
    for etype, kwargs, meta, result, exception, missing in raw:
        column = next(iter(_columns_of(etype, kwargs)), None)
        kind = _classify(etype, meta, result, missing, exception, column, retyped)
        if empty and etype not in SCHEMA_EXPECTATIONS and not missing:
            hidden += 1  # on zero rows every value check is vacuous or undefined: emptiness says it all
            continue
        counts[kind] += 1
        if missing and set(missing) <= reported_missing:
            hidden += 1  # one line per missing column, not one per expectation on it
            continue
        reported_missing.update(missing)
        expected = _compact({k: v for k, v in kwargs.items() if k not in _KWARGS_NOT_EXPECTED})
        observed: Any
        if missing:
            reason, observed = f"column {missing[0]!r} is missing from the data", {"missing_columns": missing}
        elif exception is not None:
            message = _first_line(exception)
            reason = f"{etype} on {column or 'the table'} could not be evaluated: {message}"
            if kind == "schema":
                reason = f"column {column!r} changed type: {etype} failed with {message}"
            observed = {"exception": message}
        else:
            reason, observed = _reason(etype, column, kwargs, result), _compact(_observed(result))
            why = meta.get(META_WHY)
            reason = f"{reason} (expected: {why})" if why else reason
        failures.append(FailedExpectation(kind, etype, column, observed, expected, reason))
    order = {"empty": 0, "schema": 1, "error": 2, "value": 3}
    failures.sort(key=lambda f: (order[f.kind], f.column or "", f.expectation_type))
    blocking = any(counts[k] for k in BLOCKING_KINDS)
    severity: Severity = "error" if blocking else ("warn" if counts["value"] else "ok")
    cap = max(0, int(max_failures))
    return ValidationResult(
        passed=not blocking,
        severity=severity,
        suite_name=suite.name,
        rows=len(frame),
        columns=frame.shape[1],
        evaluated=evaluated,
        succeeded=succeeded,
        counts=counts,
        failures=tuple(failures[:cap]),
        failures_omitted=max(0, len(failures) - cap) + hidden,
        snapshot_uri=snapshot_uri,
        suite_uri=suite_uri,
        gx_version=gx.__version__,
        gx_result=cast(Mapping[str, Any], jsonable(gx_result.to_json_dict())),
    )


def validate_frame(
    frame: pd.DataFrame,
    suite: ExpectationSuite,
    *,
    max_failures: int = 25,
    snapshot_uri: str | None = None,
    suite_uri: str | None = None,
) -> ValidationResult:
    """Run ``suite`` on ``frame`` with GX and classify every failure (see the module docstring)."""
    _check_frame(frame, f"The snapshot {snapshot_uri or '(in memory)'}")
    gx_result = run_gx(frame, suite)
    return classify(frame, suite, gx_result, max_failures=max_failures, snapshot_uri=snapshot_uri, suite_uri=suite_uri)


# -- reports --------------------------------------------------------------------------------------------------
def report_url(root: StorageRoot, uri: str, base_url: str | None = None) -> str:
    """A browser address for an artifact: ``base_url`` + its path under the root when given, a ``file://``
    URL for a local root, the S3 console page of the object otherwise."""
    from urllib.parse import quote

    relative = root.fs_path(uri)[len(root.fs_path(root.uri)) :].lstrip("/")
    if base_url:
        return f"{base_url.rstrip('/')}/{quote(relative)}"
    if not root.is_s3:
        return "file://" + quote(root.fs_path(uri))
    bucket, _, key = root.fs_path(uri).partition("/")
    return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;max-width:1200px}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin-top:2rem}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-weight:600;font-size:.85rem;color:#fff}
.ok{background:#1a7f37}.warn{background:#bf8700}.error{background:#cf222e}
.schema,.empty{background:#cf222e}.value{background:#bf8700}.kind-error{background:#8250df}.pass{background:#1a7f37}
table{border-collapse:collapse;width:100%;margin-top:.5rem}th,td{border:1px solid #d0d7de;padding:.35rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0;max-height:12rem;overflow:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
"""


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    return f"<pre>{html.escape(text)}</pre>"


def render_html(result: ValidationResult, title: str | None = None) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external resources) for people."""
    esc = html.escape
    heading = title or f"Validation of {result.snapshot_uri or 'a snapshot'}"
    meta = [
        ("Severity", f'<span class="badge {result.severity}">{esc(result.severity)}</span>'),
        ("Passed", "yes" if result.passed else "no (blocking failures)"),
        ("Snapshot", esc(str(result.snapshot_uri))),
        ("Suite", esc(result.suite_name) + (f" ({esc(result.suite_uri)})" if result.suite_uri else "")),
        ("Rows x columns", f"{result.rows:,} x {result.columns}"),
        ("Expectations", f"{result.evaluated} evaluated, {result.succeeded} met, {result.failed} failed"),
        ("Failures by kind", esc(", ".join(f"{k}: {v}" for k, v in result.counts.items()))),
        ("Great Expectations", esc(result.gx_version)),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(heading)}</h1>",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta) + "</dl>",
        "<h2>Failed expectations</h2>",
    ]
    if result.failures:
        parts.append(
            "<table><tr><th>Kind</th><th>Column</th><th>Expectation</th><th>Why it failed</th>"
            "<th>Observed</th><th>Expected</th></tr>"
        )
        for f in result.failures:
            css = "kind-error" if f.kind == "error" else f.kind
            parts.append(
                f'<tr><td><span class="badge {css}">{esc(f.kind)}</span></td><td>{esc(str(f.column or ""))}</td>'
                f"<td><code>{esc(f.expectation_type)}</code></td><td>{esc(f.reason)}</td>"
                f"<td>{_cell(f.observed)}</td><td>{_cell(f.expected)}</td></tr>"
            )
        parts.append("</table>")
        if result.failures_omitted:
            parts.append(f"<p>{result.failures_omitted} more failures are in the JSON result.</p>")
    else:
        parts.append("<p>None: every expectation was met.</p>")
    parts.append("<h2>All expectations</h2><table><tr><th>Result</th><th>Expectation</th><th>Arguments</th></tr>")
    for item in result.gx_result.get("results", []):
        config = item.get("expectation_config") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        ok = bool(item.get("success"))
        badge = '<span class="badge pass">met</span>' if ok else '<span class="badge error">failed</span>'
        parts.append(
            f"<tr><td>{badge}</td><td><code>{esc(str(config.get('type')))}</code></td>"
            f"<td>{_cell(_compact(kwargs))}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_reports(
    root: StorageRoot, result: ValidationResult, pipeline: str, partition: str
) -> tuple[ValidationResult, str]:
    """Write the GX result JSON (with our receipt under ``meta.mlops``) and the HTML page, each atomically.

    Returns the result with ``result_uri``/``report_uri`` set, and the HTML text.
    """
    result_uri = root.layout(pipeline, contracts.KIND_VALIDATION, partition, RESULT_FILE)
    report_uri = root.layout(pipeline, contracts.KIND_VALIDATION, partition, REPORT_FILE)
    result = replace(result, result_uri=result_uri, report_uri=report_uri)
    document = dict(result.gx_result)
    document["meta"] = {**dict(document.get("meta") or {}), "mlops": result.to_dict()}
    root.write_bytes(result_uri, dumps(document))
    page = render_html(result)
    root.write_bytes(report_uri, page.encode())
    return result, page


def validate_snapshot(
    root: StorageRoot,
    snapshot_uri: str,
    suite: ExpectationSuite,
    *,
    pipeline: str,
    partition: str,
    suite_uri: str | None = None,
    max_failures: int = 25,
) -> tuple[ValidationResult, str]:
    """Read a snapshot, validate it, write both reports under the root; return the result and the HTML."""
    frame = read_snapshot(snapshot_uri, root)
    result = validate_frame(frame, suite, max_failures=max_failures, snapshot_uri=snapshot_uri, suite_uri=suite_uri)
    return write_reports(root, result, pipeline, partition)


def prepare_suite(
    root: StorageRoot,
    *,
    pipeline: str,
    partition: str,
    suite_uri: str | None = None,
    reference_uri: str | None = None,
    inference: Mapping[str, Any] | None = None,
    save: bool = True,
) -> tuple[ExpectationSuite, str]:
    """Resolve the suite for a run: load ``suite_uri``, or infer one from ``reference_uri`` and save it.

    Exactly one of the two must be given. Returns the suite and the URI it was read from or saved to.
    With ``save=False`` an inferred suite is not written yet and the URI is where :func:`save_suite`
    will put it: a caller that still has to check the snapshot then writes nothing for a bad one.
    """
    root.layout(pipeline, contracts.KIND_VALIDATION, partition)  # refuse bad names before any work
    if bool(suite_uri) == bool(reference_uri):
        raise SpecError(
            "Give exactly one of 'suite_uri' (a GX suite file) and 'reference_uri' (a snapshot to infer a suite "
            f"from). Got suite_uri={suite_uri!r}, reference_uri={reference_uri!r}."
        )
    if suite_uri:
        if inference:
            raise SpecError("The 'inference' settings apply to 'reference_uri' only; remove them or the suite_uri.")
        return load_suite(suite_uri, root), suite_uri
    spec = InferenceSpec.from_mapping(inference)
    suite = infer_suite_from_snapshot(str(reference_uri), root, spec, name=f"{pipeline}.inferred")
    if not save:
        return suite, root.layout(pipeline, contracts.KIND_VALIDATION, partition, SUITE_FILE)
    return suite, save_suite(root, suite, pipeline, partition)


__all__: Sequence[str] = (
    "BLOCKING_KINDS",
    "SCHEMA_EXPECTATIONS",
    "FailedExpectation",
    "InferenceSpec",
    "ValidationResult",
    "classify",
    "infer_suite",
    "infer_suite_from_snapshot",
    "jsonable",
    "load_suite",
    "log_suite",
    "log_validation",
    "prepare_suite",
    "read_snapshot",
    "render_html",
    "report_url",
    "run_gx",
    "save_suite",
    "suite_from_dict",
    "suite_to_dict",
    "validate_frame",
    "validate_snapshot",
    "write_reports",
)
