"""Recent rows count more: the training window and recency weights, both read on the time split's column.

- ``window`` keeps the most recent rows before anything is split: the newest N rows (rows sharing the
  cut-off timestamp stay together, as in the time split) or the rows of the last N days of the column.
- ``recency_weight_half_life`` weights each row ``0.5 ** (age_days / half_life)``, its age counted from
  the newest time of the rows being fitted; the weights reach the estimator's ``sample_weight`` (times
  any class weights) and nothing else, so validation and test metrics stay unweighted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

NANOSECONDS_PER_DAY = 86_400 * 10**9


def time_keys(frame: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray, bool]:
    """The time column as float64 sort keys (nanoseconds for timestamps), a mask of missing values, and
    whether the column holds timestamps (True) or plain numbers (False).

    :raises DataError: the column cannot be read as timestamps.
    """
    import numpy as np
    import pandas as pd

    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        keys = pd.to_numeric(raw).to_numpy(dtype=np.float64, na_value=np.nan)
        return keys, np.isnan(keys), False
    try:
        times = pd.to_datetime(raw, utc=pd.api.types.is_object_dtype(raw))
    except (TypeError, ValueError) as exc:
        raise DataError(f"The time split column {column!r} cannot be read as timestamps: {exc}") from exc
    missing = times.isna().to_numpy()
    keys = times.to_numpy(dtype="datetime64[ns]").astype("int64").astype(np.float64)
    keys[missing] = np.nan
    return keys, missing, True


def _timestamp_keys(frame: pd.DataFrame, spec: TrainingSpec, field: str) -> np.ndarray:
    """Nanosecond keys of the time column, refusing plain numbers and missing values for ``field``."""
    column = str(spec.split.column)
    keys, missing, timestamps = time_keys(frame, column)
    if not timestamps:
        raise DataError(
            f"The '{field}' field counts days, but the time split column {column!r} holds numbers, not timestamps. "
            "Give the window as a number of rows, or use a timestamp column."
        )
    if missing.any():
        raise DataError(
            f"The time split column {column!r} is missing on {int(missing.sum())} row(s); '{field}' needs it."
        )
    return keys


def window_mask(frame: pd.DataFrame, spec: TrainingSpec) -> np.ndarray | None:
    """Which rows of ``frame`` the spec's ``window`` keeps (None when there is no window)."""
    import numpy as np

    if spec.window is None:
        return None
    if spec.window_days is not None:
        keys = _timestamp_keys(frame, spec, "window")
        return np.asarray(keys >= keys.max() - spec.window_days * NANOSECONDS_PER_DAY)
    rows = int(spec.window_rows or 0)
    keys, missing, _ = time_keys(frame, str(spec.split.column))
    if missing.any():
        raise DataError(
            f"The time split column {spec.split.column!r} is missing on {int(missing.sum())} row(s); 'window' needs it."
        )
    if rows >= len(keys):
        return np.ones(len(keys), dtype=bool)
    cut = np.sort(keys)[len(keys) - rows]  # the time of the N-th newest row; rows at that time stay together
    return np.asarray(keys >= cut)


def recency_weights(frame: pd.DataFrame, spec: TrainingSpec) -> np.ndarray | None:
    """``0.5 ** (age_days / half_life)`` per row of ``frame``, age from its newest time (None when unset)."""
    import numpy as np

    if spec.recency_weight_half_life is None:
        return None
    keys = _timestamp_keys(frame, spec, "recency_weight_half_life")
    age_days = (keys.max() - keys) / NANOSECONDS_PER_DAY
    return np.asarray(0.5 ** (age_days / spec.recency_weight_half_life), dtype=np.float64)


def combined_weights(*weights: np.ndarray | None) -> np.ndarray | None:
    """The product of the given per-row weights (None when none is given)."""
    import numpy as np

    given = [np.asarray(w, dtype=np.float64) for w in weights if w is not None]
    if not given:
        return None
    product = given[0]
    for more in given[1:]:
        product = product * more
    return product
