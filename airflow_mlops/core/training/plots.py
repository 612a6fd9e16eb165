"""Evaluation plots of a trained model, as PNG files (matplotlib's Agg canvas, no pyplot state).

Classifiers: ROC and precision-recall curves (binary) and the confusion matrix on the test split.
Regressors: predicted against actual, and residuals against predicted. Every model: feature importance.
Figures are drawn on ``matplotlib.figure.Figure`` objects with an explicit Agg canvas, so nothing
depends on a display or on pyplot's global state in a worker process.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

    from airflow_mlops.core.training.result import TrainingResult

MAX_POINTS = 5000
MAX_CURVE_POINTS = 1000


def _figure(width: float = 5.0, height: float = 4.0) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=90)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path, left: float = 0.14) -> None:
    # Fixed margins: tight_layout measures every text box and costs more than drawing the figure.
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.subplots_adjust(left=left, right=0.96, bottom=0.13, top=0.9)
    figure.savefig(path, format="png", metadata={"Software": None})


def _thin(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """At most MAX_CURVE_POINTS points of a curve (a curve per threshold has one per distinct score)."""
    import numpy as np

    if len(x) <= MAX_CURVE_POINTS:
        return x, y
    keep = np.unique(np.linspace(0, len(x) - 1, MAX_CURVE_POINTS).astype(int))
    return x[keep], y[keep]


def _sample(n: int, seed: int) -> np.ndarray:
    import numpy as np

    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_POINTS, replace=False))


def _binary_curves(result: TrainingResult, directory: Path) -> list[str]:
    import numpy as np
    from sklearn.metrics import precision_recall_curve, roc_curve

    positive = result.classes[1]
    truth = np.asarray(result.test_target) == positive
    if truth.all() or not truth.any():
        return []
    score = np.asarray(result.test_predictions.probabilities)[:, 1]
    metrics = result.metrics["test"]
    written = []
    fpr, tpr = _thin(*roc_curve(truth, score)[:2])
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(fpr, tpr, label=f"AUC {metrics.get('roc_auc', float('nan')):.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="False positive rate", ylabel="True positive rate", title=f"ROC, test split (positive = {positive})")
    ax.legend(loc="lower right")
    _save(figure, directory / "roc_curve.png")
    written.append("roc_curve.png")
    precision, recall = _thin(*precision_recall_curve(truth, score)[:2])
    figure = _figure()
    ax = figure.add_subplot()
    ax.plot(recall, precision, label=f"AP {metrics.get('pr_auc', float('nan')):.4f}")
    ax.axhline(truth.mean(), linestyle="--", color="grey", linewidth=1, label=f"base rate {truth.mean():.3f}")
    ax.set(xlabel="Recall", ylabel="Precision", title="Precision-recall, test split")
    ax.legend(loc="upper right")
    _save(figure, directory / "pr_curve.png")
    written.append("pr_curve.png")
    return written


def _confusion(result: TrainingResult, directory: Path) -> list[str]:
    import numpy as np

    from airflow_mlops.core.metrics import class_indices

    classes = list(result.classes)
    # Counted on class positions (one extra for a value that is no class, left out as confusion_matrix
    # leaves out labels it is not given): sorting the labels as text took half a second on 50k rows.
    n = len(classes)
    truth = class_indices(np.asarray(result.test_target), classes, unknown=n)
    predicted = class_indices(np.asarray(result.test_predictions.labels), classes, unknown=n)
    matrix = np.bincount(truth * (n + 1) + predicted, minlength=(n + 1) ** 2).reshape(n + 1, n + 1)[:n, :n]
    size = min(12.0, 3.0 + 0.4 * len(classes))
    figure = _figure(size + 1, size)
    ax = figure.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = range(len(classes))
    ax.set_xticks(ticks, [str(c) for c in classes], rotation=45 if len(classes) > 4 else 0)
    ax.set_yticks(ticks, [str(c) for c in classes])
    if len(classes) <= 20:
        threshold = matrix.max() / 2 if matrix.size else 0
        for i in ticks:
            for j in ticks:
                ax.text(
                    j,
                    i,
                    str(matrix[i, j]),
                    ha="center",
                    va="center",
                    color="white" if matrix[i, j] > threshold else "black",
                )
    ax.set(xlabel="Predicted", ylabel="Actual", title="Confusion matrix, test split")
    _save(figure, directory / "confusion_matrix.png", left=0.18)
    return ["confusion_matrix.png"]


def _regression(result: TrainingResult, directory: Path) -> list[str]:
    import numpy as np

    truth = np.asarray(result.test_target, dtype=np.float64)
    predicted = np.asarray(result.test_predictions.values, dtype=np.float64)
    rows = _sample(len(truth), result.spec.seed)
    truth, predicted = truth[rows], predicted[rows]
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(truth, predicted, s=4, alpha=0.4)
    low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
    ax.plot([low, high], [low, high], linestyle="--", color="grey", linewidth=1)
    ax.set(
        xlabel="Actual",
        ylabel="Predicted",
        title=f"Predicted vs actual, test split (RMSE {result.metrics['test'].get('rmse', float('nan')):.4g})",
    )
    _save(figure, directory / "predicted_vs_actual.png")
    figure = _figure()
    ax = figure.add_subplot()
    ax.scatter(predicted, truth - predicted, s=4, alpha=0.4)
    ax.axhline(0.0, linestyle="--", color="grey", linewidth=1)
    ax.set(xlabel="Predicted", ylabel="Residual (actual - predicted)", title="Residuals, test split")
    _save(figure, directory / "residuals.png")
    return ["predicted_vs_actual.png", "residuals.png"]


def _importance(importance: dict[str, float], directory: Path) -> list[str]:
    if not importance:
        return []
    top = list(importance.items())[:30][::-1]
    figure = _figure(6.0, max(2.5, 0.3 * len(top) + 1))
    ax = figure.add_subplot()
    ax.barh([name for name, _ in top], [value for _, value in top])
    ax.set(xlabel="Share of importance", title="Feature importance")
    longest = max(len(name) for name, _ in top)
    _save(figure, directory / "feature_importance.png", left=min(0.5, 0.05 + 0.016 * longest))
    return ["feature_importance.png"]


def render_plots(result: TrainingResult, directory: Path) -> list[str]:
    """Write the evaluation plots of ``result`` as PNG files under ``directory``; return their names."""
    written: list[str] = []
    if result.spec.is_classifier:
        if result.spec.task == "binary":
            written += _binary_curves(result, directory)
        written += _confusion(result, directory)
    else:
        written += _regression(result, directory)
    written += _importance(result.importance, directory)
    return written
