"""Shadow scoring: the same batches scored by the ``challenger`` alias, compared with the champion.

The report gives the agreement rate and both score distributions (summary, quantiles, KS statistic,
PSI) and, when the batch carries the label (the model's target column), the quality of both models on
the same labelled rows (:func:`airflow_mlops.core.metrics.compute_metrics`, the metrics training and
the gate report). Each model reads the batch through its own version's feature transforms: the
challenger's are bound separately when they differ from the champion's. The shadow never changes or
fails the served output: every failure becomes the report's reason.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.onnx_model import feed_arrow
from airflow_mlops.core.scoring.reservoir import _Reservoir
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.load import load_serving_model
from airflow_mlops.core.serving.model import Prediction, ServingModel
from airflow_mlops.core.serving.resolve import resolve_model_version

if TYPE_CHECKING:
    import numpy as np

    from airflow_mlops.core.features.apply import Transformer

SHADOW_SAMPLE_ROWS = 100_000
REGRESSION_AGREEMENT_TOLERANCE = 0.1  # shadow: two regression predictions agree within 10 % of the larger
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


class _ShadowTracker:
    """Streaming comparison of the champion's and the challenger's predictions on the same rows."""

    def __init__(self, champion: ServingModel, challenger: ServingModel, seed: int, label: str | None = None) -> None:
        self.champion, self.challenger, self.label = champion, challenger, label
        self.rows = 0
        self.agree = 0
        self.error: str | None = None
        self._sums = {"champion": [0.0, 0.0], "challenger": [0.0, 0.0]}
        self._extremes = {"champion": [math.inf, -math.inf], "challenger": [math.inf, -math.inf]}
        self._abs_diff_sum = 0.0
        self._abs_diff_max = 0.0
        self._labels: dict[str, dict[str, int]] = {"champion": {}, "challenger": {}}
        self._sample = _Reservoir(SHADOW_SAMPLE_ROWS, seed + 1)

    def update(self, champion: Prediction, challenger: Prediction, truth: Any = None) -> None:
        """Add one batch: both models' predictions and, with a label column, its values (an Arrow array)."""
        import numpy as np

        task = self.champion.spec.task
        a = np.asarray(champion.score(task), dtype=np.float64)
        b = np.asarray(challenger.score(self.challenger.spec.task), dtype=np.float64)
        if self.champion.spec.is_classifier:
            agree = np.asarray(champion.values).astype(str) == np.asarray(challenger.values).astype(str)
            for who, values in (("champion", champion.values), ("challenger", challenger.values)):
                labels, counts = np.unique(np.asarray(values).astype(str), return_counts=True)
                for label, count in zip(labels.tolist(), counts.tolist(), strict=True):
                    self._labels[who][label] = self._labels[who].get(label, 0) + int(count)
        else:
            agree = np.abs(a - b) <= REGRESSION_AGREEMENT_TOLERANCE * np.maximum(np.abs(a), np.abs(b))
        self.rows += len(a)
        self.agree += int(agree.sum())
        for who, values in (("champion", a), ("challenger", b)):
            self._sums[who][0] += float(values.sum())
            self._sums[who][1] += float(np.square(values).sum())
            if len(values):
                self._extremes[who][0] = min(self._extremes[who][0], float(values.min()))
                self._extremes[who][1] = max(self._extremes[who][1], float(values.max()))
        diff = np.abs(a - b)
        self._abs_diff_sum += float(diff.sum())
        self._abs_diff_max = max(self._abs_diff_max, float(diff.max()) if len(diff) else 0.0)
        chosen = self._sample.select(len(a))
        self._sample.add(self._sample_rows(chosen, a, b, champion, challenger, truth))

    def _sample_rows(
        self, chosen: np.ndarray, a: np.ndarray, b: np.ndarray, champion: Prediction, challenger: Prediction,
        truth: Any,
    ) -> Any:  # fmt: skip
        """The sampled rows: both scores and, with a label, what each model said (for the quality)."""
        import numpy as np
        import pyarrow as pa

        columns: dict[str, Any] = {"champion": a[chosen], "challenger": b[chosen]}
        if self.label is not None and truth is not None:
            columns["label"] = truth.take(pa.array(chosen, pa.int64()))
            for who, prediction in (("champion", champion), ("challenger", challenger)):
                columns[f"{who}.value"] = np.asarray(prediction.values)[chosen]
                probabilities = () if prediction.probabilities is None else np.asarray(prediction.probabilities).T
                for index, column in enumerate(probabilities):
                    columns[f"{who}.p{index}"] = column[chosen]
        return pa.table(columns)

    def report(self, spec: ScoringSpec) -> dict[str, Any]:
        import numpy as np

        report: dict[str, Any] = {
            "status": "failed" if self.error else "ok",
            "error": self.error,
            "partition": spec.partition,
            "input_uri": spec.input_uri,
            "scored_at": spec.scored_at.isoformat(),
            "task": self.champion.spec.task,
            "champion": _identity(self.champion),
            "challenger": _identity(self.challenger),
            "rows": self.rows,
        }
        if self.error or not self.rows:
            return report
        sample = self._sample.result()
        a = sample.column("champion").to_numpy() if sample is not None else np.empty(0)
        b = sample.column("challenger").to_numpy() if sample is not None else np.empty(0)
        report["agreement_rate"] = self.agree / self.rows
        report["agreement"] = (
            "same predicted label"
            if self.champion.spec.is_classifier
            else f"values within {REGRESSION_AGREEMENT_TOLERANCE:.0%} of the larger of the two"
        )
        report["score"] = {
            "definition": {
                "binary": "probability of the positive class (the second class)",
                "multiclass": "probability of the predicted class",
                "regression": "predicted value",
            }[self.champion.spec.task],
            "champion": self._summary("champion", a),
            "challenger": self._summary("challenger", b),
            "mean_abs_difference": self._abs_diff_sum / self.rows,
            "max_abs_difference": self._abs_diff_max,
            "ks_statistic": _ks(a, b),
            "psi": _psi(a, b),
            "sample_rows": len(a),
        }
        if self.champion.spec.is_classifier:
            report["label_share"] = {
                who: {k: v / self.rows for k, v in sorted(counts.items())} for who, counts in self._labels.items()
            }
        if self.label is not None and sample is not None:
            report["quality"] = self._quality(sample)
        return report

    def _quality(self, sample: Any) -> dict[str, Any]:
        """Both models' metrics on the sampled rows whose label is known; an error is the section's reason."""
        import numpy as np
        import pyarrow.compute as pc

        from airflow_mlops.core.metrics import Predictions, compute_metrics

        known = sample.filter(pc.invert(pc.is_null(sample.column("label"), nan_is_null=True)))
        quality: dict[str, Any] = {"label": self.label, "rows": known.num_rows}
        if not known.num_rows:
            return quality
        truth = known.column("label").to_numpy(zero_copy_only=False)
        for who, model in (("champion", self.champion), ("challenger", self.challenger)):
            values = known.column(f"{who}.value").to_numpy(zero_copy_only=False)
            width = len(model.spec.classes)
            probabilities = (
                np.column_stack([known.column(f"{who}.p{i}").to_numpy() for i in range(width)]) if width else None
            )
            try:
                quality[who] = compute_metrics(
                    model.spec.task, truth, Predictions(values, probabilities, values), model.spec.classes
                )
            except ValueError as exc:  # a label the model does not know: the section says so, the report stands
                quality[who] = {}
                quality["error"] = f"{who}: {exc}"
        return quality

    def _summary(self, who: str, sample: np.ndarray) -> dict[str, Any]:
        import numpy as np

        total, squares = self._sums[who]
        mean = total / self.rows
        quantiles = np.quantile(sample, QUANTILES) if len(sample) else [math.nan] * len(QUANTILES)
        return {
            "mean": mean,
            "std": math.sqrt(max(squares / self.rows - mean * mean, 0.0)),
            "min": self._extremes[who][0],
            "max": self._extremes[who][1],
            "quantiles": {f"p{int(q * 100):02d}": float(v) for q, v in zip(QUANTILES, quantiles, strict=True)},
        }


def _identity(model: ServingModel) -> dict[str, Any]:
    return {"name": model.name, "version": model.version, "alias": model.alias, "onnx_sha256": model.sha256}


def _ks(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    import numpy as np

    if not len(a) or not len(b):
        return math.nan
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    gap = np.abs(np.searchsorted(a, grid, side="right") / len(a) - np.searchsorted(b, grid, side="right") / len(b))
    return float(gap.max())


def _psi(a: np.ndarray, b: np.ndarray, bins: int = 10) -> float:
    """Population stability index of ``b`` against ``a`` on the deciles of ``a``."""
    import numpy as np

    if not len(a) or not len(b):
        return math.nan
    edges = np.unique(np.quantile(a, np.linspace(0, 1, bins + 1))[1:-1])
    share_a = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) / len(a)
    share_b = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1) / len(b)
    share_a, share_b = np.clip(share_a, 1e-6, None), np.clip(share_b, 1e-6, None)
    return float(np.sum((share_b - share_a) * np.log(share_b / share_a)))


def _shadow_step(
    tracker: _ShadowTracker,
    shadow: ServingModel | None,
    batch: Any,
    champion: Prediction,
    first_row: int,
    transformer: Transformer | None = None,
) -> str | None:
    """Score the batch with the challenger, through its own feature transforms when it has other ones than
    the champion's (``transformer``); any failure ends the shadow, never the served output."""
    if shadow is None:
        return None
    try:
        own = transformer.apply(batch, count=False) if transformer is not None else batch
        challenger = shadow.predict(feed_arrow(own, shadow.spec.inputs), first_row=first_row)
        labels = batch.column(tracker.label) if tracker.label is not None else None
        tracker.update(champion, challenger, labels)
    except Exception as exc:  # the shadow must not fail the served output, whatever went wrong
        return f"{type(exc).__name__}: {exc}"
    return None


def _shadow_report(
    spec: ScoringSpec,
    champion: ServingModel,
    challenger: ServingModel | None,
    tracker: _ShadowTracker | None,
    skipped: str | None,
    problem: str | None,
) -> dict[str, Any]:
    """The tracker's report, or why there is none: ``skipped`` (no challenger could be loaded) or
    ``failed`` (the challenger cannot score this input)."""
    if tracker is not None:
        return tracker.report(spec)
    return {
        "status": "failed" if problem else "skipped",
        "error": problem or skipped,
        "partition": spec.partition,
        "input_uri": spec.input_uri,
        "scored_at": spec.scored_at.isoformat(),
        "task": champion.spec.task,
        "champion": _identity(champion),
        "challenger": _identity(challenger) if challenger is not None else None,
        "rows": 0,
    }


def load_challenger(
    client: Any,
    name: str,
    *,
    champion: ServingModel,
    alias: str = contracts.ALIAS_CHALLENGER,
    threads: int = 1,
) -> tuple[ServingModel | None, str | None]:
    """The shadow model, or ``(None, reason)`` when there is none to compare with.

    A shadow must never stop the served output, so every failure becomes a reason in the report: no
    version with the alias, the alias pointing at the champion itself, a checksum mismatch, a registry
    error.
    """
    try:
        ref = resolve_model_version(client, name, alias=alias)
        if ref.version == champion.version:
            return None, f"alias {alias!r} points at the champion itself (version {ref.version})"
        return load_serving_model(client, ref, threads=threads), None
    except Exception as exc:  # reported in the shadow report, never raised
        return None, f"{type(exc).__name__}: {exc}"
