"""The training spec: what to learn, from which columns, with which estimator, split and search.

A spec is a frozen dataclass built from a mapping (operator arguments) or a YAML file in ``include/``.
Every field is validated when the spec is built, so that a typo fails the task before any data is read,
with a message naming the field, what was given and what was expected. Values may arrive as strings
(Jinja renders strings), so numbers are coerced here, once.

YAML layout (the whole document, or its ``training:`` section so that one pipeline file can also carry
sections for other stages)::

    task: binary                      # binary | multiclass | regression
    target: arr_delayed_15
    features:
      numeric: [distance, hour]
      categorical: [carrier, origin]
    estimator:
      type: lightgbm                  # or an import path: sklearn.linear_model.LogisticRegression
      params: {learning_rate: 0.05}
    split: {method: time, column: sched_dep_ts, train: 0.7, validation: 0.15, test: 0.15}
    class_weight: null                # null | balanced | {class: weight}
    early_stopping_rounds: 50         # LightGBM only
    search: {trials: 6, metric: roc_auc, space: {num_leaves: [15, 31, 63]}}
    categories: {max: 64, min_frequency: 20}
    seed: 0
"""

from __future__ import annotations

import builtins
import importlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.metrics import DEFAULT_PRIMARY as DEFAULT_METRIC
from airflow_mlops.core.metrics import METRIC_DIRECTIONS, TASKS, Task
from airflow_mlops.core.params import parse_flag

LIGHTGBM = "lightgbm"


# LightGBM defaults, overridable by ``estimator.params``. One thread and ``deterministic`` make the
# same data, spec and seed give the same trees on any machine; raise ``n_jobs`` for large data on a
# dedicated worker (LightGBM results do not depend on the thread count with ``deterministic``, but
# busy-waiting OpenMP threads make it many times slower on a shared, oversubscribed machine).
LIGHTGBM_DEFAULTS: dict[str, Any] = {
    "n_estimators": 1000,
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_child_samples": 20,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 1,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
DEFAULT_EARLY_STOPPING_ROUNDS = 50
MAX_SEARCH_TRIALS = 50


def _where(path: str) -> str:
    return f"The '{path}' field of TrainingSpec"


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(f"{_where(path)} must be a mapping. Got {value!r} ({type(value).__name__}) instead.")
    return value


def _reject_unknown(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    unknown = sorted(str(k) for k in raw if k not in allowed)
    if unknown:
        where = f"section '{path}'" if path else "TrainingSpec"
        raise SpecError(f"Unknown field(s) {unknown} in {where}. Allowed fields: {sorted(allowed)}.")


def _text(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{_where(path)} must be a non-empty string. Got {value!r} instead.")
    return value.strip()


def _names(value: Any, path: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise SpecError(f"{_where(path)} must be a list of column names. Got {value!r} instead.")
    names = tuple(_text(v, path) for v in value)
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise SpecError(f"{_where(path)} lists column(s) {duplicates} more than once.")
    return names


def _number(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{_where(path)} must be a number. Got {value!r} instead.")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{_where(path)} must be a number. Got {value!r} instead.") from None
    if not math.isfinite(number):
        raise SpecError(f"{_where(path)} must be a finite number. Got {value!r} instead.")
    return number


def _integer(value: Any, path: str, minimum: int, maximum: int | None = None) -> int:
    number = _number(value, path)
    upper = "" if maximum is None else f" and <= {maximum}"
    if number != int(number) or number < minimum or (maximum is not None and number > maximum):
        raise SpecError(f"{_where(path)} must be an integer >= {minimum}{upper}. Got {value!r} instead.")
    return int(number)


def _boolean(value: Any, path: str) -> bool:
    return parse_flag(value, _where(path))


def import_estimator(path: str) -> type:
    """The estimator class named by a dotted import path (``sklearn.linear_model.Ridge``)."""
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise SpecError(
            f"{_where('estimator.type')} must be 'lightgbm' or a dotted import path such as "
            f"'sklearn.ensemble.RandomForestClassifier'. Got {path!r} instead."
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SpecError(
            f"{_where('estimator.type')} names module {module_name!r}, which cannot be imported: {exc}."
        ) from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not callable(getattr(cls, "fit", None)) or not hasattr(cls, "get_params"):
        raise SpecError(
            f"{_where('estimator.type')} must name a scikit-learn compatible estimator class "
            f"(with fit and get_params). {path!r} is not one."
        )
    return cls


def lightgbm_parameter_names() -> frozenset[str] | None:
    """Every parameter name and alias LightGBM understands, or None when it cannot be listed."""
    try:
        import lightgbm
        from lightgbm.basic import _ConfigAliases

        aliases = _ConfigAliases._get_all_param_aliases()
        names = {name for group in aliases.values() for name in group} | set(aliases)
        names |= set(lightgbm.LGBMModel().get_params())
        return frozenset(names)
    except Exception:  # a private API: fall back to LightGBM's own checks
        return None


@dataclass(frozen=True)
class EstimatorSpec:
    """Which estimator to fit.

    :param type: ``lightgbm`` (LGBMClassifier or LGBMRegressor by task) or the import path of any
        scikit-learn compatible estimator that skl2onnx can convert.
    :param params: constructor parameters. For LightGBM they override :data:`LIGHTGBM_DEFAULTS`.
    """

    type: str = LIGHTGBM
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def is_lightgbm(self) -> bool:
        return self.type == LIGHTGBM or self.type in {"lightgbm.LGBMClassifier", "lightgbm.LGBMRegressor"}

    def estimator_class(self, task: Task) -> builtins.type:
        if self.is_lightgbm:
            import lightgbm

            return lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
        return import_estimator(self.type)

    def parameter_names(self, task: Task) -> frozenset[str] | None:
        """Names the estimator accepts, or None when any name may be valid."""
        cls = self.estimator_class(task)
        if self.is_lightgbm:
            return lightgbm_parameter_names()
        try:
            return frozenset(cls().get_params())
        except Exception:  # estimators with required constructor arguments
            return None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": dict(self.params)}


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
    """A small hyperparameter search: ``trials`` combinations drawn (seeded) from a grid.

    Each trial is fit on the train split and scored on the validation split with ``metric``; the best
    one becomes the model. Every trial is logged as a nested MLflow run.
    """

    trials: int
    space: dict[str, tuple[Any, ...]]
    metric: str

    def to_dict(self) -> dict[str, Any]:
        return {"trials": self.trials, "metric": self.metric, "space": {k: list(v) for k, v in self.space.items()}}


@dataclass(frozen=True)
class CategorySpec:
    """Bounded one-hot encoding: per categorical feature keep at most ``max`` values, each seen at least
    ``min_frequency`` times in the train split; rarer and unseen values encode as all zeros."""

    max: int = 64
    min_frequency: int = 10

    def to_dict(self) -> dict[str, Any]:
        return {"max": self.max, "min_frequency": self.min_frequency}


_TOP_FIELDS = (
    "task",
    "target",
    "features",
    "numeric_features",
    "categorical_features",
    "estimator",
    "split",
    "class_weight",
    "early_stopping_rounds",
    "search",
    "categories",
    "seed",
    "reference_rows",
    "train_metrics_rows",
    "leakage_check",
    "parity_tolerance",
)


@dataclass(frozen=True)
class TrainingSpec:
    """Everything training needs to know, validated.

    :param task: ``binary``, ``multiclass`` or ``regression``.
    :param target: the label column. Rows where it is missing are dropped and counted.
    :param numeric_features: columns fed as ``float`` (missing values stay NaN).
    :param categorical_features: columns fed as ``string`` (missing values become ``""``).
    :param estimator: see :class:`EstimatorSpec`.
    :param split: see :class:`SplitSpec`.
    :param class_weight: ``None``, ``"balanced"`` or a mapping class -> weight (classifiers only),
        applied as sample weights.
    :param early_stopping_rounds: LightGBM stops when the validation loss has not improved for this
        many rounds; ``0`` disables. ``None`` means 50 for LightGBM and nothing for other estimators.
    :param search: optional :class:`SearchSpec`.
    :param categories: see :class:`CategorySpec`.
    :param seed: seeds the split, the estimator and the search.
    :param reference_rows: size of the training sample kept as the drift reference.
    :param train_metrics_rows: train-split metrics are computed on a seeded sample of at most this
        many rows (they diagnose over-fitting; predicting every training row can cost as much as the
        fit). Validation and test metrics always use every row.
    :param leakage_check: refuse features that give the target away (a copy of it, a perfect
        separator, an exact linear combination). Turn off only on purpose.
    :param parity_tolerance: the largest difference allowed between the native model and the ONNX
        graph on the test split (absolute on probabilities, relative on regression outputs).
    """

    task: Task
    target: str
    numeric_features: tuple[str, ...] = ()
    categorical_features: tuple[str, ...] = ()
    estimator: EstimatorSpec = field(default_factory=EstimatorSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    class_weight: str | dict[str, float] | None = None
    early_stopping_rounds: int | None = None
    search: SearchSpec | None = None
    categories: CategorySpec = field(default_factory=CategorySpec)
    seed: int = 0
    reference_rows: int = 5000
    train_metrics_rows: int = 10_000
    leakage_check: bool = True
    parity_tolerance: float = 1e-5

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise SpecError(f"{_where('task')} must be one of {list(TASKS)}. Got {self.task!r} instead.")
        if not self.numeric_features and not self.categorical_features:
            raise SpecError("TrainingSpec needs at least one feature in 'features.numeric' or 'features.categorical'.")
        both = sorted(set(self.numeric_features) & set(self.categorical_features))
        if both:
            raise SpecError(f"Column(s) {both} are listed as both numeric and categorical features; pick one.")
        if self.target in self.features:
            raise SpecError(
                f"The target {self.target!r} is also listed as a feature: that is leakage (the model would "
                "read the answer). Remove it from the features."
            )
        if self.class_weight is not None and self.task == "regression":
            raise SpecError(f"{_where('class_weight')} applies to classifiers only; the task is 'regression'.")
        if self.early_stopping_rounds and not self.estimator.is_lightgbm:
            raise SpecError(
                f"{_where('early_stopping_rounds')} is supported for LightGBM only; the estimator is "
                f"{self.estimator.type!r}. Remove the field or set it to 0."
            )
        self._check_estimator()
        if self.search is not None:
            directions = METRIC_DIRECTIONS[self.task]
            if self.search.metric not in directions:
                raise SpecError(
                    f"{_where('search.metric')} must be one of {sorted(directions)} for task {self.task!r}. "
                    f"Got {self.search.metric!r} instead."
                )

    def _check_estimator(self) -> None:
        from sklearn.base import is_classifier, is_regressor

        cls = self.estimator.estimator_class(self.task)
        try:
            probe = cls()
            wanted, ok = (
                ("regressor", is_regressor(probe))
                if self.task == "regression"
                else ("classifier", is_classifier(probe))
            )
        except Exception:  # estimators that need constructor arguments cannot be probed here
            return
        if not ok:
            raise SpecError(
                f"{_where('estimator.type')} names {self.estimator.type!r}, which is not a {wanted}; "
                f"task {self.task!r} needs one."
            )
        names = self.estimator.parameter_names(self.task)
        if names is None:
            return
        searched = set(self.search.space) if self.search else set()
        unknown = sorted((set(self.estimator.params) | searched) - names)
        if unknown:
            raise SpecError(
                f"Estimator {self.estimator.type!r} does not accept parameter(s) {unknown} "
                f"(in 'estimator.params' or 'search.space'). Accepted: {sorted(names)}."
            )

    # -- derived --------------------------------------------------------------------------------
    @property
    def features(self) -> tuple[str, ...]:
        return self.numeric_features + self.categorical_features

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def primary_metric(self) -> str:
        """The metric a search optimises (and the headline figure of a run)."""
        return self.search.metric if self.search else DEFAULT_METRIC[self.task]

    @property
    def effective_early_stopping_rounds(self) -> int:
        if not self.estimator.is_lightgbm:
            return 0
        return DEFAULT_EARLY_STOPPING_ROUNDS if self.early_stopping_rounds is None else self.early_stopping_rounds

    def estimator_params(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Constructor parameters: defaults, then ``estimator.params``, then ``overrides`` (a search trial)."""
        params: dict[str, Any] = dict(LIGHTGBM_DEFAULTS) if self.estimator.is_lightgbm else {}
        params.update(self.estimator.params)
        params.update(overrides or {})
        return params

    # -- (de)serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able form; ``TrainingSpec.from_mapping(spec.to_dict()) == spec``."""
        return {
            "task": self.task,
            "target": self.target,
            "numeric_features": list(self.numeric_features),
            "categorical_features": list(self.categorical_features),
            "estimator": self.estimator.to_dict(),
            "split": self.split.to_dict(),
            "class_weight": dict(self.class_weight) if isinstance(self.class_weight, dict) else self.class_weight,
            "early_stopping_rounds": self.early_stopping_rounds,
            "search": self.search.to_dict() if self.search else None,
            "categories": self.categories.to_dict(),
            "seed": self.seed,
            "reference_rows": self.reference_rows,
            "train_metrics_rows": self.train_metrics_rows,
            "leakage_check": self.leakage_check,
            "parity_tolerance": self.parity_tolerance,
        }

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TrainingSpec:
        """Build a spec from a mapping (operator arguments or a parsed YAML document)."""
        raw = _mapping(raw, "<spec>")
        if "training" in raw and isinstance(raw["training"], Mapping):
            raw = raw["training"]
        _reject_unknown(raw, _TOP_FIELDS, "")
        for required in ("task", "target"):
            if required not in raw:
                raise SpecError(f"TrainingSpec needs the field '{required}'. Fields given: {sorted(map(str, raw))}.")
        task = _text(raw["task"], "task").lower()
        if task not in TASKS:
            raise SpecError(f"{_where('task')} must be one of {list(TASKS)}. Got {raw['task']!r} instead.")
        numeric, categorical = _features(raw)
        estimator = _estimator(raw.get("estimator"))
        split = _split(raw.get("split"))
        search = _search(raw.get("search"), task)
        categories = _categories(raw.get("categories"))
        return cls(
            task=task,
            target=_text(raw["target"], "target"),
            numeric_features=numeric,
            categorical_features=categorical,
            estimator=estimator,
            split=split,
            class_weight=_class_weight(raw.get("class_weight")),
            early_stopping_rounds=(
                None
                if raw.get("early_stopping_rounds") is None
                else _integer(raw["early_stopping_rounds"], "early_stopping_rounds", 0)
            ),
            search=search,
            categories=categories,
            seed=_integer(raw.get("seed", 0), "seed", 0, 2**31 - 1),
            reference_rows=_integer(raw.get("reference_rows", 5000), "reference_rows", 1, 1_000_000),
            train_metrics_rows=_integer(raw.get("train_metrics_rows", 10_000), "train_metrics_rows", 1),
            leakage_check=_boolean(raw.get("leakage_check", True), "leakage_check"),
            parity_tolerance=_tolerance(raw.get("parity_tolerance", 1e-5)),
        )

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainingSpec:
        """Load a spec from a YAML file (the whole document or its ``training:`` section)."""
        import yaml

        file = Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except FileNotFoundError as exc:
            raise SourceNotFoundError(f"The training spec file {str(file)!r} does not exist.") from exc
        except OSError as exc:
            raise SpecError(f"The training spec file {str(file)!r} cannot be read: {exc}.") from exc
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise SpecError(f"The training spec file {str(file)!r} is not valid YAML: {exc}") from exc
        if not isinstance(document, Mapping):
            raise SpecError(f"The training spec file {str(file)!r} must hold a mapping. Got {type(document).__name__}.")
        try:
            return cls.from_mapping(document)
        except SpecError as exc:
            raise SpecError(f"{exc} (in {str(file)!r})") from exc


def declared_features(raw: Mapping[str, Any]) -> tuple[str, ...]:
    """The feature names of a spec mapping (or its ``training:`` section), without building the spec.

    Cheap (no estimator import): the pipeline file checks its features against its requirements with
    it while DAG files parse.
    """
    if "training" in raw and isinstance(raw["training"], Mapping):
        raw = raw["training"]
    numeric, categorical = _features(raw)
    return numeric + categorical


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


def _estimator(raw: Any) -> EstimatorSpec:
    if raw is None:
        return EstimatorSpec()
    if isinstance(raw, str):
        return EstimatorSpec(type=_text(raw, "estimator"))
    section = _mapping(raw, "estimator")
    _reject_unknown(section, ("type", "params"), "estimator")
    params = section.get("params") or {}
    params = dict(_mapping(params, "estimator.params"))
    kind = _text(section.get("type", LIGHTGBM), "estimator.type")
    return EstimatorSpec(
        type=kind.lower() if kind.lower() == LIGHTGBM else kind, params={str(k): v for k, v in params.items()}
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
    _reject_unknown(section, ("trials", "space", "metric"), "search")
    space_raw = _mapping(section.get("space"), "search.space")
    if not space_raw:
        raise SpecError(f"{_where('search.space')} must name at least one parameter with a list of values.")
    space: dict[str, tuple[Any, ...]] = {}
    for name, values in space_raw.items():
        if isinstance(values, str) or not isinstance(values, Sequence) or not values:
            raise SpecError(
                f"{_where('search.space.' + str(name))} must be a non-empty list of values. Got {values!r}."
            )
        space[str(name)] = tuple(values)
    metric = _text(section.get("metric", DEFAULT_METRIC[task]), "search.metric")
    return SearchSpec(
        trials=_integer(section.get("trials", 4), "search.trials", 1, MAX_SEARCH_TRIALS), space=space, metric=metric
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


def _class_weight(raw: Any) -> str | dict[str, float] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw.strip().lower() != "balanced":
            raise SpecError(
                f"{_where('class_weight')} must be null, 'balanced' or a mapping class -> weight. Got {raw!r}."
            )
        return "balanced"
    section = _mapping(raw, "class_weight")
    weights = {}
    for key, value in section.items():
        weight = _number(value, f"class_weight.{key}")
        if weight <= 0:
            raise SpecError(f"{_where('class_weight.' + str(key))} must be a positive number. Got {value!r} instead.")
        weights[str(key)] = weight
    if not weights:
        raise SpecError(f"{_where('class_weight')} must not be an empty mapping; use null for no weighting.")
    return weights


def _tolerance(raw: Any) -> float:
    value = _number(raw, "parity_tolerance")
    if not 0 < value <= 1e-2:
        raise SpecError(f"{_where('parity_tolerance')} must be in (0, 0.01]. Got {raw!r} instead.")
    return value
