"""Delayed labels: join ground truth that became known later to the predictions made earlier.

Predictions (the scored output or serving log of a past partition) carry id columns, features and the
model's outputs. Ground truth arrives later in another table keyed by the same ids (for flights: the
actual arrival delay, known once the plane lands). Joining the two gives a *labelled batch*: the
predictions whose outcome is known, with the label column added. The drift check computes quality on
it, and the policy counts its rows as new labelled data.

The label is either a column of the ground-truth table as it is, or derived by one comparison
(``arr_delayed_15 = arr_delay >= 15``); a null source stays a null label (a cancelled flight has no
arrival delay, so no label). Rows without a known label are *pending*: not written, counted. A rerun
after more labels arrived replaces the labelled batch with a larger one.
"""

from __future__ import annotations

import contextlib
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.drift.tables import open_table
from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.storage import sha256_bytes

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.storage import StorageRoot

_OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class LabelSpec:
    """How to find and build the label.

    :param id_columns: columns that identify a prediction in both tables (together unique).
    :param target: name of the label column in the labelled batch (the model's target).
    :param source: ground-truth column the label comes from; defaults to ``target``.
    :param op: optional comparison (``>=``, ``>``, ``<=``, ``<``, ``==``, ``!=``) turning ``source``
        into a 0/1 label with ``value``.
    :param value: the right-hand side of ``op``.
    """

    id_columns: tuple[str, ...]
    target: str
    source: str
    op: str | None = None
    value: float | str | None = None

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> LabelSpec:
        ids = raw.get("id_columns")
        if isinstance(ids, str):
            ids = [c.strip() for c in ids.split(",") if c.strip()]
        if not isinstance(ids, Sequence) or not ids or not all(isinstance(c, str) and c for c in ids):
            raise SpecError(f"'id_columns' must be a non-empty list of column names. Got {ids!r} instead.")
        target = raw.get("target")
        if not isinstance(target, str) or not target:
            raise SpecError(f"'target' must name the label column. Got {target!r} instead.")
        op = raw.get("op") or None
        if op is not None and op not in _OPERATORS:
            raise SpecError(f"'op' must be one of {sorted(_OPERATORS)}. Got {op!r} instead.")
        value = raw.get("value")
        if op is not None and value is None:
            raise SpecError(f"The label rule {op!r} needs a 'value' to compare with.")
        if op is not None and isinstance(value, int | str) and not isinstance(value, bool):
            with contextlib.suppress(ValueError):  # else a text comparison, e.g. status == 'late'
                value = float(value)
        return cls(tuple(ids), target, str(raw.get("source") or target), op, value)

    @property
    def rule(self) -> str:
        return (
            f"{self.target} = {self.source} {self.op} {self.value!r}" if self.op else f"{self.target} = {self.source}"
        )


@dataclass(frozen=True)
class LabelJoinResult:
    """Counts of a join. ``rows_pending`` predictions have no known label yet (no ground-truth row, or a
    null label); ``labels_unmatched`` ground-truth rows belong to no prediction."""

    rows_predicted: int
    rows_labelled: int
    rows_pending: int
    labels_unmatched: int
    label_mean: float | None
    rule: str
    replaced_target: bool
    uri: str | None = None
    sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _check_unique(frame: pd.DataFrame, ids: Sequence[str], what: str) -> None:
    duplicated = frame.duplicated(list(ids), keep=False)
    if duplicated.any():
        example = frame.loc[duplicated, list(ids)].iloc[0].to_dict()
        raise DataError(
            f"The {what} has {int(duplicated.sum())} rows sharing an id ({list(ids)}), e.g. {example}: "
            "ids must identify one row each."
        )


def join_labels(
    predictions: pd.DataFrame, labels: pd.DataFrame, spec: LabelSpec
) -> tuple[pd.DataFrame, LabelJoinResult]:
    """The labelled batch (predictions with a known label, label column added) and the join's counts.

    :raises DataError: an id or source column is missing, ids repeat, or id types cannot be matched.
    """
    import pandas as pd

    ids = list(spec.id_columns)
    for frame, what, needed in ((predictions, "predictions", ids), (labels, "ground truth", [*ids, spec.source])):
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise DataError(f"The {what} lack the column(s) {missing}; they have {sorted(map(str, frame.columns))}.")
    _check_unique(predictions, ids, "predictions")
    truth = labels[[*ids, spec.source]].copy()
    for column in ids:  # ground truth often comes with other id types (int32 vs int64, ns vs us)
        if truth[column].dtype != predictions[column].dtype:
            try:
                truth[column] = truth[column].astype(predictions[column].dtype)
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"The id column {column!r} is {predictions[column].dtype} in the predictions but "
                    f"{labels[column].dtype} in the ground truth, and cannot be converted: {exc}"
                ) from exc
    if spec.op is not None:
        source = truth[spec.source]
        if isinstance(spec.value, float) and not pd.api.types.is_numeric_dtype(source):
            raise DataError(f"The label source {spec.source!r} is {source.dtype}; {spec.rule} needs numbers.")
        compare: Any = _OPERATORS[spec.op]
        try:
            label = compare(source, spec.value).astype("Int8")
        except TypeError as exc:
            raise DataError(f"The label rule {spec.rule} cannot compare {source.dtype} values: {exc}") from exc
        label[source.isna()] = pd.NA
    else:
        label = truth[spec.source]
    truth = truth[ids].assign(**{"__label__": label})
    truth = truth[truth["__label__"].notna()]
    _check_unique(truth, ids, "ground truth")
    replaced = spec.target in predictions.columns
    base = predictions.drop(columns=[spec.target]) if replaced else predictions
    joined = base.merge(truth, on=ids, how="inner", validate="one_to_one").rename(columns={"__label__": spec.target})
    matched_truth = len(joined)
    mean = None
    if len(joined) and pd.api.types.is_numeric_dtype(joined[spec.target]):
        mean = float(joined[spec.target].astype("float64").mean())
    result = LabelJoinResult(
        rows_predicted=len(predictions),
        rows_labelled=len(joined),
        rows_pending=len(predictions) - len(joined),
        labels_unmatched=len(truth) - matched_truth,
        label_mean=mean,
        rule=spec.rule,
        replaced_target=replaced,
    )
    return joined.reset_index(drop=True), result


def join_label_files(
    root: StorageRoot, predictions_uri: str, labels_uri: str, spec: LabelSpec, output_uri: str
) -> LabelJoinResult:
    """Join files (Parquet inside the root, or local) and write the labelled batch atomically to ``output_uri``.

    Only the id and source columns of the ground truth are read.
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    predictions_table = open_table(predictions_uri, root=root, role="predictions")
    predictions = predictions_table.frame(list(predictions_table.arrow_types()), None)
    truth_table = open_table(labels_uri, root=root, role="ground truth")
    wanted = [*spec.id_columns, spec.source]
    missing = [c for c in wanted if c not in truth_table.arrow_types()]
    if missing:
        raise DataError(
            f"The ground truth {labels_uri!r} lacks the column(s) {missing}; "
            f"it has {sorted(truth_table.arrow_types())}."
        )
    frame, result = join_labels(predictions, truth_table.frame(list(dict.fromkeys(wanted)), None), spec)
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buffer)
    data = buffer.getvalue()
    root.write_bytes(output_uri, data)
    return LabelJoinResult(**{**result.to_dict(), "uri": output_uri, "sha256": sha256_bytes(data)})
