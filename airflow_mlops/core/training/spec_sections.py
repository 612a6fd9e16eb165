"""The split, search and category sections of a training spec, and the feature lists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import DEFAULT_PRIMARY as DEFAULT_METRIC
from airflow_mlops.core.metrics import Task
from airflow_mlops.core.training.spec_fields import (
    _boolean,
    _integer,
    _mapping,
    _names,
    _number,
    _reject_unknown,
    _text,
    _where,
)
from airflow_mlops.core.training.tuning import METHODS, Dimension, Method, Range, parse_dimension

MAX_SEARCH_TRIALS = 50


@dataclass(frozen=True)
class SplitSpec:
    """How rows are split into train, validation and test.

    :param method: ``random`` (seeded; stratified by class for classifiers) or ``time`` (ordered by
        ``column``: the oldest rows train, the newest test; rows sharing a timestamp stay together).
    :param column: the time column, required for ``time``.
    """

    method: Literal["random", "time"] = "random"
    column: str | None = None
    train: float = 0.7
    validation: float = 0.15
    test: float = 0.15
    stratify: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "column": self.column,
            "train": self.train,
            "validation": self.validation,
            "test": self.test,
            "stratify": self.stratify,
        }


@dataclass(frozen=True)
class SearchSpec:
    """A hyperparameter search (:mod:`~airflow_mlops.core.training.tuning`): ``trials`` trials besides
    the hand-set parameters, drawn from a grid (``method: grid``, lists of values) or proposed by a
    seeded TPE sampler (``method: tpe``, ranges or lists).

    Each trial is fit on the train split and scored on the validation split with ``metric``; the best
    one becomes the model. Every trial is logged as a nested MLflow run.
    """

    trials: int
    space: dict[str, Dimension]
    metric: str
    method: Method = "grid"

    def to_dict(self) -> dict[str, Any]:
        space = {k: v.to_dict() if isinstance(v, Range) else list(v) for k, v in self.space.items()}
        return {"trials": self.trials, "metric": self.metric, "method": self.method, "space": space}


@dataclass(frozen=True)
class CategorySpec:
    """Bounded one-hot encoding: per categorical feature keep at most ``max`` values, each seen at least
    ``min_frequency`` times in the train split; rarer and unseen values encode as all zeros."""

    max: int = 64
    min_frequency: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {"max": self.max, "min_frequency": self.min_frequency}


def _features(raw: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if "features" in raw:
        if "numeric_features" in raw or "categorical_features" in raw:
            raise SpecError(
                "Give features either as 'features: {numeric, categorical}' or as top-level lists, not both."
            )
        section = _mapping(raw["features"], "features")
        _reject_unknown(section, ("numeric", "categorical"), "features")
        return _names(section.get("numeric"), "features.numeric"), _names(
            section.get("categorical"), "features.categorical"
        )
    return _names(raw.get("numeric_features"), "numeric_features"), _names(
        raw.get("categorical_features"), "categorical_features"
    )


def _split(raw: Any) -> SplitSpec:
    if raw is None:
        return SplitSpec()
    section = _mapping(raw, "split")
    _reject_unknown(section, ("method", "column", "train", "validation", "test", "stratify"), "split")
    method = _text(section.get("method", "random"), "split.method").lower()
    if method not in ("random", "time"):
        raise SpecError(f"{_where('split.method')} must be 'random' or 'time'. Got {section.get('method')!r} instead.")
    column = section.get("column")
    if method == "time":
        column = _text(column, "split.column")
    elif column is not None:
        raise SpecError(f"{_where('split.column')} applies to method 'time' only; the method is 'random'.")
    fractions = {}
    for name, default in (("train", 0.7), ("validation", 0.15), ("test", 0.15)):
        value = _number(section.get(name, default), f"split.{name}")
        if not 0 < value < 1:
            raise SpecError(
                f"{_where('split.' + name)} must be a fraction in (0, 1). Got {section.get(name)!r} instead."
            )
        fractions[name] = value
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise SpecError(
            f"The split fractions train + validation + test must sum to 1. Got {fractions['train']} + "
            f"{fractions['validation']} + {fractions['test']} = {total:g} instead."
        )
    return SplitSpec(
        method=cast(Literal["random", "time"], method),
        column=column,
        stratify=_boolean(section.get("stratify", True), "split.stratify"),
        **fractions,
    )


def _search(raw: Any, task: Task) -> SearchSpec | None:
    if raw is None:
        return None
    section = _mapping(raw, "search")
    _reject_unknown(section, ("trials", "space", "metric", "method"), "search")
    method = _text(section.get("method", "grid"), "search.method")
    if method not in METHODS:
        raise SpecError(f"{_where('search.method')} must be one of {list(METHODS)}. Got {method!r} instead.")
    space_raw = _mapping(section.get("space"), "search.space")
    if not space_raw:
        raise SpecError(f"{_where('search.space')} must name at least one parameter with a list of values.")
    space = {str(name): parse_dimension(str(name), values, method) for name, values in space_raw.items()}
    metric = _text(section.get("metric", DEFAULT_METRIC[task]), "search.metric")
    return SearchSpec(
        trials=_integer(section.get("trials", 4), "search.trials", 1, MAX_SEARCH_TRIALS),
        space=space,
        metric=metric,
        method=method,
    )


def _categories(raw: Any) -> CategorySpec:
    if raw is None:
        return CategorySpec()
    section = _mapping(raw, "categories")
    _reject_unknown(section, ("max", "min_frequency"), "categories")
    return CategorySpec(
        max=_integer(section.get("max", 64), "categories.max", 1, 10_000),
        min_frequency=_integer(section.get("min_frequency", 10), "categories.min_frequency", 1),
    )
