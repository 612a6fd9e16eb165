"""The model: one scikit-learn Pipeline (ColumnTransformer + estimator), fitted, optionally searched.

Preprocessing lives inside the pipeline, so the ONNX export carries it and serving computes the same
features as training:

- numeric features pass through for LightGBM (it handles NaN natively); other estimators get a median
  imputer and a standard scaler;
- categorical features are one-hot encoded over a bounded vocabulary: at most ``categories.max``
  values per feature, each seen at least ``categories.min_frequency`` times in the train split. Rarer
  values and values never seen in training encode as all zeros, in scikit-learn and in ONNX alike.
  A feature with 100k distinct values costs one ``value_counts`` and at most ``max`` columns.
"""

from __future__ import annotations

import inspect
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.metrics import Predictions, compute_metrics, is_better
from airflow_mlops.core.training.recency import combined_weights
from airflow_mlops.core.training.spec import TrainingSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

PREPROCESSOR_FIT_ROWS = 1000  # rows a LightGBM preprocessor is fitted on (:func:`fit_preprocessor`)


@dataclass(frozen=True)
class CategoryReport:
    """How one categorical feature was encoded."""

    distinct: int
    kept: tuple[str, ...]
    coverage: float  # share of train rows whose value is one of the kept categories

    def to_dict(self) -> dict[str, Any]:
        return {"distinct": self.distinct, "kept": len(self.kept), "coverage": round(self.coverage, 6)}


@dataclass(frozen=True)
class TrialResult:
    """One hyperparameter-search trial, scored on the validation split."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float]
    best_iteration: int | None
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": dict(self.params),
            "metrics": dict(self.metrics),
            "best_iteration": self.best_iteration,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FittedModel:
    """The fitted pipeline and how it came to be."""

    pipeline: Pipeline
    params: dict[str, Any]
    best_iteration: int | None
    categories: dict[str, CategoryReport]
    trials: tuple[TrialResult, ...]
    train_matrix: np.ndarray
    validation_matrix: np.ndarray
    validation_predictions: Predictions | None = None  # kept from LightGBM's fit or the search, when available


def kept_categories(values: pd.Series, maximum: int, min_frequency: int) -> list[str]:
    """The categories to one-hot encode: the ``maximum`` most frequent values seen at least
    ``min_frequency`` times (ties broken by value, so the choice is deterministic)."""
    counts = values.value_counts(sort=False)
    counts = counts[counts >= min_frequency]
    ranked = sorted(counts.items(), key=lambda item: (-int(item[1]), str(item[0])))[:maximum]
    return sorted(str(value) for value, _ in ranked)


def build_preprocessor(
    spec: TrainingSpec, x_train: pd.DataFrame
) -> tuple[ColumnTransformer, dict[str, CategoryReport]]:
    """An unfitted ColumnTransformer with the vocabulary of each categorical feature fixed from the train split.

    :raises DataError: a categorical feature keeps no value at all (it looks like an identifier).
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    reports: dict[str, CategoryReport] = {}
    vocabularies: list[list[str]] = []
    for name in spec.categorical_features:
        column = x_train[name]
        kept = kept_categories(column, spec.categories.max, spec.categories.min_frequency)
        distinct = int(column.nunique())
        if not kept:
            raise DataError(
                f"Categorical feature {name!r} has {distinct} distinct values in the {len(column)} train rows and "
                f"none appears at least {spec.categories.min_frequency} times (categories.min_frequency): it looks "
                "like an identifier and cannot generalise. Drop it from the features or lower min_frequency."
            )
        coverage = float(column.isin(kept).mean())
        reports[name] = CategoryReport(distinct, tuple(kept), coverage)
        vocabularies.append(kept)
    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.numeric_features:
        numeric: Any = "passthrough"
        if not spec.estimator.is_lightgbm:
            numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
        transformers.append(("numeric", numeric, list(spec.numeric_features)))
    if spec.categorical_features:
        encoder = OneHotEncoder(categories=vocabularies, handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        transformers.append(("categorical", encoder, list(spec.categorical_features)))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0), reports


def fit_preprocessor(preprocessor: ColumnTransformer, spec: TrainingSpec, x: pd.DataFrame) -> np.ndarray:
    """Fit :func:`build_preprocessor`'s ``preprocessor`` on ``x`` and return ``x`` transformed.

    With LightGBM it learns nothing from the rows (numeric features pass through, the one-hot vocabularies
    are fixed beforehand), so it is fitted on the first rows only: the same fitted state and the same
    matrix, and scikit-learn's per-value check of the text columns (a Python loop) runs over the rows
    once instead of twice. Other estimators' imputer and scaler are fitted on every row.
    """
    matrix: np.ndarray
    if spec.estimator.is_lightgbm and len(x) > PREPROCESSOR_FIT_ROWS:
        matrix = preprocessor.fit(x.iloc[:PREPROCESSOR_FIT_ROWS]).transform(x)
    else:
        matrix = preprocessor.fit_transform(x)
    return matrix


def make_estimator(spec: TrainingSpec, params: Mapping[str, Any]) -> Any:
    """An unfitted estimator with ``params`` (seeded with ``spec.seed`` unless a seed is given)."""
    cls = spec.estimator.estimator_class(spec.task)
    arguments = dict(params)
    accepted = inspect.signature(cls).parameters
    if "random_state" in accepted and "random_state" not in arguments and not spec.estimator.is_lightgbm:
        arguments["random_state"] = spec.seed
    if spec.estimator.is_lightgbm and not {"random_state", "seed", "random_seed"} & set(arguments):
        arguments["random_state"] = spec.seed
    try:
        estimator = cls(**arguments)
    except TypeError as exc:
        raise SpecError(
            f"Estimator {spec.estimator.type!r} rejected its parameters {sorted(arguments)}: {exc}"
        ) from exc
    if spec.is_classifier and not hasattr(estimator, "predict_proba"):
        raise SpecError(
            f"Estimator {spec.estimator.type!r} has no predict_proba with parameters {dict(arguments)}; a classifier "
            "must give class probabilities (the ONNX contract exports them)."
        )
    return estimator


def sample_weights(spec: TrainingSpec, y: np.ndarray, classes: tuple[Any, ...]) -> np.ndarray | None:
    """Per-row weights for ``class_weight`` (None when the spec asks for none)."""
    if spec.class_weight is None:
        return None
    import numpy as np
    from sklearn.utils.class_weight import compute_sample_weight

    if spec.class_weight == "balanced":
        return np.asarray(compute_sample_weight("balanced", y), dtype=np.float64)
    given = spec.class_weight if isinstance(spec.class_weight, dict) else {}
    by_text = {str(c): c for c in classes}
    unknown = sorted(set(given) - set(by_text))
    if unknown:
        raise SpecError(
            f"The 'class_weight' field names class(es) {unknown} that the target does not have. "
            f"Classes: {[str(c) for c in classes]}."
        )
    weights = {by_text[k]: w for k, w in given.items()}
    return np.asarray(compute_sample_weight({c: weights.get(c, 1.0) for c in classes}, y), dtype=np.float64)


class _BestIterationScores:
    """LightGBM callback: the validation predictions as they stood at the best iteration.

    LightGBM keeps every validation row's score up to date while it boosts (that is how it computes
    the loss early stopping watches), so predicting the validation split again after the fit repeats
    work: on the flights year (49k rows, 1000 trees) 7.4 s of CPU against about 1 s here. The scores
    are read through LightGBM's public custom-metric hook (``eval_valid`` with a ``feval``) whenever
    the validation metric improves, by the same rule as ``early_stopping`` (first metric, strict
    improvement); this callback runs before early stopping, which ends training by raising. If the
    iteration kept is not the one LightGBM reports as best, the caller predicts instead.
    """

    order = 20  # lightgbm.early_stopping has order 30

    def __init__(self) -> None:
        self.best_score: float | None = None
        self.iteration: int | None = None
        self.scores: np.ndarray | None = None

    def __call__(self, env: Any) -> None:
        import numpy as np

        results = [r for r in env.evaluation_result_list if r[0] != "training"]
        if not results:
            return
        score, higher = float(results[0][2]), bool(results[0][3])
        if self.best_score is not None and not (score > self.best_score if higher else score < self.best_score):
            return
        captured: list[np.ndarray] = []

        def keep(predictions: np.ndarray, _: Any) -> tuple[str, float, bool]:
            captured.append(np.array(predictions, dtype=np.float64))  # LightGBM reuses its buffer
            return "captured", 0.0, True

        env.model.eval_valid(feval=keep)
        self.best_score, self.iteration, self.scores = score, env.iteration + 1, captured[0]

    def predictions(
        self, best_iteration: int | None, spec: TrainingSpec, classes: tuple[Any, ...]
    ) -> Predictions | None:
        """The kept scores in the shape ``predict`` gives, or None when they are not the best iteration's."""
        import numpy as np

        if self.scores is None or self.iteration != best_iteration:
            return None
        if not spec.is_classifier:
            return Predictions(values=self.scores.ravel(), probabilities=None, labels=None)
        scores = self.scores
        probabilities = scores if scores.ndim == 2 else np.column_stack([1.0 - scores, scores])
        return Predictions(None, probabilities, np.asarray(classes)[probabilities.argmax(axis=1)])


def _fit_estimator(
    spec: TrainingSpec,
    params: Mapping[str, Any],
    train: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    validation: tuple[np.ndarray, np.ndarray, np.ndarray | None],
    classes: tuple[Any, ...],
) -> tuple[Any, int | None, Predictions | None]:
    """Fit one estimator; also return its validation predictions when LightGBM's own scores could be kept."""
    estimator = make_estimator(spec, params)
    x, y, weights = train
    fit_kwargs: dict[str, Any] = {}
    if weights is not None:
        if "sample_weight" not in inspect.signature(estimator.fit).parameters:
            raise SpecError(
                f"Estimator {spec.estimator.type!r} does not accept sample weights, so 'class_weight' and "
                "'recency_weight_half_life' cannot apply."
            )
        fit_kwargs["sample_weight"] = weights
    rounds = spec.effective_early_stopping_rounds
    capture: _BestIterationScores | None = None
    if spec.estimator.is_lightgbm and rounds:
        import lightgbm

        vx, vy, vw = validation
        # eval_set, although LightGBM 4.7 deprecates it for eval_X/eval_y: LGBMClassifier label-encodes
        # eval_set targets but passes eval_y through as is, so string classes fail with eval_y.
        fit_kwargs["eval_set"] = [(vx, vy)]
        if vw is not None:
            fit_kwargs["eval_sample_weight"] = [vw]
        capture = _BestIterationScores()
        fit_kwargs["callbacks"] = [capture, lightgbm.early_stopping(rounds, first_metric_only=True, verbose=False)]
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*'eval_set' is deprecated.*")
            estimator.fit(x, y, **fit_kwargs)
    except (ValueError, TypeError) as exc:
        raise SpecError(
            f"Estimator {spec.estimator.type!r} failed to fit with parameters {dict(params)}: {exc}"
        ) from exc
    best = getattr(estimator, "best_iteration_", None) if spec.estimator.is_lightgbm else None
    if spec.estimator.is_lightgbm and not best:
        best = int(estimator.n_estimators_) if hasattr(estimator, "n_estimators_") else None
    best_iteration = int(best) if best else None
    kept = capture.predictions(best_iteration, spec, classes) if capture is not None else None
    return estimator, best_iteration, kept


def predict(estimator: Any, matrix: np.ndarray, spec: TrainingSpec, classes: tuple[Any, ...]) -> Predictions:
    """Native predictions of a fitted estimator on an already transformed matrix."""
    import numpy as np

    if spec.is_classifier:
        probabilities = np.asarray(estimator.predict_proba(matrix), dtype=np.float64)
        labels = np.asarray(classes)[probabilities.argmax(axis=1)]
        return Predictions(values=None, probabilities=probabilities, labels=labels)
    return Predictions(
        values=np.asarray(estimator.predict(matrix), dtype=np.float64).ravel(), probabilities=None, labels=None
    )


def fit_model(
    spec: TrainingSpec,
    x_train: pd.DataFrame,
    y_train: np.ndarray,
    x_validation: pd.DataFrame,
    y_validation: np.ndarray,
    classes: tuple[Any, ...],
    train_weights: np.ndarray | None = None,
) -> FittedModel:
    """Fit the preprocessor on the train split, then the estimator (each search trial), and keep the best.

    Early stopping (LightGBM) and the search both look at the validation split only; the test split
    stays untouched until the final evaluation.

    :param train_weights: per-row weights of the train split (recency), multiplied into the class weights.
    """
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.training.tuning import SearchPlan

    preprocessor, categories = build_preprocessor(spec, x_train)
    train_matrix = fit_preprocessor(preprocessor, spec, x_train)
    validation_matrix = preprocessor.transform(x_validation)
    train = (train_matrix, y_train, combined_weights(sample_weights(spec, y_train, classes), train_weights))
    validation = (validation_matrix, y_validation, sample_weights(spec, y_validation, classes))
    plan = SearchPlan(spec)
    trials: list[TrialResult] = []
    best: tuple[Any, int | None, dict[str, Any], Predictions | None] | None = None
    best_score: float | None = None
    number = -1
    while (overrides := plan.ask()) is not None:
        number += 1
        params = spec.estimator_params(overrides)
        started = time.perf_counter()
        estimator, best_iteration, kept = _fit_estimator(spec, params, train, validation, classes)
        seconds = time.perf_counter() - started
        if spec.search is None:
            best = (estimator, best_iteration, params, kept)
            break
        scored = kept or predict(estimator, validation_matrix, spec, classes)
        metrics = compute_metrics(spec.task, y_validation, scored, classes)
        trials.append(TrialResult(number, dict(overrides), metrics, best_iteration, seconds))
        score = metrics.get(spec.primary_metric)
        plan.tell(score)
        if score is not None and (best_score is None or is_better(spec.task, spec.primary_metric, score, best_score)):
            best, best_score = (estimator, best_iteration, params, scored), score
    if best is None:
        raise DataError(
            f"No search trial produced the metric {spec.primary_metric!r} on the validation split "
            f"({len(y_validation)} rows); it may hold a single class."
        )
    estimator, best_iteration, params, validation_predictions = best
    pipeline = Pipeline([("features", preprocessor), ("model", estimator)])
    return FittedModel(
        pipeline=pipeline,
        params=params,
        best_iteration=best_iteration,
        categories=categories,
        trials=tuple(trials),
        train_matrix=train_matrix,
        validation_matrix=validation_matrix,
        validation_predictions=validation_predictions,
    )


def validation_scorer(
    fitted: FittedModel, spec: TrainingSpec, classes: tuple[Any, ...]
) -> Callable[[pd.DataFrame, np.ndarray], float]:
    """The fitted pipeline's primary metric on rows of raw features (the ablation re-scores with it)."""

    def score(x: pd.DataFrame, y: np.ndarray) -> float:
        matrix = fitted.pipeline.named_steps["features"].transform(x)
        predictions = predict(fitted.pipeline.named_steps["model"], matrix, spec, classes)
        return float(compute_metrics(spec.task, y, predictions, classes)[spec.primary_metric])

    return score
