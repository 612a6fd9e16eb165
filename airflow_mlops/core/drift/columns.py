"""The columns of a drift check and the verdict of each.

Which columns are compared (the spec's features, else every column both sides share; the model's
outputs; the target) and the schema skew found on the way; then, per column, Evidently's stattest on
the column's cleaned values, chosen by Evidently's own rule (Wasserstein / Jensen-Shannon above 1,000
reference values, K-S / chi-square / Z-test below), or the verdict of a column with no values on one
side. A column whose reference is (nearly) one value is marked, so the drift share can leave it out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core.drift.spec import PREDICTION_COLUMN, PROBABILITY_PREFIX, SCORING_META_COLUMNS
from airflow_mlops.core.drift.tables import categorical_values, kind_of, numeric_values

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.drift.spec import DriftSpec, Kind, Role
    from airflow_mlops.core.drift.tables import Table

# Evidently's automatic choice: above this many reference values the distance measures are used.
_SMALL_REFERENCE = 1000
# A reference column whose most common value holds more than this share of its non-null rows is
# constant for drift purposes (a placeholder before a source came online): any later variety "drifts".
CONSTANT_SHARE = 0.99


@dataclass(frozen=True)
class ColumnDrift:
    """The drift verdict of one column.

    ``status`` is ``tested`` (a stattest ran), ``empty_current`` / ``empty_reference`` (no values
    on that side: drifted, since the column's content appeared or vanished), ``empty_both`` (not
    counted). ``score`` is the stattest's value (a p-value or a distance, see ``method``).
    ``reference_top_share`` is the share of the reference's non-null values held by its most common
    value: above :data:`CONSTANT_SHARE` the column is ``constant_in_reference`` and left out of the
    drift share. ``role`` ``input`` is a monitored column the model does not read.
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
    reference_top_share: float | None = None

    @property
    def constant_in_reference(self) -> bool:
        return self.reference_top_share is not None and self.reference_top_share > CONSTANT_SHARE

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["new_values_sample"] = list(self.new_values_sample)
        out["constant_in_reference"] = self.constant_in_reference
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
    ref = numeric_values(reference) if kind == "numeric" else categorical_values(reference)
    cur = numeric_values(current) if kind == "numeric" else categorical_values(current)
    base: dict[str, Any] = {
        "column": column,
        "role": role,
        "kind": kind,
        "reference_values": len(ref),
        "current_values": len(cur),
        "reference_missing_share": _share(ref_total - len(ref), ref_total),
        "current_missing_share": _share(cur_total - len(cur), cur_total),
        "reference_top_share": _top_share(ref),
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


def _top_share(values: pd.Series) -> float | None:
    """The share of the (cleaned, non-null) values held by the most common one; None without values."""
    if values.empty:
        return None
    return _share(int(values.value_counts().iloc[0]), len(values))


# -- which columns are compared ----------------------------------------------------------------------
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
class ColumnPlan:
    """Which columns a check compares, with their kinds, and the schema skew found while choosing."""

    features: tuple[tuple[str, Kind], ...]
    predictions: tuple[tuple[str, Kind], ...]
    probability: str | None
    target: tuple[str, Kind] | None
    skew: SchemaSkew
    inputs: tuple[tuple[str, Kind], ...] = ()


def plan_columns(reference: Table, current: Table, spec: DriftSpec) -> ColumnPlan:
    import pyarrow.types as pa_types

    ref_types, cur_types = reference.arrow_types(), current.arrow_types()
    excluded = set(spec.exclude_columns) | SCORING_META_COLUMNS | {spec.target or ""}
    declared: list[tuple[str, Kind]] = [(c, "numeric") for c in spec.numeric_features]
    declared += [(c, "categorical") for c in spec.categorical_features]
    missing_cur: list[str] = []
    missing_ref: list[str] = []
    spec_declares = bool(declared)
    if not declared:  # no spec: every shared column is a feature, its kind from its type
        declared = _shared_columns(ref_types, cur_types, excluded, missing_cur, missing_ref)
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
        kinds = [kind_of(t) for t in (ref_types[name], cur_types[name]) if not pa_types.is_null(t)]
        if kind == "numeric" and any(k != "numeric" for k in kinds):
            mismatch.append((name, str(ref_types[name]), str(cur_types[name])))
            continue
        features.append((name, kind))
    predictions, probability = _prediction_columns(spec, ref_types, cur_types)
    target: tuple[str, Kind] | None = None
    if spec.target and spec.target in ref_types and spec.target in cur_types:
        target = (spec.target, "numeric" if spec.task == "regression" else "categorical")
    skew = SchemaSkew(tuple(dict.fromkeys(missing_cur)), tuple(dict.fromkeys(missing_ref)), tuple(mismatch))
    inputs = _input_columns(spec, ref_types, cur_types, excluded | {n for n, _ in declared}) if spec_declares else ()
    return ColumnPlan(tuple(features), predictions, probability, target, skew, inputs)


def _input_columns(
    spec: DriftSpec, ref_types: Mapping[str, Any], cur_types: Mapping[str, Any], taken: set[str]
) -> tuple[tuple[str, Kind], ...]:
    """The monitored columns the model does not read: ``monitor_columns`` when named, else every
    numeric or categorical column both sides share that is no feature, output, target or scoring meta."""
    names = spec.monitor_columns if spec.monitor_columns is not None else sorted(set(ref_types) & set(cur_types))
    out: list[tuple[str, Kind]] = []
    for name in names:
        if name in taken or is_output_column(name) or name not in ref_types or name not in cur_types:
            continue
        kind = kind_of(ref_types[name]) or kind_of(cur_types[name])
        if kind is not None:
            out.append((name, kind))
    return tuple(out)


def _shared_columns(
    ref_types: Mapping[str, Any],
    cur_types: Mapping[str, Any],
    excluded: set[str],
    missing_cur: list[str],
    missing_ref: list[str],
) -> list[tuple[str, Kind]]:
    """Every column both sides have (a numeric or categorical type), noting the ones only one side has."""
    declared: list[tuple[str, Kind]] = []
    for name in sorted(set(ref_types) | set(cur_types)):
        if name in excluded or is_output_column(name):
            continue
        if name not in cur_types:
            missing_cur.append(name)
        elif name not in ref_types:
            missing_ref.append(name)
        else:
            kind = kind_of(ref_types[name]) or kind_of(cur_types[name])
            if kind is not None:
                declared.append((name, kind))
    return declared


def is_output_column(name: str) -> bool:
    return name == PREDICTION_COLUMN or name.startswith(PROBABILITY_PREFIX)


def _prediction_columns(
    spec: DriftSpec, ref_types: Mapping[str, Any], cur_types: Mapping[str, Any]
) -> tuple[tuple[tuple[str, Kind], ...], str | None]:
    shared = [c for c in cur_types if c in ref_types]
    if spec.prediction_columns is not None:
        wanted = [c for c in spec.prediction_columns if c in ref_types and c in cur_types]
    else:
        wanted = [c for c in shared if is_output_column(c)]
        if spec.task == "binary":
            positive = [f"{PROBABILITY_PREFIX}{spec.classes[-1]}"] if spec.classes else []
            positive = [c for c in [*positive, f"{PROBABILITY_PREFIX}1"] if c in wanted][:1]
            wanted = [c for c in wanted if c == PREDICTION_COLUMN] + positive
    out: list[tuple[str, Kind]] = []
    for name in wanted:
        if name == PREDICTION_COLUMN:
            kind: Kind = "numeric" if spec.task == "regression" else "categorical"
            if spec.task is None:
                kind = kind_of(ref_types[name]) or "categorical"
        else:
            kind = "numeric"
        out.append((name, kind))
    probability = next((c for c, _ in out if c.startswith(PROBABILITY_PREFIX)), None)
    if spec.task == "multiclass":
        probability = None
    return tuple(out), probability
