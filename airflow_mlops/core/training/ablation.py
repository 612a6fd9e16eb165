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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.metrics import METRICS
from airflow_mlops.core.training.spec_sections import AblationSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.training.spec import TrainingSpec

# What the ablation re-scores: validation rows (raw features) and their labels in, the metric out.
Scorer = Callable[["pd.DataFrame", "np.ndarray"], float]

ARTIFACT = "ablation/ablation.json"


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
    score: Scorer, spec: TrainingSpec, x: pd.DataFrame, y: np.ndarray, settings: AblationSpec
) -> AblationReport:
    """Ablate every feature of ``spec`` on the validation rows ``x``/``y``; ``score`` gives the fitted
    model's metric on a frame of raw features (:func:`~airflow_mlops.core.training.model.validation_scorer`)."""
    import numpy as np

    started = time.perf_counter()
    rng = np.random.default_rng(spec.seed)
    if len(x) > settings.max_rows:
        rows = np.sort(rng.choice(len(x), settings.max_rows, replace=False))
        x, y = x.iloc[rows], y[rows]
    x = x.reset_index(drop=True)
    metric = METRICS[spec.primary_metric]
    intact = score(x, y)
    measured: list[FeatureAblation] = []
    features = list(spec.numeric_features + spec.categorical_features)
    for position, feature in enumerate(features):
        if time.perf_counter() - started > settings.budget_seconds:
            return _report(spec, settings, intact, len(y), started, measured, tuple(features[position:]))
        drops = []
        for _ in range(settings.repeats):
            permuted = x.copy()
            permuted[feature] = x[feature].to_numpy()[rng.permutation(len(x))]
            drops.append(metric.improvement(intact, score(permuted, y)))
        mean = float(np.mean(drops))
        measured.append(FeatureAblation(feature, mean, tuple(float(d) for d in drops), mean > settings.min_drop))
    return _report(spec, settings, intact, len(y), started, measured, ())


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
