"""Training data: the target and features as the model sees them, leakage checks, and the split.

Features are read through :func:`airflow_mlops.core.onnx_model.feed`, the same function scoring and the
gate use to feed the exported graph, so the native model is fitted on exactly the values ONNX Runtime
will see at serving time: numeric columns as float32 with NaN for missing, categorical columns as
strings with :data:`~airflow_mlops.core.onnx_model.MISSING_CATEGORY` for missing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.onnx_model import MISSING_CATEGORY, OnnxInput, feed
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MAX_CLASSES = 200
LEAKAGE_SAMPLE_ROWS = 100_000
MIN_SPLIT_ROWS = 2


def onnx_inputs(spec: TrainingSpec) -> list[OnnxInput]:
    """The graph inputs of the model a spec trains: one per feature, named like the column."""
    return [OnnxInput(c, c, "float") for c in spec.numeric_features] + [
        OnnxInput(c, c, "string") for c in spec.categorical_features
    ]


def feature_frame(frame: pd.DataFrame, spec: TrainingSpec) -> pd.DataFrame:
    """The spec's feature columns of ``frame`` exactly as the ONNX graph is fed them."""
    import pandas as pd

    arrays = feed(frame, onnx_inputs(spec))
    return pd.DataFrame({name: values[:, 0] for name, values in arrays.items()}, index=frame.index)


@dataclass(frozen=True)
class PreparedData:
    """Rows with a target, their features as fed to the model, and the normalised target.

    :param frame: the input rows that have a target (all columns, original dtypes, index 0..n-1).
    :param x: feature columns as the model sees them (float32 / str).
    :param y: the target: int64 or str classes for classifiers, float64 for regression.
    :param classes: sorted class labels (classifiers), empty for regression.
    """

    frame: pd.DataFrame
    x: pd.DataFrame
    y: np.ndarray
    classes: tuple[Any, ...]
    rows_in: int
    rows_dropped_missing_target: int
    warnings: tuple[str, ...] = ()
    rows_outside_window: int = 0


@dataclass(frozen=True)
class Splits:
    """Row positions (into :attr:`PreparedData.frame`) of each split."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray
    warnings: tuple[str, ...] = field(default=())

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "validation": len(self.validation), "test": len(self.test)}


def check_columns(frame: pd.DataFrame, spec: TrainingSpec, *, raw: bool = False) -> None:
    """Raise ``DataError`` naming the target, feature or split column of ``spec`` that ``frame`` lacks.

    :param raw: ``frame`` is the input before the spec's transforms: it needs the columns they read
        instead of those they produce.
    """
    present = set(map(str, frame.columns))
    if spec.target not in present:
        raise DataError(f"The target column {spec.target!r} is not in the data. Columns present: {sorted(present)}.")
    missing = [c for c in (spec.input_columns if raw else spec.features) if c not in present]
    if missing:
        raise DataError(
            f"The data is missing feature column(s) {missing} named in the training spec. "
            f"Columns present: {sorted(present)}."
        )
    if spec.split.method == "time" and spec.split.column not in present:
        raise DataError(
            f"The time split column {spec.split.column!r} is not in the data. Columns present: {sorted(present)}."
        )


def _normalise_target(values: pd.Series, spec: TrainingSpec) -> tuple[np.ndarray, tuple[Any, ...]]:
    import numpy as np
    import pandas as pd

    name = spec.target
    if spec.task == "regression":
        try:
            numbers = pd.to_numeric(values, errors="raise").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"The target {name!r} must be numeric for a regression; it holds values such as "
                f"{values.iloc[0]!r} (dtype {values.dtype})."
            ) from exc
        if not np.isfinite(numbers).all():
            raise DataError(f"The target {name!r} holds infinite values; a regression target must be finite.")
        return numbers, ()
    if pd.api.types.is_bool_dtype(values):
        y = values.astype("int64").to_numpy()
    elif pd.api.types.is_numeric_dtype(values):
        floats = values.astype("float64").to_numpy()
        fractional = floats[floats != np.round(floats)]
        if len(fractional):
            raise DataError(
                f"The target {name!r} holds non-integer values such as {fractional[0]!r}; a {spec.task} task "
                "needs class labels. Use task 'regression' for a continuous target."
            )
        y = floats.astype("int64")
    else:
        y = values.astype(str).to_numpy(dtype=object)
    classes = tuple(sorted(np.unique(y).tolist()))
    if len(classes) < 2:
        raise DataError(
            f"The target {name!r} has a single class ({classes[0]!r}) in the {len(y)} rows with a label; "
            f"a {spec.task} task needs at least two classes."
        )
    if spec.task == "binary" and len(classes) > 2:
        shown = list(classes[:10])
        raise DataError(
            f"The target {name!r} has {len(classes)} classes ({shown}{' ...' if len(classes) > 10 else ''}); "
            "task 'binary' needs exactly two. Use task 'multiclass'."
        )
    if len(classes) > MAX_CLASSES:
        raise DataError(
            f"The target {name!r} has {len(classes)} classes, more than the {MAX_CLASSES} a classifier here "
            "supports: it looks like an identifier or a continuous value. Use task 'regression' or group classes."
        )
    return y, classes


def prepare(frame: pd.DataFrame, spec: TrainingSpec) -> PreparedData:
    """Check columns, drop rows without a target, normalise the target, read the features.

    :raises DataError: a named column is missing, the target is unusable (single class, not numeric
        for a regression, ...), or a feature has no value at all.
    """
    import numpy as np

    check_columns(frame, spec)
    rows_in = len(frame)
    has_target = frame[spec.target].notna().to_numpy()
    kept = frame.loc[has_target].reset_index(drop=True) if not has_target.all() else frame.reset_index(drop=True)
    dropped = int(rows_in - len(kept))
    if len(kept) == 0:
        raise DataError(f"The target {spec.target!r} is missing on all {rows_in} rows: there is nothing to learn from.")
    kept, outside = _apply_window(kept, spec)
    y, classes = _normalise_target(kept[spec.target], spec)
    x = feature_frame(kept, spec)
    warnings: list[str] = []
    for name in spec.numeric_features:
        column = x[name].to_numpy()
        if np.isnan(column).all():
            raise DataError(
                f"Numeric feature {name!r} has no value in the {len(kept)} rows with a target (all missing). "
                "Drop it from the spec or fix the data."
            )
        infinite = int(np.isinf(column).sum())
        if infinite:  # an infinity is not a missing value: a data error to fix upstream, not to learn from
            raise DataError(
                f"Numeric feature {name!r} has {infinite} infinite values in the {len(kept)} rows with a target "
                "(+inf, -inf, or beyond float32's range of 3.4e38 once fed to the model); expected finite numbers "
                "or missing values. Fix the data or clip the column upstream."
            )
        if np.nanmin(column) == np.nanmax(column):
            warnings.append(f"numeric feature {name!r} is constant ({np.nanmin(column)!r}): it cannot help the model")
    for name in spec.categorical_features:
        column = x[name]
        if (column == MISSING_CATEGORY).all():
            raise DataError(
                f"Categorical feature {name!r} has no value in the {len(kept)} rows with a target (all missing). "
                "Drop it from the spec or fix the data."
            )
    if dropped:
        warnings.append(f"dropped {dropped} of {rows_in} rows whose target {spec.target!r} is missing")
    if spec.leakage_check:
        check_leakage(x, y, spec)
    return PreparedData(kept, x, y, classes, rows_in, dropped, tuple(warnings), outside)


def _apply_window(frame: pd.DataFrame, spec: TrainingSpec) -> tuple[pd.DataFrame, int]:
    """The rows inside the spec's ``window`` (all rows when it has none), and how many fell outside."""
    from airflow_mlops.core.training.recency import window_mask

    mask = window_mask(frame, spec)
    if mask is None or mask.all():
        return frame, 0
    return frame.loc[mask].reset_index(drop=True), int((~mask).sum())


# -- leakage ------------------------------------------------------------------------------------
def check_leakage(x: pd.DataFrame, y: np.ndarray, spec: TrainingSpec) -> None:
    """Refuse features that give the target away.

    Checked on a seeded sample of at most :data:`LEAKAGE_SAMPLE_ROWS` rows:

    - a feature equal to the target on every row where it has a value;
    - a low-cardinality feature whose every value maps to a single target value;
    - binary tasks: a numeric feature that separates the classes perfectly (AUC 0 or 1);
    - regression: a target that is an exact linear combination of numeric features
      (``cnt = casual + registered``).

    :raises DataError: naming the feature(s) and the evidence.
    """
    import numpy as np
    import pandas as pd

    n = len(y)
    if n > LEAKAGE_SAMPLE_ROWS:
        rows = np.sort(np.random.default_rng(spec.seed).choice(n, LEAKAGE_SAMPLE_ROWS, replace=False))
        x, y = x.iloc[rows], y[rows]
        n = LEAKAGE_SAMPLE_ROWS
    target = pd.Series(y, index=x.index)
    hint = "Remove it from the features (or set leakage_check: false if this is really intended)."
    for name in spec.features:
        categorical = name in spec.categorical_features
        column = x[name]
        present = column.notna() & (column != MISSING_CATEGORY) if categorical else column.notna()
        if present.sum() < max(20, n // 2):
            continue
        values, labels = column[present], target[present]
        if _equal(values, labels, categorical=categorical):
            raise DataError(
                f"Feature {name!r} is equal to the target {spec.target!r} on every row: that is leakage. {hint}"
            )
        if spec.task == "binary" and not categorical:
            _check_perfect_separation(name, values, labels, spec, hint)
        distinct = int(values.nunique())
        if 2 <= distinct <= min(1000, n // 20) and labels.groupby(values.to_numpy()).nunique().max() == 1:
            raise DataError(
                f"The target {spec.target!r} is a function of feature {name!r}: each of its {distinct} values "
                f"maps to a single target value on {int(present.sum())} rows. That is leakage. {hint}"
            )
    if spec.task == "regression" and spec.numeric_features:
        _check_linear_combination(x, y, spec, hint)


def _equal(values: pd.Series, labels: pd.Series, *, categorical: bool) -> bool:
    import numpy as np

    if categorical:
        return bool((values.astype(str).to_numpy() == labels.astype(str).to_numpy()).all())
    try:
        return bool(
            np.allclose(values.to_numpy(dtype=np.float64), labels.to_numpy(dtype=np.float64), rtol=1e-6, atol=0)
        )
    except (TypeError, ValueError):  # string classes against a numeric feature
        return False


def _check_perfect_separation(name: str, values: pd.Series, labels: pd.Series, spec: TrainingSpec, hint: str) -> None:
    import numpy as np
    from sklearn.metrics import roc_auc_score

    positive = labels.to_numpy() == max(np.unique(labels.to_numpy()).tolist())
    if positive.sum() < 20 or (~positive).sum() < 20:
        return
    auc = float(roc_auc_score(positive, values.to_numpy(dtype=np.float64)))
    if auc in (0.0, 1.0):
        raise DataError(
            f"Feature {name!r} separates the classes of {spec.target!r} perfectly (AUC {auc:.1f} on "
            f"{len(values)} rows): it is computed from the target or known only after it. That is leakage. {hint}"
        )


def _check_linear_combination(x: pd.DataFrame, y: np.ndarray, spec: TrainingSpec, hint: str) -> None:
    import numpy as np

    names = list(spec.numeric_features)
    matrix = x[names].to_numpy(dtype=np.float64)
    rows = ~np.isnan(matrix).any(axis=1)
    if rows.sum() < 2 * (len(names) + 1) + 20:
        return
    a, b = matrix[rows], np.asarray(y, dtype=np.float64)[rows]
    scale = a.std(axis=0)
    usable = scale > 0
    if not usable.any() or b.std() == 0:
        return
    design = np.column_stack([(a[:, usable] - a[:, usable].mean(axis=0)) / scale[usable], np.ones(len(b))])
    coef, *_ = np.linalg.lstsq(design, b, rcond=None)
    residual = b - design @ coef
    r2 = 1.0 - float(residual @ residual) / float(((b - b.mean()) ** 2).sum())
    if r2 < 1.0 - 1e-9:
        return
    weights = np.abs(coef[:-1]) / b.std()
    involved = [str(n) for n, w in zip(np.array(names)[usable], weights, strict=True) if w > 1e-3]
    raise DataError(
        f"The target {spec.target!r} is an exact linear combination of feature(s) {involved} "
        f"(R^2 = {r2:.9f} on {len(b)} rows): they are computed from the target or together add up to it. "
        f"That is leakage. Remove them from the features (or set leakage_check: false if this is really intended)."
    )


# -- split --------------------------------------------------------------------------------------
def split_rows(data: PreparedData, spec: TrainingSpec) -> Splits:
    """Positions of the train, validation and test rows of ``data`` (deterministic for a seed).

    ``random``: a seeded shuffle, stratified by class for classifiers when every class has enough
    rows. ``time``: ordered by the split column; cut points are timestamps, so rows sharing a
    timestamp land in the same split and no test row is older than a training row.

    :raises DataError: a split would be empty or too small, or the time column has missing values.
    """
    splits = _time_split(data, spec) if spec.split.method == "time" else _random_split(data, spec)
    for name, size in splits.sizes().items():
        if size < MIN_SPLIT_ROWS:
            raise DataError(
                f"The {name} split has {size} row(s) of the {len(data.y)} with a target; each split needs at "
                f"least {MIN_SPLIT_ROWS}. Use more data or change the split fractions."
            )
    if spec.is_classifier:
        import numpy as np

        missing = sorted(set(data.classes) - set(np.unique(data.y[splits.train]).tolist()), key=str)
        if missing:
            raise DataError(
                f"Class(es) {missing} of target {spec.target!r} appear in no row of the train split, so the model "
                "cannot learn them. Use more data, a random split, or fewer classes."
            )
    return splits


def _random_split(data: PreparedData, spec: TrainingSpec) -> Splits:
    import numpy as np
    from sklearn.model_selection import train_test_split

    n = len(data.y)
    positions = np.arange(n)
    fractions = spec.split
    rest = fractions.validation + fractions.test
    stratify = spec.is_classifier and fractions.stratify
    warnings: list[str] = []
    try:
        train, other = train_test_split(
            positions, test_size=rest, random_state=spec.seed, stratify=data.y if stratify else None
        )
        validation, test = train_test_split(
            other,
            test_size=fractions.test / rest,
            random_state=spec.seed,
            stratify=data.y[other] if stratify else None,
        )
    except ValueError as exc:
        if not stratify:
            raise DataError(f"The rows cannot be split as asked ({n} rows): {exc}") from exc
        warnings.append(f"split not stratified: {exc}")
        train, other = train_test_split(positions, test_size=rest, random_state=spec.seed)
        validation, test = train_test_split(other, test_size=fractions.test / rest, random_state=spec.seed)
    return Splits(np.sort(train), np.sort(validation), np.sort(test), tuple(warnings))


def _time_split(data: PreparedData, spec: TrainingSpec) -> Splits:
    import numpy as np

    from airflow_mlops.core.training.recency import time_keys

    column = str(spec.split.column)
    keys, missing, _ = time_keys(data.frame, column)
    if missing.any():
        raise DataError(
            f"The time split column {column!r} is missing on {int(missing.sum())} row(s) with a target; every row "
            "needs a time to be placed in a split."
        )
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    n = len(order)
    first_validation = ordered[min(n - 1, math.ceil(n * spec.split.train))]
    first_test = ordered[min(n - 1, math.ceil(n * (spec.split.train + spec.split.validation)))]
    train = order[ordered < first_validation]
    validation = order[(ordered >= first_validation) & (ordered < first_test)]
    test = order[ordered >= first_test]
    return Splits(train, validation, test)
