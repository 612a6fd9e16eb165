"""Drift between a model's training reference and a current batch, with Evidently 0.7.

What is compared:

- **data drift**: every feature column, with a statistical test per column. Methods, thresholds and the
  automatic choice of method are Evidently's: the tests are Evidently's own registered stattests,
  chosen by the same rule as Evidently's ``DataDriftPreset`` (Wasserstein / Jensen-Shannon above
  1,000 reference rows, K-S / chi-square / Z-test below), so a verdict here is the verdict Evidently
  gives on the same rows. The drift share is the share of drifted feature columns; the batch drifts
  when it reaches ``drift_share`` (Evidently's dataset drift rule).
- **prediction drift**: the model's outputs (``prediction``, ``probability_<class>``) against the
  model's predictions on the reference.
- **target drift and quality**: when the batch carries ground truth (a labelled batch written by
  :mod:`airflow_mlops.core.drift.labels`), the label distribution and the model's quality on the
  labelled rows, against a baseline (the reference's quality, or a number given in the spec).

Memory is bounded column by column: a Parquet input is read one column at a time, and each side is
cut to a seeded sample of at most ``sample_size`` rows (the same rows for every column) before any
column is read. At or below ``sample_size`` rows the computation is exact, equal to Evidently's
full-data result. The HTML report is Evidently's ``Report`` (``DataDriftPreset`` with the resolved
methods and thresholds, ``ValueDrift`` for predictions and target, ``ClassificationPreset`` or
``RegressionPreset`` for quality) on at most ``report_sample_size`` rows per side; the JSON summary
is the record of the verdict.

Bad input gives a verdict, not a crash, where a verdict makes sense: columns missing on one side or
with another type are *schema skew*; a column with no values on one side drifted; a batch below
``min_rows`` rows is ``insufficient_data``. A reference that does not exist or cannot be read is an
error naming it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.monitoring import facts as monitoring_registry

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from mlflow import MlflowClient

    from airflow_mlops.core.pipeline.business import BusinessMetric
    from airflow_mlops.core.storage import StorageRoot

Kind = Literal["numeric", "categorical"]
Role = Literal["feature", "prediction", "target"]
Task = Literal["binary", "multiclass", "regression"]
Verdict = Literal["ok", "drift", "schema_skew", "insufficient_data"]

# Columns of the scored output / serving log contract that are never features.
PREDICTION_COLUMN = contracts.PREDICTION_COLUMN
PROBABILITY_PREFIX = contracts.PROBABILITY_COLUMN_PREFIX
SCORING_META_COLUMNS = frozenset({"model_name", "model_version", "scored_at"})

# Evidently 0.7's registered stattests (evidently.legacy.calculations.stattests) and the column kinds
# each accepts. A test checks this table against Evidently's registry, so a name accepted here is a
# name Evidently runs.
STATTESTS: dict[str, frozenset[Kind]] = {
    "anderson": frozenset({"numeric"}),
    "chisquare": frozenset({"categorical"}),
    "cramer_von_mises": frozenset({"numeric"}),
    "ed": frozenset({"numeric"}),
    "es": frozenset({"numeric"}),
    "fisher_exact": frozenset({"categorical"}),
    "g_test": frozenset({"categorical"}),
    "hellinger": frozenset({"numeric", "categorical"}),
    "jensenshannon": frozenset({"numeric", "categorical"}),
    "kl_div": frozenset({"numeric", "categorical"}),
    "ks": frozenset({"numeric"}),
    "mannw": frozenset({"numeric"}),
    "empirical_mmd": frozenset({"numeric"}),
    "psi": frozenset({"numeric", "categorical"}),
    "t_test": frozenset({"numeric"}),
    "TVD": frozenset({"categorical"}),
    "wasserstein": frozenset({"numeric"}),
    "z": frozenset({"categorical"}),
}
# Evidently's automatic choice: above this many reference values the distance measures are used.
_SMALL_REFERENCE = 1000

# Quality metrics per task: name -> higher is better.
QUALITY_METRICS: dict[str, dict[str, bool]] = {
    "binary": {
        "roc_auc": True, "accuracy": True, "precision": True, "recall": True, "f1": True,
        "log_loss": False, "positive_rate": True,
    },
    "multiclass": {"accuracy": True, "f1_macro": True},
    "regression": {"rmse": False, "mae": False, "r2": True},
}  # fmt: skip
# positive_rate is reported, never a useful primary metric: refuse it as quality_metric.
_NOT_PRIMARY = {"positive_rate"}

_SPEC_KEYS = (
    "numeric_features", "categorical_features", "task", "target", "classes", "prediction_columns",
    "exclude_columns", "method", "num_method", "cat_method", "per_column_method", "threshold",
    "num_threshold", "cat_threshold", "per_column_threshold", "drift_share", "sample_size",
    "report_sample_size", "min_rows", "seed", "quality_metric", "quality_baseline", "html_report",
    "business_metric",
)  # fmt: skip


# -- spec ----------------------------------------------------------------------------------------
def _float(raw: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = math.nan
    if math.isnan(value) or (low is not None and value < low) or (high is not None and value > high):
        bounds = f" in [{low}, {high}]" if low is not None and high is not None else ""
        raise SpecError(f"The {name!r} parameter of DriftSpec must be a number{bounds}. Got {raw!r} instead.")
    return value


def _optional_float(raw: Any, name: str, low: float | None = None, high: float | None = None) -> float | None:
    return None if raw is None or raw == "" else _float(raw, name, low, high)


def _int(raw: Any, name: str, low: int) -> int:
    try:
        value = int(raw)
        if float(raw) != value:
            raise ValueError
    except (TypeError, ValueError):
        raise SpecError(f"The {name!r} parameter of DriftSpec must be an integer >= {low}. Got {raw!r}.") from None
    if value < low:
        raise SpecError(f"The {name!r} parameter of DriftSpec must be an integer >= {low}. Got {raw!r}.")
    return value


def _names(raw: Any, name: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, Sequence) or not all(isinstance(x, str) and x for x in raw):
        raise SpecError(f"The {name!r} parameter of DriftSpec must be a list of column names. Got {raw!r}.")
    if len(set(raw)) != len(raw):
        raise SpecError(f"The {name!r} parameter of DriftSpec names a column twice: {list(raw)!r}.")
    return tuple(raw)


def _method(raw: Any, name: str) -> str | None:
    if raw is None or raw == "":
        return None
    if raw not in STATTESTS:
        raise SpecError(
            f"The {name!r} parameter of DriftSpec must name an Evidently stattest, one of "
            f"{sorted(STATTESTS)}. Got {raw!r} instead."
        )
    return str(raw)


@dataclass(frozen=True)
class DriftSpec:
    """What to compare and how. Build it with :meth:`from_mapping` (templated values are coerced there).

    Columns default to the champion's training spec (``numeric_features``, ``categorical_features``,
    ``task``, ``target``, ``classes``); with neither, every column both sides share is compared, its
    kind taken from its type. Method and threshold resolve like Evidently's ``DataDriftPreset``:
    ``per_column_*``, then ``num_*``/``cat_*``, then ``method``/``threshold``, then Evidently's
    automatic choice and the method's default threshold.

    :param drift_share: the batch drifts when the share of drifted features reaches this.
    :param sample_size: at most this many rows per side are compared (seeded uniform sample, the
        same rows for every column); ``None`` compares every row.
    :param report_sample_size: at most this many rows per side go into the HTML report.
    :param min_rows: a batch with fewer rows gets the verdict ``insufficient_data``.
    :param quality_metric: the metric whose drop the policy watches (default: ``roc_auc`` for binary,
        ``f1_macro`` for multiclass, ``rmse`` for regression).
    :param quality_baseline: the baseline value of that metric. When omitted it is the champion's
        test-split value from its training spec (``metrics.test``), else computed on the reference
        (whose predictions may be in-sample, hence optimistic).
    :param business_metric: a :class:`~airflow_mlops.core.pipeline.business.BusinessMetric` mapping: measured
        with quality on a labelled batch and logged as ``business.<name>``.
    """

    numeric_features: tuple[str, ...] = ()
    categorical_features: tuple[str, ...] = ()
    task: Task | None = None
    target: str | None = None
    classes: tuple[str, ...] = ()
    prediction_columns: tuple[str, ...] | None = None
    exclude_columns: tuple[str, ...] = ()
    method: str | None = None
    num_method: str | None = None
    cat_method: str | None = None
    per_column_method: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    num_threshold: float | None = None
    cat_threshold: float | None = None
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    sample_size: int | None = 1_000_000
    report_sample_size: int | None = 100_000
    min_rows: int = 100
    seed: int = 0
    quality_metric: str | None = None
    quality_baseline: float | None = None
    html_report: bool = True
    quality_baseline_from: Literal["spec", "training"] | None = None
    business_metric: BusinessMetric | None = None

    @classmethod
    def from_mapping(
        cls, raw: Mapping[str, Any] | None = None, training_spec: Mapping[str, Any] | None = None
    ) -> DriftSpec:
        """Validate a user mapping (e.g. the operator's ``spec``), filling gaps from a training spec."""
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(_SPEC_KEYS))
        if unknown:
            raise SpecError(f"Unknown DriftSpec parameter(s) {unknown}. Allowed: {list(_SPEC_KEYS)}.")
        base = dict(training_spec or {})

        def pick(key: str, base_key: str | None = None) -> Any:
            return raw[key] if raw.get(key) is not None else base.get(base_key or key)

        task = pick("task")
        if task is not None and task not in ("binary", "multiclass", "regression"):
            raise SpecError(f"The 'task' of DriftSpec must be binary, multiclass or regression. Got {task!r}.")
        numeric = _names(pick("numeric_features"), "numeric_features")
        categorical = _names(pick("categorical_features"), "categorical_features")
        both = sorted(set(numeric) & set(categorical))
        if both:
            raise SpecError(f"The column(s) {both} are listed as both numeric and categorical features.")
        classes_raw = pick("classes") or ()
        if isinstance(classes_raw, str) or not isinstance(classes_raw, Sequence):
            raise SpecError(f"The 'classes' of DriftSpec must be a list. Got {classes_raw!r}.")
        per_method = dict(raw.get("per_column_method") or {})
        for column, name in per_method.items():
            _method(name, f"per_column_method[{column!r}]")
        per_threshold = {
            str(c): _float(v, f"per_column_threshold[{c!r}]")
            for c, v in dict(raw.get("per_column_threshold") or {}).items()
        }
        sample = raw.get("sample_size", cls.sample_size)
        report_sample = raw.get("report_sample_size", cls.report_sample_size)
        quality_metric = raw.get("quality_metric") or None
        trained_on = base.get("primary_metric")  # the champion's own primary metric, when drift can measure it
        if quality_metric is None and task is not None and trained_on in set(QUALITY_METRICS[task]) - _NOT_PRIMARY:
            quality_metric = trained_on
        if quality_metric is not None:
            allowed = {m for metrics in QUALITY_METRICS.values() for m in metrics} - _NOT_PRIMARY
            if task is not None:
                allowed = set(QUALITY_METRICS[task]) - _NOT_PRIMARY
            if quality_metric not in allowed:
                raise SpecError(
                    f"The 'quality_metric' of DriftSpec must be one of {sorted(allowed)} for task {task!r}. "
                    f"Got {quality_metric!r}."
                )
        target = pick("target")
        predictions = raw.get("prediction_columns")
        html = raw.get("html_report", True)
        if isinstance(html, str):
            html = html.strip().lower() not in ("false", "0", "no", "")
        baseline = _optional_float(raw.get("quality_baseline"), "quality_baseline")
        baseline_from: Literal["spec", "training"] | None = "spec" if baseline is not None else None
        metric = quality_metric or {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}.get(task or "")
        held_out = (base.get("metrics") or {}).get("test") if isinstance(base.get("metrics"), Mapping) else None
        if baseline is None and isinstance(held_out, Mapping) and isinstance(held_out.get(metric), int | float):
            baseline, baseline_from = float(held_out[metric]), "training"
        business = raw.get("business_metric")
        if business is not None:
            from airflow_mlops.core.pipeline.business import BusinessMetric

            business = BusinessMetric.from_mapping(business, str(task))
        return cls(
            numeric_features=numeric,
            categorical_features=categorical,
            task=task,
            target=str(target) if target else None,
            classes=tuple(str(_label(c)) for c in classes_raw),
            prediction_columns=None if predictions is None else _names(predictions, "prediction_columns"),
            exclude_columns=_names(raw.get("exclude_columns"), "exclude_columns"),
            method=_method(raw.get("method"), "method"),
            num_method=_method(raw.get("num_method"), "num_method"),
            cat_method=_method(raw.get("cat_method"), "cat_method"),
            per_column_method={str(k): str(v) for k, v in per_method.items()},
            threshold=_optional_float(raw.get("threshold"), "threshold"),
            num_threshold=_optional_float(raw.get("num_threshold"), "num_threshold"),
            cat_threshold=_optional_float(raw.get("cat_threshold"), "cat_threshold"),
            per_column_threshold=per_threshold,
            drift_share=_float(raw.get("drift_share", cls.drift_share), "drift_share", 0.0, 1.0),
            sample_size=None if sample in (None, "", "none", "None") else _int(sample, "sample_size", 1),
            report_sample_size=(
                None if report_sample in (None, "", "none", "None") else _int(report_sample, "report_sample_size", 1)
            ),
            min_rows=_int(raw.get("min_rows", cls.min_rows), "min_rows", 1),
            seed=_int(raw.get("seed", cls.seed), "seed", 0),
            quality_metric=quality_metric,
            quality_baseline=baseline,
            html_report=bool(html),
            quality_baseline_from=baseline_from,
            business_metric=business,
        )

    def method_for(self, column: str, kind: Kind) -> str | None:
        """The configured method for a column (None: Evidently's automatic choice)."""
        typed = self.num_method if kind == "numeric" else self.cat_method
        chosen = self.per_column_method.get(column, typed if typed is not None else self.method)
        if chosen is not None and kind not in STATTESTS[chosen]:
            raise SpecError(
                f"The drift method {chosen!r} configured for column {column!r} does not accept {kind} columns; "
                f"methods for {kind} columns: {sorted(m for m, k in STATTESTS.items() if kind in k)}."
            )
        return chosen

    def threshold_for(self, column: str, kind: Kind) -> float | None:
        """The configured threshold for a column (None: the method's default)."""
        if column in self.per_column_threshold:
            return self.per_column_threshold[column]
        typed = self.num_threshold if kind == "numeric" else self.cat_threshold
        return typed if typed is not None else self.threshold

    @property
    def primary_metric(self) -> str | None:
        if self.quality_metric:
            return self.quality_metric
        return {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}.get(self.task or "")

    def to_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in (*_SPEC_KEYS, "quality_baseline_from")}
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
            elif isinstance(value, Mapping):
                out[key] = dict(value)
        if self.business_metric is not None:
            out["business_metric"] = self.business_metric.to_dict()
        return out


def _label(value: Any) -> Any:
    """Labels compare as text; integral floats (1.0 from a nullable column) read as integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# -- tables: column-wise access to a frame or a Parquet file --------------------------------------
class Table:
    """A two-dimensional input read one column at a time (base of frame and Parquet inputs)."""

    name: str
    num_rows: int

    def arrow_types(self) -> dict[str, pa.DataType]:
        raise NotImplementedError

    def column(self, name: str, rows: np.ndarray | None) -> pd.Series:
        """Column ``name`` (only the positions in ``rows`` when given, which are sorted)."""
        raise NotImplementedError

    def non_null_count(self, name: str) -> int:
        """Non-null values of a column over every row (not only a sample)."""
        return int(self.column(name, None).notna().sum())

    def frame(self, columns: Sequence[str], rows: np.ndarray | None) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame({c: self.column(c, rows).reset_index(drop=True) for c in columns})


class FrameTable(Table):
    def __init__(self, frame: pd.DataFrame, name: str = "frame") -> None:
        self._frame = frame
        self.name = name
        self.num_rows = len(frame)

    def arrow_types(self) -> dict[str, pa.DataType]:
        import pyarrow as pa

        types = {}
        for column in self._frame.columns:
            try:
                types[str(column)] = pa.Array.from_pandas(self._frame[column].iloc[:1000]).type
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                types[str(column)] = pa.string()
        return types

    def column(self, name: str, rows: np.ndarray | None) -> pd.Series:
        series = self._frame[name]
        return series if rows is None else series.iloc[rows]


class ParquetTable(Table):
    """A Parquet file read column by column (and row group by row group when sampling)."""

    def __init__(self, filesystem: Any, path: str, name: str, role: str = "input") -> None:
        import pyarrow.parquet as pq

        self.name = name
        try:
            self._file = pq.ParquetFile(filesystem.open_input_file(path))
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"The {role} {name!r} does not exist: no Parquet file there.") from exc
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"The {role} {name!r} could not be read as Parquet: {exc}") from exc
        self.num_rows = int(self._file.metadata.num_rows)

    def arrow_types(self) -> dict[str, pa.DataType]:
        schema = self._file.schema_arrow
        return {f.name: f.type for f in schema if f.name != "__index_level_0__"}

    def non_null_count(self, name: str) -> int:
        # Row-group statistics carry null counts: no need to read a column that is being sampled.
        index = self._file.schema_arrow.get_field_index(name)
        total = 0
        for group in range(self._file.num_row_groups):
            meta = self._file.metadata.row_group(group)
            stats = meta.column(index).statistics if index < meta.num_columns else None
            if stats is None or not stats.has_null_count:
                return super().non_null_count(name)
            total += meta.num_rows - stats.null_count
        return total

    def column(self, name: str, rows: np.ndarray | None) -> pd.Series:
        import numpy as np
        import pyarrow as pa

        if rows is None:
            array = self._file.read(columns=[name]).column(0)
            return array.to_pandas()
        pieces, start = [], 0
        for group in range(self._file.num_row_groups):
            size = self._file.metadata.row_group(group).num_rows
            lo, hi = np.searchsorted(rows, [start, start + size])
            if hi > lo:
                chunk = self._file.read_row_group(group, columns=[name]).column(0)
                pieces.append(chunk.take(pa.array(rows[lo:hi] - start)))
            start += size
        if not pieces:
            return self._file.schema_arrow.empty_table().select([name]).column(0).to_pandas()
        return pa.chunked_array([c for p in pieces for c in p.chunks]).to_pandas()


def open_table(source: Any, *, root: StorageRoot | None = None, role: str = "input") -> Table:
    """A :class:`Table` over a DataFrame, a Parquet URI inside ``root``, or a local Parquet path.

    ``role`` names the input in error messages ("reference", "current batch", ...).
    """
    import pandas as pd

    if isinstance(source, Table):
        return source
    if isinstance(source, pd.DataFrame):
        return FrameTable(source, role)
    uri = str(source)
    if root is not None and root.contains(uri):
        return ParquetTable(root.filesystem, root.fs_path(uri), uri, role)
    if uri.startswith("s3://"):
        raise SpecError(f"The {role} {uri!r} is on S3 but outside the storage root; it cannot be reached.")
    import pyarrow.fs as pafs

    path = uri[len("file://") :] if uri.startswith("file://") else uri
    return ParquetTable(pafs.LocalFileSystem(), os.path.abspath(path), uri, role)


def sample_rows(num_rows: int, size: int | None, seed: int) -> np.ndarray | None:
    """Sorted positions of a seeded uniform sample of ``size`` rows; None when every row is kept."""
    import numpy as np

    if size is None or num_rows <= size:
        return None
    return np.sort(np.random.default_rng(seed).choice(num_rows, size=size, replace=False))


def _kind_of(arrow_type: pa.DataType) -> Kind | None:
    import pyarrow.types as pat

    if pat.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    if pat.is_boolean(arrow_type) or pat.is_string(arrow_type) or pat.is_large_string(arrow_type):
        return "categorical"
    if pat.is_integer(arrow_type) or pat.is_floating(arrow_type) or pat.is_decimal(arrow_type):
        return "numeric"
    if pat.is_null(arrow_type):
        return None
    return None


def _numeric_values(series: pd.Series) -> pd.Series:
    import numpy as np
    import pandas as pd

    values = pd.Series(series.to_numpy(dtype="float64", na_value=np.nan), copy=False)
    values[np.isinf(values.to_numpy())] = np.nan
    return values.dropna().reset_index(drop=True)


def _categorical_values(series: pd.Series) -> pd.Series:
    """Non-null values as text, so 1, 1.0 and '1' from differently typed files are one category."""
    import numpy as np
    import pandas as pd

    values = series.dropna()
    if pd.api.types.is_float_dtype(values.dtype):
        array = values.to_numpy(dtype="float64")
        if np.all(np.floor(array) == array):
            values = pd.Series(array.astype("int64"), copy=False)
    if pd.api.types.is_object_dtype(values.dtype) and values.map(type).eq(str).all():
        return values.reset_index(drop=True)
    return values.astype(str).astype(object).reset_index(drop=True)


# -- per-column drift ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column.

    ``status`` is ``tested`` (a stattest ran), ``empty_current`` / ``empty_reference`` (no values
    on that side: drifted, since the column's content appeared or vanished), ``empty_both`` (not
    counted). ``score`` is the stattest's value (a p-value or a distance, see ``method``).
    """

    column: str
    role: Role
    kind: Kind
    status: Literal["tested", "empty_current", "empty_reference", "empty_both"]
    drifted: bool
    method: str | None
    threshold: float | None
    score: float | None
    reference_values: int
    current_values: int
    reference_missing_share: float
    current_missing_share: float
    new_values: int | None = None
    new_value_share: float | None = None
    new_values_sample: tuple[str, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["new_values_sample"] = list(self.new_values_sample)
        return out


def default_method(reference: pd.Series, current: pd.Series, kind: Kind, reference_count: int) -> str:
    """Evidently 0.7's automatic stattest (``_get_default_stattest``) for cleaned, non-null values.

    ``reference_count`` is the number of non-null reference values before any sampling, so a sampled
    comparison picks the method the full data would. Counting distinct values stops early: all the
    rule needs to know is whether there are more than 5.
    """
    if kind == "categorical":
        if reference_count > _SMALL_REFERENCE:
            return "jensenshannon"
        return "chisquare" if _distinct_upto(reference, current, 3) > 2 else "z"
    distinct = _distinct_upto(reference, current, 6)
    if reference_count > _SMALL_REFERENCE:
        return "jensenshannon" if distinct <= 5 else "wasserstein"
    if distinct <= 5:
        return "chisquare" if distinct > 2 else "z"
    return "ks"


def _distinct_upto(reference: pd.Series, current: pd.Series, limit: int) -> int:
    """min(number of distinct values over both sides, limit)."""
    seen: set[Any] = set()
    for series in (reference, current):
        for start in range(0, len(series), 4096):
            seen.update(series.iloc[start : start + 4096].unique().tolist())
            if len(seen) >= limit:
                return limit
    return len(seen)


def _evidently_stattest(method: str, kind: Kind) -> Any:
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    # Evidently's automatic rule runs the Z-test and chi-square on numeric columns with few distinct
    # values, although their registry lists them for categorical columns only: look them up as such.
    column_type = ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    if method in ("z", "chisquare"):
        column_type = ColumnType.Categorical
    return get_registered_stattest(method, column_type), (
        ColumnType.Numerical if kind == "numeric" else ColumnType.Categorical
    )


def run_stattest(
    reference: pd.Series, current: pd.Series, kind: Kind, method: str, threshold: float | None
) -> tuple[float, bool, float]:
    """Run Evidently's stattest ``method``: (score, drifted, threshold used)."""
    import warnings

    stattest, column_type = _evidently_stattest(method, kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # chi-square on a category absent from one side
        result = stattest(reference, current, column_type, threshold)
    return float(result.drift_score), bool(result.drifted), float(result.actual_threshold)


def column_drift(
    column: str,
    role: Role,
    kind: Kind,
    reference: pd.Series,
    current: pd.Series,
    spec: DriftSpec,
    reference_count: int | None = None,
) -> ColumnDrift:
    """Drift of one column from its raw values (nulls included: they give the missing shares)."""
    ref_total, cur_total = len(reference), len(current)
    ref = _numeric_values(reference) if kind == "numeric" else _categorical_values(reference)
    cur = _numeric_values(current) if kind == "numeric" else _categorical_values(current)
    base: dict[str, Any] = {
        "column": column,
        "role": role,
        "kind": kind,
        "reference_values": len(ref),
        "current_values": len(cur),
        "reference_missing_share": _share(ref_total - len(ref), ref_total),
        "current_missing_share": _share(cur_total - len(cur), cur_total),
    }
    if ref.empty or cur.empty:
        side = "both" if ref.empty and cur.empty else ("reference" if ref.empty else "current")
        detail = {
            "both": "no values on either side: not tested, not counted",
            "reference": "values appeared where the reference has none",
            "current": "every value is missing in the current batch",
        }[side]
        return ColumnDrift(
            **base, status=f"empty_{side}", drifted=side != "both", method=None,  # type: ignore[arg-type]
            threshold=None, score=None, detail=detail,
        )  # fmt: skip
    method = spec.method_for(column, kind) or default_method(
        ref, cur, kind, reference_count if reference_count is not None else len(ref)
    )
    score, drifted, threshold = run_stattest(ref, cur, kind, method, spec.threshold_for(column, kind))
    extra: dict[str, Any] = {}
    if kind == "categorical":
        counts = cur.value_counts()
        unseen = counts[~counts.index.isin(ref.unique())]
        extra = {
            "new_values": len(unseen),
            "new_value_share": _share(int(unseen.sum()), len(cur)),
            "new_values_sample": tuple(str(v) for v in unseen.index[:10]),
        }
        if len(unseen) and int(unseen.sum()) == len(cur):
            extra["detail"] = "every current value is a category the reference never had"
    return ColumnDrift(
        **base, status="tested", drifted=drifted, method=method, threshold=threshold,
        score=score if math.isfinite(score) else None, **extra,
    )  # fmt: skip


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


# -- quality -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QualityResult:
    """Model quality on the labelled rows of the batch against a baseline.

    ``drop`` is signed so that positive is worse: ``baseline - current`` for a metric where higher
    is better, ``current - baseline`` for an error metric (rmse, mae, log_loss).
    """

    task: Task
    metric: str
    higher_is_better: bool
    current: float | None
    baseline: float | None
    baseline_source: Literal["reference", "spec", "training"] | None
    drop: float | None
    labelled_rows: int
    current_metrics: dict[str, float | None]
    reference_metrics: dict[str, float | None]
    business: dict[str, Any] | None = None  # the business metric on the batch, and on the reference

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def quality_metrics(
    target: pd.Series, prediction: pd.Series, probabilities: pd.DataFrame | None, task: Task, classes: Sequence[str]
) -> dict[str, float | None]:
    """Quality of predictions against labels (rows with a null label or prediction are dropped first)."""
    import numpy as np
    from sklearn import metrics

    if task == "regression":
        y = target.to_numpy(dtype="float64", na_value=np.nan)
        p = prediction.to_numpy(dtype="float64", na_value=np.nan)
        keep = ~(np.isnan(y) | np.isnan(p))
        y, p = y[keep], p[keep]
        if len(y) == 0:
            return dict.fromkeys(QUALITY_METRICS["regression"])
        return {
            "rmse": float(np.sqrt(metrics.mean_squared_error(y, p))),
            "mae": float(metrics.mean_absolute_error(y, p)),
            "r2": float(metrics.r2_score(y, p)) if len(y) > 1 else None,
        }
    keep = target.notna().to_numpy() & prediction.notna().to_numpy()
    y_text = _categorical_values(target[keep])
    p_text = _categorical_values(prediction[keep])
    if len(y_text) == 0:
        return dict.fromkeys(QUALITY_METRICS[task])
    if task == "multiclass":
        return {
            "accuracy": float(metrics.accuracy_score(y_text, p_text)),
            "f1_macro": float(metrics.f1_score(y_text, p_text, average="macro", zero_division=0)),
        }
    positive = classes[-1] if classes else "1"
    y = (y_text == positive).to_numpy()
    p = (p_text == positive).to_numpy()
    out: dict[str, float | None] = {
        "accuracy": float(metrics.accuracy_score(y, p)),
        "precision": float(metrics.precision_score(y, p, zero_division=0)),
        "recall": float(metrics.recall_score(y, p, zero_division=0)),
        "f1": float(metrics.f1_score(y, p, zero_division=0)),
        "positive_rate": float(y.mean()),
        "roc_auc": None,
        "log_loss": None,
    }
    if probabilities is not None and probabilities.shape[1] == 1:
        score = probabilities.iloc[:, 0][keep].to_numpy(dtype="float64", na_value=np.nan)
        finite = ~np.isnan(score)
        if finite.any() and len(set(y[finite].tolist())) == 2:
            out["roc_auc"] = float(metrics.roc_auc_score(y[finite], score[finite]))
            out["log_loss"] = float(metrics.log_loss(y[finite], np.clip(score[finite], 1e-15, 1 - 1e-15)))
    return out


# -- result --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SchemaSkew:
    """Columns the spec expects that one side lacks, or has with an incompatible type."""

    missing_in_current: tuple[str, ...] = ()
    missing_in_reference: tuple[str, ...] = ()
    type_mismatch: tuple[tuple[str, str, str], ...] = ()  # (column, reference type, current type)

    @property
    def any(self) -> bool:
        return bool(self.missing_in_current or self.missing_in_reference or self.type_mismatch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "missing_in_current": list(self.missing_in_current),
            "missing_in_reference": list(self.missing_in_reference),
            "type_mismatch": [{"column": c, "reference": r, "current": k} for c, r, k in self.type_mismatch],
        }


@dataclass(frozen=True)
class DriftResult:
    """Everything one drift check found. ``verdict`` in order of precedence: ``insufficient_data``,
    ``schema_skew``, ``drift`` (the drift share reached ``drift_share``), ``ok``."""

    verdict: Verdict
    dataset_drift: bool
    drift_share: float | None
    drift_share_threshold: float
    drifted_columns: tuple[str, ...]
    features: tuple[ColumnDrift, ...]
    predictions: tuple[ColumnDrift, ...]
    target: ColumnDrift | None
    quality: QualityResult | None
    schema_skew: SchemaSkew
    reference_rows: int
    current_rows: int
    reference_rows_compared: int
    current_rows_compared: int
    reasons: tuple[str, ...]

    @property
    def prediction_drift(self) -> bool:
        return any(c.drifted for c in self.predictions)

    @property
    def labelled_rows(self) -> int:
        """Rows with a known label (and a prediction, when quality was measured)."""
        if self.quality is not None:
            return self.quality.labelled_rows
        return self.target.current_values if self.target is not None else 0

    def column(self, name: str) -> ColumnDrift | None:
        for item in (*self.features, *self.predictions, *([self.target] if self.target else [])):
            if item.column == name:
                return item
        return None

    def scores(self) -> dict[str, float | None]:
        """Per-column drift scores (features, predictions, target) keyed by column name."""
        items = (*self.features, *self.predictions, *([self.target] if self.target else []))
        return {c.column: c.score for c in items}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_columns": list(self.drifted_columns),
            "prediction_drift": self.prediction_drift,
            "features": [c.to_dict() for c in self.features],
            "predictions": [c.to_dict() for c in self.predictions],
            "target": self.target.to_dict() if self.target else None,
            "quality": self.quality.to_dict() if self.quality else None,
            "schema_skew": self.schema_skew.to_dict(),
            "rows": {
                "reference": self.reference_rows,
                "current": self.current_rows,
                "reference_compared": self.reference_rows_compared,
                "current_compared": self.current_rows_compared,
                "labelled": self.labelled_rows,
            },
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class _Plan:
    features: tuple[tuple[str, Kind], ...]
    predictions: tuple[tuple[str, Kind], ...]
    probability: str | None
    target: tuple[str, Kind] | None
    skew: SchemaSkew


def _plan(reference: Table, current: Table, spec: DriftSpec) -> _Plan:
    import pyarrow.types as pa_types

    ref_types, cur_types = reference.arrow_types(), current.arrow_types()
    excluded = set(spec.exclude_columns) | SCORING_META_COLUMNS | {spec.target or ""}
    is_output = _is_output_column
    declared: list[tuple[str, Kind]] = [(c, "numeric") for c in spec.numeric_features]
    declared += [(c, "categorical") for c in spec.categorical_features]
    missing_cur: list[str] = []
    missing_ref: list[str] = []
    if not declared:  # no spec: every shared column is a feature, its kind from its type
        for name in sorted(set(ref_types) | set(cur_types)):
            if name in excluded or is_output(name):
                continue
            if name not in cur_types:
                missing_cur.append(name)
            elif name not in ref_types:
                missing_ref.append(name)
            else:
                kind = _kind_of(ref_types[name]) or _kind_of(cur_types[name])
                if kind is not None:
                    declared.append((name, kind))
    mismatch: list[tuple[str, str, str]] = []
    features: list[tuple[str, Kind]] = []
    for name, kind in declared:
        if name not in ref_types:
            missing_ref.append(name)
        if name not in cur_types:
            missing_cur.append(name)
        if name not in ref_types or name not in cur_types:
            continue
        # A column of nulls only has Arrow type null: it is compatible with either kind (and empty).
        kinds = [_kind_of(t) for t in (ref_types[name], cur_types[name]) if not pa_types.is_null(t)]
        if kind == "numeric" and any(k != "numeric" for k in kinds):
            mismatch.append((name, str(ref_types[name]), str(cur_types[name])))
            continue
        features.append((name, kind))
    predictions, probability = _prediction_columns(spec, ref_types, cur_types)
    target: tuple[str, Kind] | None = None
    if spec.target and spec.target in ref_types and spec.target in cur_types:
        target = (spec.target, "numeric" if spec.task == "regression" else "categorical")
    skew = SchemaSkew(tuple(dict.fromkeys(missing_cur)), tuple(dict.fromkeys(missing_ref)), tuple(mismatch))
    return _Plan(tuple(features), predictions, probability, target, skew)


def _is_output_column(name: str) -> bool:
    return name == PREDICTION_COLUMN or name.startswith(PROBABILITY_PREFIX)


def _prediction_columns(
    spec: DriftSpec, ref_types: Mapping[str, Any], cur_types: Mapping[str, Any]
) -> tuple[tuple[tuple[str, Kind], ...], str | None]:
    shared = [c for c in cur_types if c in ref_types]
    if spec.prediction_columns is not None:
        wanted = [c for c in spec.prediction_columns if c in ref_types and c in cur_types]
    else:
        wanted = [c for c in shared if _is_output_column(c)]
        if spec.task == "binary":
            positive = [f"{PROBABILITY_PREFIX}{spec.classes[-1]}"] if spec.classes else []
            positive = [c for c in [*positive, f"{PROBABILITY_PREFIX}1"] if c in wanted][:1]
            wanted = [c for c in wanted if c == PREDICTION_COLUMN] + positive
    out: list[tuple[str, Kind]] = []
    for name in wanted:
        if name == PREDICTION_COLUMN:
            kind: Kind = "numeric" if spec.task == "regression" else "categorical"
            if spec.task is None:
                kind = _kind_of(ref_types[name]) or "categorical"
        else:
            kind = "numeric"
        out.append((name, kind))
    probability = next((c for c, _ in out if c.startswith(PROBABILITY_PREFIX)), None)
    if spec.task == "multiclass":
        probability = None
    return tuple(out), probability


def compute_drift(reference: Any, current: Any, spec: DriftSpec, *, root: StorageRoot | None = None) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column (frames, Parquet URIs or tables).

    :raises SourceNotFoundError: the reference or the current batch does not exist.
    :raises DataError: the reference has no rows, or an input cannot be read.
    """
    ref_table = open_table(reference, root=root, role="reference")
    cur_table = open_table(current, root=root, role="current batch")
    if ref_table.num_rows == 0:
        raise DataError(f"The reference ({ref_table.name}) has no rows: there is nothing to compare against.")
    plan = _plan(ref_table, cur_table, spec)
    ref_rows = sample_rows(ref_table.num_rows, spec.sample_size, spec.seed)
    cur_rows = sample_rows(cur_table.num_rows, spec.sample_size, spec.seed)
    common: dict[str, Any] = {
        "drift_share_threshold": spec.drift_share,
        "schema_skew": plan.skew,
        "reference_rows": ref_table.num_rows,
        "current_rows": cur_table.num_rows,
        "reference_rows_compared": ref_table.num_rows if ref_rows is None else len(ref_rows),
        "current_rows_compared": cur_table.num_rows if cur_rows is None else len(cur_rows),
    }
    if cur_table.num_rows < spec.min_rows:
        return DriftResult(
            verdict="insufficient_data", dataset_drift=False, drift_share=None, drifted_columns=(), features=(),
            predictions=(), target=None, quality=None,
            reasons=(f"the current batch has {cur_table.num_rows} rows; at least {spec.min_rows} are needed",),
            **common,
        )  # fmt: skip

    def one(name: str, kind: Kind, role: Role) -> ColumnDrift:
        ref_full = None
        if ref_rows is not None and spec.method_for(name, kind) is None:
            # Evidently's automatic method depends on the reference's size: use the full count, not the sample's.
            ref_full = ref_table.non_null_count(name)
        return column_drift(
            name, role, kind, ref_table.column(name, ref_rows), cur_table.column(name, cur_rows), spec, ref_full
        )

    features = tuple(one(name, kind, "feature") for name, kind in plan.features)
    predictions = tuple(one(name, kind, "prediction") for name, kind in plan.predictions)
    target = None
    quality = None
    if plan.target is not None:
        cur_target = cur_table.column(plan.target[0], cur_rows)
        if cur_target.notna().any():
            target = one(plan.target[0], plan.target[1], "target")
            quality = _quality(ref_table, cur_table, ref_rows, cur_rows, cur_target, plan, spec)
    counted = [c for c in features if c.status != "empty_both"]
    drifted = tuple(c.column for c in counted if c.drifted)
    share = len(drifted) / len(counted) if counted else None
    dataset_drift = share is not None and share >= spec.drift_share
    if not features and not plan.skew.any:
        raise DataError(
            "No feature column could be compared: the spec names none and the reference and current batch "
            f"share no numeric or categorical column (reference: {sorted(ref_table.arrow_types())})."
        )
    reasons = _reasons(plan.skew, share, spec.drift_share, drifted, predictions, quality)
    verdict: Verdict = "schema_skew" if plan.skew.any else ("drift" if dataset_drift else "ok")
    if features and not counted and not plan.skew.any:
        verdict, reasons = "insufficient_data", ("no feature column has a value on either side", *reasons)
    return DriftResult(
        verdict=verdict, dataset_drift=dataset_drift, drift_share=share, drifted_columns=drifted,
        features=features, predictions=predictions, target=target, quality=quality, reasons=reasons, **common,
    )  # fmt: skip


def _quality(
    ref_table: Table,
    cur_table: Table,
    ref_rows: np.ndarray | None,
    cur_rows: np.ndarray | None,
    cur_target: pd.Series,
    plan: _Plan,
    spec: DriftSpec,
) -> QualityResult | None:
    metric, task = spec.primary_metric, spec.task
    if task is None or metric is None or not any(c == PREDICTION_COLUMN for c, _ in plan.predictions):
        return None
    probability = plan.probability

    def measure(table: Table, rows: np.ndarray | None, target: pd.Series) -> dict[str, float | None]:
        prediction = table.column(PREDICTION_COLUMN, rows)
        probas = table.frame([probability], rows) if probability else None
        return quality_metrics(
            target.reset_index(drop=True), prediction.reset_index(drop=True), probas, task, spec.classes
        )

    if plan.target is None:
        return None
    current = measure(cur_table, cur_rows, cur_target)
    reference = measure(ref_table, ref_rows, ref_table.column(plan.target[0], ref_rows))
    higher = QUALITY_METRICS[task][metric]
    baseline: float | None
    source: Literal["reference", "spec", "training"]
    if spec.quality_baseline is not None:
        baseline, source = spec.quality_baseline, spec.quality_baseline_from or "spec"
    else:
        baseline, source = reference[metric], "reference"
    value = current[metric]
    drop = None
    if value is not None and baseline is not None:
        drop = round((baseline - value) if higher else (value - baseline), 6)
    labelled = int((cur_target.notna() & cur_table.column(PREDICTION_COLUMN, cur_rows).notna()).sum())
    business = None
    if spec.business_metric is not None:
        ref_target = ref_table.column(plan.target[0], ref_rows)
        business = _business(spec, spec.business_metric, cur_table, cur_rows, cur_target, probability)
        reference_value = _business(spec, spec.business_metric, ref_table, ref_rows, ref_target, probability)
        if business is not None:
            business["reference_value"] = reference_value["value"] if reference_value else None
    return QualityResult(
        task=task, metric=metric, higher_is_better=higher, current=value, baseline=baseline,
        baseline_source=source if baseline is not None else None, drop=drop,
        labelled_rows=labelled, current_metrics=current, reference_metrics=reference, business=business,
    )  # fmt: skip


def _business(
    spec: DriftSpec,
    metric: BusinessMetric,
    table: Table,
    rows: np.ndarray | None,
    target: pd.Series,
    probability: str | None,
) -> dict[str, Any] | None:
    """The business metric of a side's labelled rows: the positive-class probability against whether the
    label is positive (binary; without a probability column there is no threshold to apply, so None),
    or the prediction against the target (regression)."""
    import numpy as np

    target = target.reset_index(drop=True)
    if metric.task == "regression":
        truth = target.to_numpy(dtype="float64", na_value=np.nan)
        predicted = table.column(PREDICTION_COLUMN, rows).reset_index(drop=True)
    elif probability is None:
        return None
    else:
        positive = spec.classes[-1] if spec.classes else "1"
        known = target.notna().to_numpy()
        truth = np.full(len(target), np.nan)
        truth[known] = (_categorical_values(target) == positive).to_numpy(dtype="float64")
        predicted = table.column(probability, rows).reset_index(drop=True)
    values = predicted.to_numpy(dtype="float64", na_value=np.nan)
    return {**metric.evaluate(truth, values).to_dict(), "description": metric.describe()}


def _reasons(
    skew: SchemaSkew,
    share: float | None,
    threshold: float,
    drifted: Sequence[str],
    predictions: Sequence[ColumnDrift],
    quality: QualityResult | None,
) -> tuple[str, ...]:
    out = []
    if skew.missing_in_current:
        out.append(f"schema skew: missing in the current batch: {list(skew.missing_in_current)}")
    if skew.missing_in_reference:
        out.append(f"schema skew: missing in the reference: {list(skew.missing_in_reference)}")
    if skew.type_mismatch:
        out.append(f"schema skew: numeric columns holding text: {[c for c, _, _ in skew.type_mismatch]}")
    if share is not None:
        relation = ">=" if share >= threshold else "<"
        out.append(f"drift share {share:.3f} {relation} {threshold:.3f} ({len(drifted)} drifted: {list(drifted)})")
    drifted_outputs = [c.column for c in predictions if c.drifted]
    if drifted_outputs:
        out.append(f"prediction drift in {drifted_outputs}")
    if quality is not None and quality.drop is not None:
        out.append(
            f"{quality.metric} {quality.current:.4f} vs baseline {quality.baseline:.4f} (drop {quality.drop:+.4f})"
        )
    return tuple(out)


# -- the HTML reports (Evidently's Report API) ---------------------------------------------------
def render_reports(
    reference: Any, current: Any, result: DriftResult, spec: DriftSpec, *, root: StorageRoot | None = None
) -> dict[str, str]:
    """Evidently HTML reports for a result: ``{"drift": html}`` and, with labels, ``{"quality": html}``.

    Only columns with a verdict of ``tested`` go in (Evidently refuses empty columns); each keeps the
    method and threshold the verdict used. Each side is cut to ``report_sample_size`` rows.
    """
    if result.verdict == "insufficient_data":
        return {}
    from evidently import BinaryClassification, DataDefinition, Dataset, MulticlassClassification, Regression, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationPreset, DataDriftPreset, RegressionPreset

    ref_table = open_table(reference, root=root, role="reference")
    cur_table = open_table(current, root=root, role="current batch")
    ref_rows = sample_rows(ref_table.num_rows, spec.report_sample_size, spec.seed)
    cur_rows = sample_rows(cur_table.num_rows, spec.report_sample_size, spec.seed)
    tested = [c for c in result.features if c.status == "tested"]
    others = [c for c in (*result.predictions, *([result.target] if result.target else [])) if c.status == "tested"]
    columns = [c.column for c in (*tested, *others)]
    ref_frame = _report_frame(ref_table, columns, ref_rows, [*tested, *others])
    cur_frame = _report_frame(cur_table, columns, cur_rows, [*tested, *others])
    definition = DataDefinition(
        numerical_columns=[c.column for c in (*tested, *others) if c.kind == "numeric"],
        categorical_columns=[c.column for c in (*tested, *others) if c.kind == "categorical"],
    )
    metrics: list[Any] = []
    if tested:
        metrics.append(
            DataDriftPreset(
                columns=[c.column for c in tested],
                drift_share=spec.drift_share,
                per_column_method={c.column: c.method for c in tested},
                per_column_threshold={c.column: c.threshold for c in tested},
            )
        )
    metrics += [ValueDrift(column=c.column, method=c.method, threshold=c.threshold) for c in others]
    metadata = {"reference_rows": ref_table.num_rows, "current_rows": cur_table.num_rows}
    reports: dict[str, str] = {}
    if metrics:
        snapshot = Report(metrics, metadata=metadata).run(
            current_data=Dataset.from_pandas(cur_frame, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_frame, data_definition=definition),
        )
        reports["drift"] = snapshot.get_html_str(as_iframe=False)
    quality = result.quality
    if quality is not None and result.target is not None:
        target = result.target.column
        wanted = [target, PREDICTION_COLUMN] + [c.column for c in result.predictions if c.column != PREDICTION_COLUMN]
        labelled = []
        for table, rows in ((ref_table, ref_rows), (cur_table, cur_rows)):
            frame = table.frame(wanted, rows)
            frame = frame[frame[target].notna() & frame[PREDICTION_COLUMN].notna()].reset_index(drop=True)
            if quality.task != "regression":
                frame[target] = _categorical_values(frame[target])
                frame[PREDICTION_COLUMN] = _categorical_values(frame[PREDICTION_COLUMN])
            labelled.append(frame)
        if quality.task == "regression":
            task_definition: dict[str, Any] = {"regression": [Regression(target=target, prediction=PREDICTION_COLUMN)]}
            preset: Any = RegressionPreset()
        elif quality.task == "binary":
            probability = next((c.column for c in result.predictions if c.column.startswith(PROBABILITY_PREFIX)), None)
            positive = spec.classes[-1] if spec.classes else "1"
            task_definition = {
                "classification": [
                    BinaryClassification(
                        target=target, prediction_labels=PREDICTION_COLUMN if probability is None else None,
                        prediction_probas=probability, pos_label=positive,
                    )
                ]
            }  # fmt: skip
            preset = ClassificationPreset()
        else:
            task_definition = {
                "classification": [MulticlassClassification(target=target, prediction_labels=PREDICTION_COLUMN)]
            }
            preset = ClassificationPreset()
        if all(len(frame) for frame in labelled):
            snapshot = Report([preset], metadata=metadata).run(
                current_data=Dataset.from_pandas(labelled[1], data_definition=DataDefinition(**task_definition)),
                reference_data=Dataset.from_pandas(labelled[0], data_definition=DataDefinition(**task_definition)),
            )
            reports["quality"] = snapshot.get_html_str(as_iframe=False)
    return reports


def _report_frame(
    table: Table, columns: Sequence[str], rows: np.ndarray | None, items: Sequence[ColumnDrift]
) -> pd.DataFrame:
    import numpy as np

    frame = table.frame(columns, rows)
    for item in items:
        if item.kind == "numeric":
            values = frame[item.column].to_numpy(dtype="float64", na_value=np.nan)
            values[np.isinf(values)] = np.nan
            frame[item.column] = values
        else:
            present = frame[item.column].notna()
            text = frame[item.column].astype(object)
            text[present] = _categorical_values(frame[item.column]).to_numpy()
            frame[item.column] = text
    return frame


# -- outputs under the storage root ----------------------------------------------------------------
@dataclass(frozen=True)
class DriftOutputs:
    summary_uri: str
    report_uri: str | None
    quality_report_uri: str | None


def write_outputs(
    root: StorageRoot,
    pipeline: str,
    partition: str,
    result: DriftResult,
    reports: Mapping[str, str],
    metadata: Mapping[str, Any],
    folder: str | None = None,
) -> DriftOutputs:
    """Write the HTML reports, then the JSON summary, each atomically, under ``{pipeline}/drift/{partition}``.

    The summary goes last and names the reports, so a reader that finds a summary finds its reports.
    A rerun of the partition replaces them in place.
    """

    def uri(name: str) -> str:
        return root.layout(pipeline, contracts.KIND_DRIFT, partition, *([folder] if folder else []), name)

    report_uri = uri("report.html") if "drift" in reports else None
    quality_uri = uri("quality.html") if "quality" in reports else None
    if report_uri:
        root.write_bytes(report_uri, reports["drift"].encode("utf-8"))
    if quality_uri:
        root.write_bytes(quality_uri, reports["quality"].encode("utf-8"))
    summary_uri = uri("summary.json")
    summary = {
        **dict(metadata),
        "result": result.to_dict(),
        "report_uri": report_uri,
        "quality_report_uri": quality_uri,
        "written_at": datetime.now(UTC).isoformat(),
    }
    root.write_bytes(summary_uri, json.dumps(summary, indent=2, sort_keys=True, default=str).encode("utf-8"))
    return DriftOutputs(summary_uri, report_uri, quality_uri)


# -- the champion's reference in MLflow ----------------------------------------------------------------
@dataclass(frozen=True)
class ChampionReference:
    """The champion's training reference, downloaded to a local folder."""

    model_name: str
    version: str
    run_id: str
    experiment_id: str
    reference_path: str
    training_spec: dict[str, Any]

    @property
    def reference_id(self) -> str:
        return f"{self.model_name}/v{self.version}"


def fetch_champion_reference(client: MlflowClient, model_name: str, folder: str | None = None) -> ChampionReference:
    """Resolve ``model_name@champion`` and download its run's reference sample and training spec.

    :raises SourceNotFoundError: no champion alias, or its run lacks the reference or spec artifact.
    """
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(model_name, contracts.ALIAS_CHAMPION)
    except MlflowException as exc:
        raise SourceNotFoundError(
            f"The registered model {model_name!r} has no {contracts.ALIAS_CHAMPION!r} alias, so there is no "
            f"reference to compare with. Promote a version first, or pass reference_uri. ({exc})"
        ) from exc
    run_id = str(version.run_id)
    folder = folder or tempfile.mkdtemp(prefix="mlops-drift-")
    paths = {}
    for artifact in (contracts.ARTIFACT_REFERENCE, contracts.ARTIFACT_SPEC):
        try:
            paths[artifact] = client.download_artifacts(run_id, artifact, folder)
        except (MlflowException, OSError) as exc:
            raise SourceNotFoundError(
                f"The champion {model_name!r} v{version.version} (run {run_id}) has no artifact {artifact!r}: "
                f"it was not trained by a compatible trainer. ({exc})"
            ) from exc
    try:
        with open(paths[contracts.ARTIFACT_SPEC], encoding="utf-8") as handle:
            training_spec = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"The training spec of run {run_id} is not readable JSON: {exc}") from exc
    experiment_id = str(client.get_run(run_id).info.experiment_id)
    return ChampionReference(
        model_name, str(version.version), run_id, experiment_id, paths[contracts.ARTIFACT_REFERENCE], training_spec
    )


# -- MLflow time series on a monitoring run ------------------------------------------------------------
def monitoring_run(
    client: MlflowClient, experiment_id: str, subject: str, tags: Mapping[str, str] | None = None
) -> str:
    """The id of the drift monitoring run of ``subject`` in the experiment, created on first use."""
    return monitoring_registry.monitoring_run(client, experiment_id, subject, "drift", tags)


def log_drift_metrics(
    client: MlflowClient,
    run_id: str,
    result: DriftResult,
    step: int,
    timestamp_ms: int,
    extra: Mapping[str, float] | None = None,
) -> int:
    """Log one step of the time series on a monitoring run; return how many values were logged.

    Two groups share the step of a batch: *data* (drift share, per-feature and prediction drift scores,
    row count) and *labels* (quality metrics, quality drop, target drift, labelled rows). A group whose
    marker metric already has a point at this step is not logged again, so a rerun of a batch adds
    nothing, and the labelled check of a batch adds its quality to the data its serving check logged.
    ``extra`` values join the labels group of a labelled check and the data group otherwise.
    """
    from mlflow.entities import Metric

    data: dict[str, float | None] = {
        "current_rows": float(result.current_rows),
        "drift_share": result.drift_share,
        "drifted_columns": float(len(result.drifted_columns)) if result.drift_share is not None else None,
        "dataset_drift": float(result.dataset_drift),
    }
    labels: dict[str, float | None] = {}
    for item in (*result.features, *result.predictions):
        key = "drift_score" if item.role == "feature" else "prediction_drift_score"
        data[f"{key}.{item.column}"] = item.score
    if result.target is not None:
        labels["labelled_rows"] = float(result.labelled_rows)
        labels[f"target_drift_score.{result.target.column}"] = result.target.score
    if result.quality is not None:
        labels.update({f"quality.{name}": value for name, value in result.quality.current_metrics.items()})
        labels["quality_drop"] = result.quality.drop
        business = result.quality.business
        if business is not None:
            labels[f"business.{business['name']}"] = business["value"]
    (labels if result.target is not None else data).update(extra or {})
    logged = 0
    for group, marker in ((data, "current_rows"), (labels, "labelled_rows")):
        if not group or any(m.step == step for m in client.get_metric_history(run_id, marker)):
            continue
        metrics = [
            Metric(monitoring_registry.metric_key(key), float(value), timestamp_ms, step)
            for key, value in group.items()
            if value is not None and math.isfinite(float(value))
        ]
        for start in range(0, len(metrics), 1000):
            client.log_batch(run_id, metrics=metrics[start : start + 1000])
        logged += len(metrics)
    return logged


# -- one check, end to end (what the operator runs) -----------------------------------------------------
@dataclass(frozen=True)
class CheckOutcome:
    result: DriftResult
    outputs: DriftOutputs


def check_batch(
    root: StorageRoot,
    reference: Any,
    current: Any,
    spec: DriftSpec,
    *,
    pipeline: str,
    partition: str,
    metadata: Mapping[str, Any] | None = None,
) -> CheckOutcome:
    """Compare, render the Evidently reports, and write reports and summary under the storage root.

    A labelled batch (one carrying the target) writes under ``{partition}/labelled/`` so that it does
    not replace the check of the same partition's serving log.
    """
    result = compute_drift(reference, current, spec, root=root)
    reports = render_reports(reference, current, result, spec, root=root) if spec.html_report else {}
    folder = "labelled" if result.target is not None else None
    outputs = write_outputs(
        root, pipeline, partition, result, reports, {**dict(metadata or {}), "spec": spec.to_dict()}, folder
    )
    return CheckOutcome(result, outputs)
