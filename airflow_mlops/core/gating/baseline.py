"""The baselines the candidate must beat (ML Test Score M5): a simpler model (by default an
L2-regularised logistic or ridge regression on the candidate's own features) and a constant one (class
prior or mean), fitted on the candidate's training sample, or cross-fitted on the evaluation rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.gating import metrics as gm
from airflow_mlops.core.gating.data import EvaluationData, prepare_data

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.gating.models import ModelUnderTest
    from airflow_mlops.core.gating.policy import GatePolicy
    from airflow_mlops.core.onnx_model import OnnxInput


def evaluate_baseline(
    policy: GatePolicy, task: gm.Task, primary: str, candidate: ModelUnderTest, data: EvaluationData,
    inputs: Sequence[OnnxInput], n_classes: int,
) -> dict[str, Any]:  # fmt: skip
    """Fit the policy's simpler model (and the constant second baseline) and score them on the
    evaluation rows.

    :return: what the decision records: the simpler model's kind, folds, metrics, the metrics compared
        with the candidate's, the margin and the minimum gain on the primary metric (``min_gain``, in
        metric units, and as set), what it was fitted on and how many rows; ``constant``: the constant
        baseline's kind, metrics and margin, or None.
    """
    kind, constant_kind = policy.baseline.kinds(task)
    compared = policy.baseline.metrics or (
        (primary,) if task == "regression" else tuple(dict.fromkeys((primary, "log_loss")))
    )
    train, fit_on = None, "evaluation"
    if policy.baseline.fit_on == "train_sample" and candidate.training_sample is not None:
        train = prepare_data(candidate.training_sample, candidate.spec, max_rows=policy.max_rows, seed=policy.seed)
        fit_on = "train_sample"
    folds, seed = policy.baseline.folds, policy.baseline.seed
    prediction = baseline_predictions(
        kind, task, data, inputs, n_classes, folds=folds, seed=seed, train=train,
        regularization=policy.baseline.regularization,
    )  # fmt: skip
    metrics = gm.compute_all(gm.metrics_for(task), data.y, prediction)
    min_gain = policy.baseline.min_gain.of(metrics[primary]) if kind == "linear" else 0.0
    constant = None
    if constant_kind is not None:
        constant_prediction = baseline_predictions(
            constant_kind, task, data, inputs, n_classes, folds=folds, seed=seed, train=train
        )
        constant = {
            "kind": constant_kind,
            "metrics": gm.compute_all(gm.metrics_for(task), data.y, constant_prediction),
            "margin": policy.baseline.margin,
        }
    return {
        "kind": kind,
        "folds": policy.baseline.folds,
        "metrics": metrics,
        "compared": list(compared),
        "primary": primary,
        "margin": policy.baseline.margin,
        "min_gain": min_gain,
        "min_gain_setting": str(policy.baseline.min_gain) if kind == "linear" else "0",
        "regularization": policy.baseline.regularization if kind == "linear" else None,
        "fit_on": fit_on,
        "fit_rows": len(train.y) if train is not None else len(data.y),
        "constant": constant,
    }


def _fit_predict(
    kind: str, task: gm.Task, train_frame: pd.DataFrame, train_y: np.ndarray, test_frame: pd.DataFrame,
    inputs: Sequence[OnnxInput], n_classes: int, regularization: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """Fit the baseline on one set of rows and predict another."""
    import numpy as np

    n = len(test_frame)
    if kind in ("prior", "mean"):
        if task == "regression":
            return np.full(n, float(train_y.mean()))
        prior = np.bincount(train_y, minlength=n_classes) / len(train_y)
        return np.tile(prior, (n, 1))
    model = _linear_baseline(task, inputs, regularization)
    x_train, x_test = _baseline_features(train_frame, inputs), _baseline_features(test_frame, inputs)
    if task == "regression":
        model.fit(x_train, train_y)
        return np.asarray(model.predict(x_test), dtype=np.float64)
    out = np.zeros((n, n_classes), dtype=np.float64)
    present = np.unique(train_y)
    if len(present) == 1:
        out[:, present[0]] = 1.0
        return out
    model.fit(x_train, train_y)
    out[:, model.classes_] = model.predict_proba(x_test)
    return out


def baseline_predictions(
    kind: str, task: gm.Task, data: EvaluationData, inputs: Sequence[OnnxInput], n_classes: int, *,
    folds: int, seed: int, train: EvaluationData | None = None, regularization: float = 1.0,
) -> np.ndarray:  # fmt: skip
    """Predictions of a simple model for the evaluation rows.

    With ``train`` (the candidate's training sample) the baseline learns from the same rows the
    candidate learned from. Without it, it is cross-fitted on the evaluation rows: every row is
    predicted by a fit that did not see it, but the fit knows the evaluation period, which makes the
    check stricter than the candidate's own situation.
    """
    import numpy as np
    from sklearn.model_selection import KFold, StratifiedKFold

    if train is not None:
        return _fit_predict(kind, task, train.frame, train.y, data.frame, inputs, n_classes, regularization)
    y = data.y
    n = len(y)
    folds = max(2, min(folds, n))
    splitter: Any = KFold(n_splits=folds, shuffle=True, random_state=seed)
    if task != "regression":
        counts = np.bincount(y, minlength=n_classes)
        if int(counts[counts > 0].min()) >= folds:
            splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    out = np.empty(n if task == "regression" else (n, n_classes), dtype=np.float64)
    for fit_rows, predict_rows in splitter.split(np.zeros(n), y):
        out[predict_rows] = _fit_predict(
            kind,
            task,
            data.frame.iloc[fit_rows],
            y[fit_rows],
            data.frame.iloc[predict_rows],
            inputs,
            n_classes,
            regularization,
        )
    return out


def _baseline_features(frame: pd.DataFrame, inputs: Sequence[OnnxInput]) -> pd.DataFrame:
    from airflow_mlops.core.onnx_model import feed

    arrays = feed(frame, inputs)
    import pandas as pd

    return pd.DataFrame({i.name: arrays[i.name].reshape(-1) for i in inputs})


def _linear_baseline(task: gm.Task, inputs: Sequence[OnnxInput], regularization: float = 1.0) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [i.name for i in inputs if i.type == "float"]
    categorical = [i.name for i in inputs if i.type == "string"]
    parts: list[tuple[str, Any, list[str]]] = []
    if numeric:
        parts.append(
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()),
                numeric,
            )
        )
    if categorical:
        encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=20, max_categories=50)
        parts.append(("cat", encoder, categorical))
    # L2-regularised: the simpler model is meant to be hard to beat, not an overfitted strawman
    estimator = (
        Ridge(alpha=1.0 / regularization)
        if task == "regression"
        else LogisticRegression(C=regularization, max_iter=1000)
    )
    return Pipeline([("features", ColumnTransformer(parts)), ("model", estimator)])
