"""Drift between a model's training reference and a current batch, with Evidently 0.7's stattests.

What is compared:

- **data drift**: every feature column, with a statistical test per column. Methods, thresholds and the
  automatic choice of method are Evidently's: the tests are Evidently's own registered stattests,
  chosen by the same rule as Evidently's ``DataDriftPreset`` (Wasserstein / Jensen-Shannon above
  1,000 reference rows, K-S / chi-square / Z-test below), so a verdict here is the verdict Evidently
  gives on the same rows. The drift share is the share of drifted feature columns; the batch drifts
  when it reaches ``drift_share`` (Evidently's dataset drift rule). A feature that is constant in the
  reference (one value above 99 % of its non-null rows: a placeholder before its source came online)
  is tested and reported but left out of the share: any variety later would "drift" for ever. The
  *weighted* drift share weighs each counted feature by the champion's feature importance (the plain
  share when no importance is known).
- **input drift**: columns the model does not read (``monitor_columns``, else every other column both
  sides share), reported with their test and score, never counted in the drift share.
- **prediction drift**: the model's outputs (``prediction``, ``probability_<class>``) against the
  model's predictions on the reference.
- **target drift and quality**: when the batch carries ground truth (a labelled batch written by
  :mod:`airflow_mlops.core.drift.labels`), the label distribution and the model's quality on the
  labelled rows, against a baseline (the reference's quality, or a number given in the spec).

Memory is bounded column by column: a Parquet input is read one column at a time, and each side is
cut to a seeded sample of at most ``sample_size`` rows (the same rows for every column) before any
column is read. At or below ``sample_size`` rows the computation is exact, equal to Evidently's
full-data result.

Bad input gives a verdict, not a crash, where a verdict makes sense: columns missing on one side or
with another type are *schema skew*; a column with no values on one side drifted; a batch below
``min_rows`` rows is ``insufficient_data``. A reference that does not exist or cannot be read is an
error naming it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.drift.columns import ColumnDrift, SchemaSkew, column_drift, plan_columns
from airflow_mlops.core.drift.quality import QualityResult, measure_quality
from airflow_mlops.core.drift.spec import PREDICTION_COLUMN
from airflow_mlops.core.drift.tables import open_table, sample_rows
from airflow_mlops.core.errors import DataError

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.core.drift.columns import ColumnPlan
    from airflow_mlops.core.drift.spec import DriftSpec, Kind, Role, Verdict
    from airflow_mlops.core.drift.tables import Table
    from airflow_mlops.core.storage import StorageRoot


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
    weighted_drift_share: float | None = None
    weighting: str = "plain"  # "importance", or why the plain share stands in for the weighted one
    left_out: tuple[str, ...] = ()  # features constant in the reference: not in either share
    inputs: tuple[ColumnDrift, ...] = ()

    @property
    def input_drift(self) -> tuple[ColumnDrift, ...]:
        """The monitored non-feature columns that drifted."""
        return tuple(c for c in self.inputs if c.drifted)

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
        for item in (*self.features, *self.predictions, *([self.target] if self.target else []), *self.inputs):
            if item.column == name:
                return item
        return None

    def scores(self) -> dict[str, float | None]:
        """Per-column drift scores (features, predictions, target, inputs) keyed by column name."""
        items = (*self.features, *self.predictions, *([self.target] if self.target else []), *self.inputs)
        return {c.column: c.score for c in items}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "weighted_drift_share": self.weighted_drift_share,
            "weighting": self.weighting,
            "left_out": {"constant in the reference": list(self.left_out)},
            "drift_share_threshold": self.drift_share_threshold,
            "drifted_columns": list(self.drifted_columns),
            "prediction_drift": self.prediction_drift,
            "features": [c.to_dict() for c in self.features],
            "predictions": [c.to_dict() for c in self.predictions],
            "target": self.target.to_dict() if self.target else None,
            "inputs": [c.to_dict() for c in self.inputs],
            "input_drift": [c.column for c in self.input_drift],
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
class _Sides:
    """Both inputs of a check and the rows of each that are compared (None: every row)."""

    reference: Table
    current: Table
    reference_rows: np.ndarray | None
    current_rows: np.ndarray | None
    spec: DriftSpec

    def compare(self, name: str, kind: Kind, role: Role) -> ColumnDrift:
        ref_full = None
        if self.reference_rows is not None and self.spec.method_for(name, kind) is None:
            # Evidently's automatic method depends on the reference's size: use the full count, not the sample's.
            ref_full = self.reference.non_null_count(name)
        return column_drift(
            name,
            role,
            kind,
            self.reference.column(name, self.reference_rows),
            self.current.column(name, self.current_rows),
            self.spec,
            ref_full,
        )


def compute_drift(
    reference: Any,
    current: Any,
    spec: DriftSpec,
    *,
    root: StorageRoot | None = None,
    importance: Mapping[str, float] | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` column by column (frames, Parquet URIs or tables).

    ``importance`` (feature -> importance share, as training logs it) weighs the weighted drift share.

    :raises SourceNotFoundError: the reference or the current batch does not exist.
    :raises DataError: the reference has no rows, or an input cannot be read.
    """
    ref_table = open_table(reference, root=root, role="reference")
    cur_table = open_table(current, root=root, role="current batch")
    if ref_table.num_rows == 0:
        raise DataError(f"The reference ({ref_table.name}) has no rows: there is nothing to compare against.")
    plan = plan_columns(ref_table, cur_table, spec)
    sides = _Sides(
        ref_table,
        cur_table,
        sample_rows(ref_table.num_rows, spec.sample_size, spec.seed),
        sample_rows(cur_table.num_rows, spec.sample_size, spec.seed),
        spec,
    )
    common: dict[str, Any] = {
        "drift_share_threshold": spec.drift_share,
        "schema_skew": plan.skew,
        "reference_rows": ref_table.num_rows,
        "current_rows": cur_table.num_rows,
        "reference_rows_compared": ref_table.num_rows if sides.reference_rows is None else len(sides.reference_rows),
        "current_rows_compared": cur_table.num_rows if sides.current_rows is None else len(sides.current_rows),
    }
    if cur_table.num_rows < spec.min_rows:
        return DriftResult(
            verdict="insufficient_data", dataset_drift=False, drift_share=None, drifted_columns=(), features=(),
            predictions=(), target=None, quality=None,
            reasons=(f"the current batch has {cur_table.num_rows} rows; at least {spec.min_rows} are needed",),
            **common,
        )  # fmt: skip
    features = tuple(sides.compare(name, kind, "feature") for name, kind in plan.features)
    predictions = tuple(sides.compare(name, kind, "prediction") for name, kind in plan.predictions)
    target, quality = _target_and_quality(sides, plan)
    common["inputs"] = tuple(sides.compare(name, kind, "input") for name, kind in plan.inputs)
    if not features and not plan.skew.any:
        raise DataError(
            "No feature column could be compared: the spec names none and the reference and current batch "
            f"share no numeric or categorical column (reference: {sorted(ref_table.arrow_types())})."
        )
    return _result(features, predictions, target, quality, plan.skew, spec, {**common, **_weights(importance)})


def _weights(importance: Mapping[str, float] | None) -> dict[str, Any]:
    return {"importance": dict(importance) if importance else None}


def weighted_share(counted: Sequence[ColumnDrift], importance: Mapping[str, float] | None) -> tuple[float | None, str]:
    """The share of the counted features' importance held by the drifted ones, and how it was weighed.

    Without importance for these features (none logged, or all zero) it is the plain share, and the
    second value says why."""
    if not counted:
        return None, "plain"
    plain = sum(c.drifted for c in counted) / len(counted)
    if not importance:
        return plain, "plain: the champion logged no feature importance"
    total = sum(max(float(importance.get(c.column, 0.0)), 0.0) for c in counted)
    if total <= 0:
        return plain, "plain: the counted features carry no importance"
    drifted = sum(max(float(importance.get(c.column, 0.0)), 0.0) for c in counted if c.drifted)
    return round(drifted / total, 6), "importance"


def _target_and_quality(sides: _Sides, plan: ColumnPlan) -> tuple[ColumnDrift | None, QualityResult | None]:
    """Target drift and quality, when the current batch carries any label."""
    if plan.target is None:
        return None, None
    name, kind = plan.target
    cur_target = sides.current.column(name, sides.current_rows)
    if not cur_target.notna().any():
        return None, None
    target = sides.compare(name, kind, "target")
    if not any(c == PREDICTION_COLUMN for c, _ in plan.predictions):
        return target, None
    quality = measure_quality(
        sides.reference, sides.current, sides.reference_rows, sides.current_rows, cur_target, name,
        plan.probability, sides.spec,
    )  # fmt: skip
    return target, quality


def _result(
    features: tuple[ColumnDrift, ...],
    predictions: tuple[ColumnDrift, ...],
    target: ColumnDrift | None,
    quality: QualityResult | None,
    skew: SchemaSkew,
    spec: DriftSpec,
    common: dict[str, Any],
) -> DriftResult:
    """The drift share over the counted features, the verdict and its reasons. Features constant in the
    reference are left out of the count (they are still tested and reported)."""
    common = dict(common)
    importance = common.pop("importance", None)
    left_out = tuple(c.column for c in features if c.status != "empty_both" and c.constant_in_reference)
    counted = [c for c in features if c.status != "empty_both" and c.column not in left_out]
    drifted = tuple(c.column for c in counted if c.drifted)
    share = len(drifted) / len(counted) if counted else None
    weighted, weighting = weighted_share(counted, importance)
    dataset_drift = share is not None and share >= spec.drift_share
    reasons = _reasons(skew, share, spec.drift_share, drifted, predictions, quality)
    if left_out:
        reasons = (*reasons, f"left out: constant in the reference: {', '.join(left_out)}")
    if weighted is not None:
        reasons = (*reasons, f"weighted drift share {weighted:.3f} ({weighting})")
    inputs = [c.column for c in common["inputs"] if c.drifted]
    if inputs:
        reasons = (*reasons, f"input drift (columns the model does not read): {inputs}")
    verdict: Verdict = "schema_skew" if skew.any else ("drift" if dataset_drift else "ok")
    if features and not counted and not left_out and not skew.any:
        verdict, reasons = "insufficient_data", ("no feature column has a value on either side", *reasons)
    return DriftResult(
        verdict=verdict, dataset_drift=dataset_drift, drift_share=share, drifted_columns=drifted,
        features=features, predictions=predictions, target=target, quality=quality, reasons=reasons,
        weighted_drift_share=weighted, weighting=weighting, left_out=left_out, **common,
    )  # fmt: skip


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
