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
    refit: all                        # all (default for time splits) | train (default for random splits)
    window: 90d                       # optional: the newest N rows (50000) or N days/hours/weeks (90d)
    recency_weight_half_life: 30      # optional, days: newer rows weigh more in fitting
    ablation: {budget_seconds: 60}    # optional: permutation ablation of each feature (validation split)

The spec's sections live in their own modules: :mod:`.spec_fields` (tasks, metric directions and the
validators), :mod:`.estimators` (the estimator section) and :mod:`.spec_sections` (split, search,
categories and features).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.features.spec import FeatureTransforms
from airflow_mlops.core.features.validate import check_transforms
from airflow_mlops.core.metrics import DEFAULT_PRIMARY as DEFAULT_METRIC
from airflow_mlops.core.metrics import METRIC_DIRECTIONS, TASKS, Task
from airflow_mlops.core.training.estimators import (
    DEFAULT_EARLY_STOPPING_ROUNDS,
    LIGHTGBM,
    LIGHTGBM_DEFAULTS,
    EstimatorSpec,
    _estimator,
)
from airflow_mlops.core.training.spec_fields import (
    Refit,
    _boolean,
    _class_weight,
    _features,
    _half_life,
    _integer,
    _mapping,
    _refit,
    _reject_unknown,
    _text,
    _tolerance,
    _where,
    _window,
    declared_features,
    default_refit,
    duration_days,
)
from airflow_mlops.core.training.spec_sections import (
    AblationSpec,
    CategorySpec,
    SearchSpec,
    SplitSpec,
    _categories,
    _search,
    _split,
    _transforms,
    declared_transforms,
)

# Re-exported: callers read the task metrics and the LightGBM defaults from the spec module.
__all__ = [
    "DEFAULT_METRIC",
    "LIGHTGBM",
    "LIGHTGBM_DEFAULTS",
    "METRIC_DIRECTIONS",
    "TASKS",
    "CategorySpec",
    "EstimatorSpec",
    "Refit",
    "SearchSpec",
    "SplitSpec",
    "Task",
    "TrainingSpec",
    "declared_features",
    "declared_transforms",
]


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
    "refit",
    "window",
    "recency_weight_half_life",
    "ablation",
    "transforms",
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
    :param refit: ``all``: after selection (early stopping, search) on the validation split and judgement
        on the test split, refit the chosen configuration on every row and register that model;
        ``train``: register the model fitted on the train split. Default: ``all`` for a time split,
        ``train`` for a random one.
    :param window: train on the most recent rows only, applied before the split: a number of rows, or a
        duration of the split's time column (``90d``, ``12h``, ``4w``). Time splits only.
    :param recency_weight_half_life: days; each row fitted is weighted ``0.5 ** (age / half_life)``,
        its age counted from the newest time of the rows being fitted. Fitting only: validation and
        test metrics stay unweighted. Time splits only.
    :param ablation: optional :class:`~airflow_mlops.core.training.ablation.AblationSpec`: permutation
        ablation of every feature on the validation split, within ``budget_seconds`` (``true`` for defaults).
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
    refit: Refit | None = None
    window: int | str | None = None
    recency_weight_half_life: float | None = None
    ablation: AblationSpec | None = None
    transforms: FeatureTransforms = field(default_factory=FeatureTransforms)

    def __post_init__(self) -> None:
        if self.refit is None:  # the default follows the split method
            object.__setattr__(self, "refit", default_refit(self.split.method))
        self._check_columns()
        self._check_time_fields()
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

    def _check_columns(self) -> None:
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
        check_transforms(self.transforms, self)

    def _check_time_fields(self) -> None:
        """``window`` and ``recency_weight_half_life`` count time on the split's time column."""
        if self.refit not in ("all", "train"):
            raise SpecError(f"{_where('refit')} must be 'all' or 'train'. Got {self.refit!r} instead.")
        for name in ("window", "recency_weight_half_life"):
            if getattr(self, name) is not None and self.split.method != "time":
                raise SpecError(
                    f"{_where(name)} reads the time column of a time split; the split method is "
                    f"{self.split.method!r}. Use split: {{method: time, column: ...}} or remove {name!r}."
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
    def input_columns(self) -> list[str]:
        """The columns of the data the model needs before its transforms run."""
        return self.transforms.raw_columns(self.features)

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

    @property
    def window_days(self) -> float | None:
        """The window as days of the time column, when it is a duration."""
        return duration_days(self.window) if isinstance(self.window, str) else None

    @property
    def window_rows(self) -> int | None:
        """The window as a number of rows, when it is one."""
        return self.window if isinstance(self.window, int) else None

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
            "refit": self.refit,
            "window": self.window,
            "recency_weight_half_life": self.recency_weight_half_life,
            "ablation": self.ablation.to_dict() if self.ablation else None,
            "transforms": self.transforms.to_dict() if self.transforms else None,
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
            refit=_refit(raw.get("refit")),
            window=_window(raw.get("window")),
            recency_weight_half_life=_half_life(raw.get("recency_weight_half_life")),
            ablation=AblationSpec.from_raw(raw.get("ablation")),
            transforms=_transforms(raw),
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
