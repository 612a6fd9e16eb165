"""What the served input held that the model reads without a word: counted per column for the receipt.

- Numeric features: missing values (null or NaN, which models read as missing), +inf, -inf, and finite
  values beyond float32's range (about 3.4e38), which the float32 feed turns into infinities. The
  counts come from the float32 arrays already built for ONNX Runtime: one vectorised ``isfinite`` per
  column and batch, and a closer look at the source values only where that finds something.
  ``invalid_values='refuse'`` fails the partition at the first batch holding an infinity or an overflow.
- Categorical features: values outside the vocabulary the model was trained with (the training
  spec's ``vocabulary``: the values kept at training, so a value too rare to be kept counts too; the
  model encodes them all as it encodes an unseen category), and the columns
  whose input type is not a string and were cast to one (an integer 5 is fed as ``"5"``, or as
  ``"5.0"`` when its column has nulls, as training feeds it).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.onnx_model import MISSING_CATEGORY
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.model import ServingModel

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

_NON_FINITE_KINDS = ("positive_infinity", "negative_infinity", "float32_overflow")


class _InputCounts:
    """Per-column counts of missing, infinite and overflowing numbers and of unseen categories."""

    def __init__(self, spec: ScoringSpec, model: ServingModel, input_schema: Any) -> None:
        import pyarrow as pa

        self.policy = spec.invalid_values
        self.numeric = [i for i in model.spec.inputs if i.type == "float"]
        self.categorical = [i for i in model.spec.inputs if i.type == "string"]
        self.missing: dict[str, int] = {}
        self.non_finite: dict[str, dict[str, int]] = {}
        self.unseen: dict[str, int] = {}
        vocabulary = model.spec.vocabulary
        self.vocabulary = (
            {c.column: pa.array(sorted(vocabulary.get(c.column, ())), pa.string()) for c in self.categorical}
            if vocabulary is not None
            else None
        )
        self.cast_to_string = {
            c.column: str(input_schema.field(c.column).type)
            for c in self.categorical
            if not _is_string_type(input_schema.field(c.column).type)
        }

    def update(self, batch: Any, feed: dict[str, np.ndarray], first_row: int) -> None:
        """Count one batch; :raises DataError: under ``refuse``, the batch holds infinities or overflows."""
        found: dict[str, dict[str, int]] = {}
        for item in self.numeric:
            values = feed[item.name]
            finite = _isfinite(values)
            if finite.all():
                continue
            missing = int(_isnan(values).sum())
            if missing:
                self.missing[item.column] = self.missing.get(item.column, 0) + missing
            if missing < values.size - int(finite.sum()):
                found[item.column] = _infinities(batch.column(item.column), values.reshape(-1))
        if found and self.policy == "refuse":
            raise DataError(
                f"Rows {first_row} to {first_row + batch.num_rows - 1} of the partition hold infinite values or "
                f"values beyond float32's range (about 3.4e38) in numeric feature column(s) {found}; expected "
                "finite numbers (null and NaN are read as missing). serving.invalid_values is 'refuse', so the "
                "partition was not scored and nothing was written; set it to 'count' to score them and count them."
            )
        for column, counts in found.items():
            total = self.non_finite.setdefault(column, dict.fromkeys(_NON_FINITE_KINDS, 0))
            for kind, count in counts.items():
                total[kind] += count
        if self.vocabulary is not None:
            for item in self.categorical:
                unseen = _unseen(batch.column(item.column), feed[item.name], self.vocabulary[item.column])
                if unseen:
                    self.unseen[item.column] = self.unseen.get(item.column, 0) + unseen

    def warnings(self) -> list[str]:
        """One sentence per finding the receipt counts (missing values are normal and not warned about)."""
        found = []
        if self.non_finite:
            found.append(
                f"Numeric feature column(s) held infinite values or values beyond float32's range, scored as "
                f"infinities (serving.invalid_values is 'count'): {self.non_finite}."
            )
        for column, kind in self.cast_to_string.items():
            found.append(
                f"Categorical feature column {column!r} is {kind} in the input, not a string: its values were cast "
                "to strings as pandas prints them (5 becomes '5', or '5.0' in a column with nulls) before being "
                "matched against the model's vocabulary."
            )
        if self.unseen:
            found.append(
                "Categorical feature column(s) held values outside the model's vocabulary (never seen in training, "
                f"or too rare there to be kept), encoded as an unseen category: {self.unseen} row(s) per column."
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {
            "invalid_values_policy": self.policy,
            "missing_values": dict(sorted(self.missing.items())),
            "non_finite_values": {c: dict(v) for c, v in sorted(self.non_finite.items())},
            "unseen_categories": dict(sorted(self.unseen.items())) if self.vocabulary is not None else None,
            "cast_to_string": dict(sorted(self.cast_to_string.items())),
        }


def _is_string_type(kind: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind))


def _isfinite(values: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray(np.isfinite(values))


def _isnan(values: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.asarray(np.isnan(values))


def _infinities(source: Any, fed: np.ndarray) -> dict[str, int]:
    """Split the infinities of a fed float32 column by what the input held: +inf, -inf, or a finite
    value too large for float32. Only the rows that are infinite are looked at again."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    rows = np.flatnonzero(np.isinf(fed))
    taken = source.take(pa.array(rows))
    original = pd.to_numeric(taken.to_pandas(), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    overflow = np.isfinite(original)
    return {
        "positive_infinity": int(((fed[rows] > 0) & ~overflow).sum()),
        "negative_infinity": int(((fed[rows] < 0) & ~overflow).sum()),
        "float32_overflow": int(overflow.sum()),
    }


def _unseen(source: Any, fed: np.ndarray, vocabulary: Any) -> int:
    """Rows whose category is neither missing nor in ``vocabulary``; dictionary columns are checked once
    per distinct value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_null(source.type):
        return 0
    if pa.types.is_dictionary(source.type):
        values = source.dictionary
        outside = pc.and_(pc.invert(pc.is_in(values, value_set=vocabulary)), pc.not_equal(values, MISSING_CATEGORY))
        return int(pc.sum(pc.take(outside, source.indices)).as_py() or 0)
    if not _is_string_type(source.type):  # cast to strings for the feed: count on what was fed
        source = pa.array(fed.reshape(-1), pa.string())
    outside = pc.and_(pc.invert(pc.is_in(source, value_set=vocabulary)), pc.not_equal(source, MISSING_CATEGORY))
    return int(pc.sum(outside).as_py() or 0)


def log_warnings(warnings: list[str], partition: str) -> None:
    for warning in warnings:
        log.warning("Partition %s: %s", partition, warning)
