"""Feature ablation (ML Test Score D2, "all features are beneficial"): how much the validation metric
drops when one feature's values are taken away from the fitted model.

Each feature is ablated as a group (a categorical feature's one-hot columns go together) by
permuting its raw column in the validation split, seeded, ``repeats`` times, and re-scoring the fitted
pipeline: the mean drop of the spec's selection metric is what the model loses without the feature's
information. It needs no retraining, so it fits in the training run; the spec's ``ablation`` section
bounds its cost (``budget_seconds``, ``max_rows``). Features still unmeasured when the budget runs out
are listed as such. A feature whose drop is at most ``min_drop`` does not help the model: the run
warns about it (and logs the table to MLflow, :func:`log_ablation`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.metrics import METRICS, compute_metrics
from airflow_mlops.core.training.spec_fields import _integer, _mapping, _number, _reject_unknown, _where

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from airflow_mlops.core.training.spec import TrainingSpec

ARTIFACT = "ablation/ablation.json"


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
            from airflow_mlops.core.errors import SpecError

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


@dataclass(frozen=True)
class FeatureAblation:
    """One feature: the mean drop of the metric without its information, and each repeat's drop."""

    feature: str
    drop: float
    drops: tuple[float, ...]
    beneficial: bool


@dataclass(frozen=True)
class AblationReport:
    """What the ablation measured on the validation split."""

    metric: str
    intact: float
    rows: int
    repeats: int
    min_drop: float
    budget_seconds: float
    seconds: float
    features: tuple[FeatureAblation, ...]
    unmeasured: tuple[str, ...]

    @property
    def not_beneficial(self) -> tuple[str, ...]:
        return tuple(f.feature for f in self.features if not f.beneficial)

    def warnings(self) -> tuple[str, ...]:
        """One warning per feature whose removal does not hurt, and one for a budget that ran out."""
        found = tuple(
            f"feature {f.feature!r}: permuting it on the validation split changes {self.metric} by "
            f"{-f.drop:+.4g} (a drop of at most {self.min_drop:g}): removing it does not hurt the model"
            for f in self.features
            if not f.beneficial
        )
        if self.unmeasured:
            found += (
                f"feature ablation stopped at its {self.budget_seconds:g} s budget: "
                f"{list(self.unmeasured)} not measured",
            )
        return found

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "not_beneficial": list(self.not_beneficial)}


def permutation_ablation(
    pipeline: Pipeline, spec: TrainingSpec, x: pd.DataFrame, y: np.ndarray, classes: tuple[Any, ...],
    settings: AblationSpec,
) -> AblationReport:  # fmt: skip
    """Ablate every feature of ``spec`` on the validation rows ``x``/``y`` through the fitted ``pipeline``."""
    import numpy as np

    started = time.perf_counter()
    rng = np.random.default_rng(spec.seed)
    if len(x) > settings.max_rows:
        rows = np.sort(rng.choice(len(x), settings.max_rows, replace=False))
        x, y = x.iloc[rows], y[rows]
    x = x.reset_index(drop=True)
    metric = METRICS[spec.primary_metric]
    intact = _score(pipeline, spec, x, y, classes)
    measured: list[FeatureAblation] = []
    features = list(spec.numeric_features + spec.categorical_features)
    for position, feature in enumerate(features):
        if time.perf_counter() - started > settings.budget_seconds:
            return _report(spec, settings, intact, len(y), started, measured, tuple(features[position:]))
        drops = []
        for _ in range(settings.repeats):
            permuted = x.copy()
            permuted[feature] = x[feature].to_numpy()[rng.permutation(len(x))]
            drops.append(metric.improvement(intact, _score(pipeline, spec, permuted, y, classes)))
        mean = float(np.mean(drops))
        measured.append(FeatureAblation(feature, mean, tuple(float(d) for d in drops), mean > settings.min_drop))
    return _report(spec, settings, intact, len(y), started, measured, ())


def _score(pipeline: Pipeline, spec: TrainingSpec, x: pd.DataFrame, y: np.ndarray, classes: tuple[Any, ...]) -> float:
    from airflow_mlops.core.training.model import predict

    matrix = pipeline.named_steps["features"].transform(x)
    predictions = predict(pipeline.named_steps["model"], matrix, spec, classes)
    return float(compute_metrics(spec.task, y, predictions, classes)[spec.primary_metric])


def _report(
    spec: TrainingSpec, settings: AblationSpec, intact: float, rows: int, started: float,
    measured: list[FeatureAblation], unmeasured: tuple[str, ...],
) -> AblationReport:  # fmt: skip
    return AblationReport(
        metric=spec.primary_metric,
        intact=intact,
        rows=rows,
        repeats=settings.repeats,
        min_drop=settings.min_drop,
        budget_seconds=settings.budget_seconds,
        seconds=time.perf_counter() - started,
        features=tuple(measured),
        unmeasured=unmeasured,
    )


def log_ablation(run_id: str, report: AblationReport) -> dict[str, Any]:
    """Log the report on the training run: ``ablation.<feature>.drop`` metrics, the JSON table
    (:data:`ARTIFACT`) and the ``mlops.ablation.not_beneficial`` tag. Returns the report's dict."""
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    stamp = int(time.time() * 1000)
    metrics = [Metric(f"ablation.{f.feature}.drop", f.drop, stamp, 0) for f in report.features]
    metrics.append(Metric("ablation.seconds", report.seconds, stamp, 0))
    tags = [RunTag("mlops.ablation.not_beneficial", ",".join(report.not_beneficial))]
    client.log_batch(run_id, metrics=metrics, tags=tags)
    payload = report.to_dict()
    client.log_dict(run_id, payload, ARTIFACT)
    return payload


def ablation_summary(report: AblationReport | None) -> Mapping[str, Any] | None:
    """The small part of the report a receipt carries."""
    if report is None:
        return None
    return {
        "metric": report.metric,
        "not_beneficial": list(report.not_beneficial),
        "unmeasured": list(report.unmeasured),
        "seconds": round(report.seconds, 3),
    }
