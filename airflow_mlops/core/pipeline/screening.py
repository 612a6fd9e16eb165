"""Screening a new table's columns for a pipeline file: what each column is, and which must not be a feature.

:func:`screen` reads a seeded sample of the table and sorts every column into a role: the target, the time
column of a time split, a numeric or categorical feature, or left out with a reason (constant, an
identifier, a timestamp that is not the time column, or a column that gives the target away). The leakage
screen is deliberately looser than training's refusal (:func:`airflow_mlops.core.training.data.check_leakage`,
exact leakage only): a column *nearly* equal to the target, with a near-perfect single-feature ROC AUC, a
near-perfect correlation, or values that each map to one class is flagged, because a scaffold that proposes
it as a feature would teach a new user the wrong thing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.metrics import TASKS

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

SAMPLE_ROWS = 20_000  # rows the checks read: enough for stable shares, seconds on any table
MAX_CLASSES_INFERRED = 20  # an integer target with more distinct values is a quantity: regression
NEAR_EQUAL = 0.99  # share of rows on which a column equals the target
NEAR_PERFECT_AUC = 0.99  # single-feature ROC AUC (or 1 - AUC) of a numeric column, binary targets
NEAR_PERFECT_CORRELATION = 0.95  # |Pearson r| with a regression target, or eta^2 of a category
NEAR_PURE = 0.99  # share of rows whose class is the majority class of their value (or value bin)
IDENTIFIER_SHARE = 0.9  # distinct values per non-null row of a text column that make it an identifier
LINEAR_R2 = 0.999  # a regression target this well explained by numeric columns together is their sum


@dataclass(frozen=True)
class Screening:
    """A table's columns by role, and why each left-out column is left out."""

    target: str
    task: str
    time_column: str | None
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    excluded: dict[str, str] = field(default_factory=dict)  # column -> reason, in table order
    leaking: tuple[str, ...] = ()  # the excluded columns that give the target away
    rows: int = 0  # rows of the table
    sample_rows: int = 0  # rows the checks read
    classes: tuple[Any, ...] = ()


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file (or a folder of Parquet files) as a DataFrame.

    :raises SourceNotFoundError: nothing at ``path``.
    :raises SpecError: a suffix other than ``.csv`` or ``.parquet``.
    """
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise SourceNotFoundError(f"The table {str(path)!r} does not exist.")
    if path.is_dir() or path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    if path.suffix.lower() in (".csv", ".gz"):
        import pyarrow.csv as pacsv

        # pyarrow reads ISO timestamps as timestamps, and is several times faster than pandas' reader.
        return pacsv.read_csv(path).to_pandas()
    raise SpecError(f"The table {str(path)!r} must be a .csv or .parquet file. Got suffix {path.suffix!r}.")


def infer_task(values: pd.Series) -> str:
    """``binary`` for two values, ``multiclass`` for text or a few integers, ``regression`` for a quantity."""
    import numpy as np
    import pandas as pd

    present = values.dropna()
    distinct = int(present.nunique())
    if distinct < 2:
        raise DataError(f"The target {values.name!r} has {distinct} distinct value(s): there is nothing to learn.")
    if distinct == 2:
        return "binary"
    if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return "multiclass"
    floats = present.to_numpy(dtype=np.float64)
    integral = bool(np.all(floats == np.round(floats)))
    return "multiclass" if integral and distinct <= MAX_CLASSES_INFERRED else "regression"


def _is_datetime(values: pd.Series) -> bool:
    """A timestamp column, or text / dates that read as timestamps on (nearly) every row."""
    import datetime as dt

    import pandas as pd

    if pd.api.types.is_datetime64_any_dtype(values):
        return True
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    present = values.dropna().head(2000)
    if present.empty:
        return False
    if all(isinstance(v, dt.date) for v in present):
        return True
    if not all(isinstance(v, str) for v in present):
        return False
    parsed = pd.to_datetime(present, errors="coerce", format="ISO8601")
    return bool(parsed.notna().mean() >= NEAR_EQUAL)


def _kind(values: pd.Series) -> str:
    import pandas as pd

    if _is_datetime(values):
        return "datetime"
    if pd.api.types.is_bool_dtype(values):
        return "categorical"
    if pd.api.types.is_numeric_dtype(values):
        return "numeric"
    present = values.dropna().head(2000)
    if isinstance(values.dtype, pd.CategoricalDtype) or all(isinstance(v, str) for v in present):
        return "categorical"
    return "other"


def _left_out_by_shape(values: pd.Series, kind: str) -> str | None:
    """Why a column is not a feature whatever the target: empty, constant, an identifier, not a value."""
    import numpy as np
    import pandas as pd

    present = values.dropna()
    if present.empty:
        return "empty: no value in the sample"
    distinct = int(present.nunique())
    if distinct == 1:
        value = present.iloc[0]
        return f"constant: {value.item() if hasattr(value, 'item') else value!r} on every row with a value"
    if kind == "other":
        return f"neither a number nor text (dtype {values.dtype}): not a model input"
    if kind == "datetime":
        return "a timestamp other than the time column: derive features from it (hour, weekday) as columns"
    if kind == "categorical" and distinct > 50 and distinct >= IDENTIFIER_SHARE * len(present):
        return f"an identifier: {distinct} distinct values in {len(present)} rows (high cardinality)"
    if kind == "numeric" and distinct == len(present) and len(present) > 50:
        floats = present.to_numpy(dtype=np.float64)
        if pd.api.types.is_integer_dtype(present) or bool(np.all(floats == np.round(floats))):
            return "an identifier: a distinct integer on every row (a row number or key)"
    return None


def screen(
    frame: pd.DataFrame,
    target: str,
    *,
    task: str | None = None,
    time_column: str | None = None,
    sample_rows: int = SAMPLE_ROWS,
    seed: int = 42,
) -> Screening:
    """Sort the columns of ``frame`` into roles (see the module docstring); the checks read a seeded sample.

    :raises SpecError: the target or time column is not a column, or the task is unknown.
    :raises DataError: the target has fewer than two values.
    """
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise SpecError(f"The target {target!r} is not a column of the table. Its columns: {columns}.")
    if time_column is not None and time_column not in columns:
        raise SpecError(f"The time column {time_column!r} is not a column of the table. Its columns: {columns}.")
    if task is not None and task not in TASKS:
        raise SpecError(f"The task must be one of {list(TASKS)}. Got {task!r} instead.")
    labelled = frame.loc[frame[target].notna()]
    sample = labelled.sample(n=sample_rows, random_state=seed) if len(labelled) > sample_rows else labelled
    task = task or infer_task(sample[target])
    kinds = {c: _kind(sample[c]) for c in columns if c != target}
    if time_column is None:
        time_column = next((c for c, k in kinds.items() if k == "datetime"), None)
    elif kinds[time_column] not in ("datetime", "numeric"):
        raise SpecError(f"The time column {time_column!r} holds neither timestamps nor numbers.")
    excluded: dict[str, str] = {}
    for column, kind in kinds.items():
        reason = None if column == time_column else _left_out_by_shape(sample[column], kind)
        if reason:
            excluded[column] = reason
    candidates = [c for c in kinds if c != time_column and c not in excluded]
    leaks = leakage(sample, target, task, {c: kinds[c] for c in candidates})
    excluded.update(leaks)
    keep = [c for c in candidates if c not in leaks]
    return Screening(
        target=target,
        task=task,
        time_column=time_column,
        numeric=tuple(c for c in keep if kinds[c] == "numeric"),
        categorical=tuple(c for c in keep if kinds[c] == "categorical"),
        excluded={c: excluded[c] for c in columns if c in excluded},
        leaking=tuple(c for c in columns if c in leaks),
        rows=len(frame),
        sample_rows=len(sample),
        classes=tuple(sorted(sample[target].dropna().unique().tolist(), key=str)) if task != "regression" else (),
    )


def leakage(sample: pd.DataFrame, target: str, task: str, kinds: dict[str, str]) -> dict[str, str]:
    """``{column: why}`` for the columns of ``kinds`` that (nearly) give the target away on ``sample``."""
    import numpy as np

    y = sample[target]
    found: dict[str, str] = {}
    numeric = [c for c, k in kinds.items() if k == "numeric"]
    if task == "regression" and len(numeric) >= 2:
        found.update(_linear_combination(sample, y, numeric))
    for column in kinds:
        if column in found:
            continue
        x = sample[column]
        both = x.notna().to_numpy()
        if both.sum() < 20:
            continue
        equal = float(np.mean(x[both].astype(str).to_numpy() == y[both].astype(str).to_numpy()))
        if equal >= NEAR_EQUAL:
            found[column] = f"leaking: equal to the target on {equal:.1%} of rows"
            continue
        reason = _single_feature(x[both], y[both], task, kinds[column] == "numeric")
        if reason:
            found[column] = "leaking: " + reason
    return found


def _single_feature(x: pd.Series, y: pd.Series, task: str, numeric: bool) -> str | None:
    """Why one column alone nearly predicts the target, or None."""
    import numpy as np

    if numeric and task == "binary":
        auc = _auc(x.to_numpy(dtype=np.float64), (y == sorted(y.unique().tolist(), key=str)[-1]).to_numpy())
        if auc is not None and max(auc, 1 - auc) >= NEAR_PERFECT_AUC:
            return f"single-feature ROC AUC {auc:.3f}"
    if numeric and task == "regression":
        r = _correlation(x.to_numpy(dtype=np.float64), y.to_numpy(dtype=np.float64))
        if abs(r) >= NEAR_PERFECT_CORRELATION:
            return f"correlation {r:.3f} with the target"
    groups = _groups(x, numeric)
    distinct = int(groups.nunique())
    if distinct < 2 or distinct > min(1000, len(x) // 20):
        return None
    if task == "regression":
        eta2 = _eta_squared(groups, y.to_numpy(dtype=np.float64))
        if eta2 >= NEAR_PERFECT_CORRELATION:
            return f"its {distinct} values explain {eta2:.1%} of the target's variance"
        return None
    purity = float(y.groupby(groups.to_numpy()).agg(lambda s: s.value_counts().iloc[0]).sum() / len(y))
    baseline = float(y.value_counts().iloc[0] / len(y))
    if purity >= NEAR_PURE and purity > baseline + 0.005:
        binned = " (in quantile bins)" if numeric and groups is not x else ""
        return f"each of its {distinct} values{binned} maps to one class on {purity:.1%} of rows"
    return None


def _groups(x: pd.Series, numeric: bool) -> pd.Series:
    """The column's values, or for a numeric column with many values its 50 quantile bins."""
    import pandas as pd

    if not numeric or x.nunique() <= 1000:
        return x
    return pd.qcut(x, 50, labels=False, duplicates="drop")


def _auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC by ranks (ties averaged), without scikit-learn."""
    from scipy.stats import rankdata

    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos < 10 or n_neg < 10:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _correlation(x: np.ndarray, y: np.ndarray) -> float:
    import numpy as np

    if np.std(x) == 0 or np.std(y) == 0:
        return 0.0
    r = float(np.corrcoef(x, y)[0, 1])
    return 0.0 if math.isnan(r) else r


def _eta_squared(groups: pd.Series, y: np.ndarray) -> float:
    """Share of the target's variance explained by the group means."""
    import numpy as np
    import pandas as pd

    total = float(((y - y.mean()) ** 2).sum())
    if total == 0:
        return 0.0
    means = pd.Series(y, index=groups.index).groupby(groups.to_numpy()).transform("mean").to_numpy()
    return float(1 - ((y - means) ** 2).sum() / total) if np.isfinite(means).all() else 0.0


def _linear_combination(sample: pd.DataFrame, y: pd.Series, numeric: list[str]) -> dict[str, str]:
    """Numeric columns that together add up to the target (``cnt = casual + registered``)."""
    import numpy as np

    matrix = sample[numeric].to_numpy(dtype=np.float64)
    b = y.to_numpy(dtype=np.float64)
    rows = ~np.isnan(matrix).any(axis=1) & np.isfinite(b)
    if rows.sum() < 2 * (len(numeric) + 1) + 20:
        return {}
    a, b = matrix[rows], b[rows]
    scale = a.std(axis=0)
    usable = scale > 0
    if not usable.any() or b.std() == 0:
        return {}
    design = np.column_stack([(a[:, usable] - a[:, usable].mean(axis=0)) / scale[usable], np.ones(len(b))])
    coef, *_ = np.linalg.lstsq(design, b, rcond=None)
    residual = b - design @ coef
    r2 = 1.0 - float(residual @ residual) / float(((b - b.mean()) ** 2).sum())
    if r2 < LINEAR_R2:
        return {}
    weights = np.abs(coef[:-1]) / b.std()
    involved = [str(n) for n, w in zip(np.array(numeric)[usable], weights, strict=True) if w > 0.05]
    why = f"leaking: {' and '.join(involved)} together add up to the target (R^2 {r2:.4f})"
    return dict.fromkeys(involved, why)
