"""The split, search and category sections of a training spec, and the feature lists."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.features.spec import FeatureTransforms
from airflow_mlops.core.metrics import DEFAULT_PRIMARY as DEFAULT_METRIC
from airflow_mlops.core.metrics import Task
from airflow_mlops.core.training.search_space import METHODS, Dimension, Method, Range, parse_dimension
from airflow_mlops.core.training.spec_fields import (
    TRANSFORM_KEYS,
    _boolean,
    _integer,
    _mapping,
    _number,
    _reject_unknown,
    _text,
    _where,
)

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


@dataclass(frozen=True)
class AblationSpec:
    """The spec's ``ablation`` section.

    :param budget_seconds: wall-clock budget of the whole ablation; features not reached are reported
        as unmeasured.
    :param repeats: permutations per feature (their mean drop is reported).
    :param min_drop: a feature whose mean drop is at most this (in metric units) is flagged.
    :param max_rows: validation rows used (a seeded sample beyond that).
    """

    budget_seconds: float = 60.0
    repeats: int = 3
    min_drop: float = 0.0
    max_rows: int = 20_000

    KEYS = ("budget_seconds", "repeats", "min_drop", "max_rows")

    @classmethod
    def from_raw(cls, raw: Any) -> AblationSpec | None:
        """None for an absent or ``false`` section, defaults for ``true``, else the mapping's values."""
        if raw is None or raw is False:
            return None
        if raw is True:
            return cls()
        section = _mapping(raw, "ablation")
        _reject_unknown(section, cls.KEYS, "ablation")
        budget = _number(section.get("budget_seconds", 60.0), "ablation.budget_seconds")
        min_drop = _number(section.get("min_drop", 0.0), "ablation.min_drop")
        if budget <= 0 or min_drop < 0:
            raise SpecError(
                f"{_where('ablation')} needs budget_seconds > 0 and min_drop >= 0. "
                f"Got budget_seconds={budget!r}, min_drop={min_drop!r}."
            )
        return cls(
            budget_seconds=budget,
            repeats=_integer(section.get("repeats", 3), "ablation.repeats", 1, 50),
            min_drop=min_drop,
            max_rows=_integer(section.get("max_rows", 20_000), "ablation.max_rows", 100),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _transforms(raw: Mapping[str, Any]) -> FeatureTransforms:
    """The feature transforms: ``features.{derived, joins, timezones}`` in a pipeline file, or the
    top-level ``transforms`` of a spec artifact (not both)."""
    features = raw.get("features")
    section: Mapping[str, Any] = features if isinstance(features, Mapping) else {}
    given = {k: section[k] for k in TRANSFORM_KEYS if k in section}
    if given and raw.get("transforms"):
        raise SpecError("Give the feature transforms either in 'features' (derived, joins, timezones) or as "
                        "'transforms', not both.")  # fmt: skip
    if raw.get("transforms") is not None:
        return FeatureTransforms.from_mapping(_mapping(raw["transforms"], "transforms"), where="transforms")
    return FeatureTransforms.from_mapping(given, where="features")


def declared_transforms(raw: Mapping[str, Any]) -> FeatureTransforms:
    """The feature transforms of a spec mapping (or its ``training:`` section), parsed and validated.

    Cheap enough for DAG parsing (no estimator import): the pipeline file checks what its transforms
    read against its feature requirements with it.
    """
    if "training" in raw and isinstance(raw["training"], Mapping):
        raw = raw["training"]
    return _transforms(raw)
