"""Occlusion explanations: per-row feature contributions through the ONNX graph, with ONNX Runtime only.

The one implementation behind the scored file's top-k contribution columns (``explain_top_k``) and
the occlusion path of :func:`airflow_mlops.core.scoring.explain.explain_row`, so the same row gets the
same contributions from both.

The contribution of feature j to a row's score is ``score(row) - score(row with feature j set to the
baseline value)``; the baseline row holds each feature's median or most frequent value in the
training reference sample. The score is the one the shadow report compares models by: for binary
models the probability of the positive class (the larger of the two sorted classes, as
:mod:`airflow_mlops.core.metrics` defines it), whatever the row's predicted label; for multiclass the
probability of the row's predicted class; for regression the value. It shows how much each feature,
alone, moves this row's score away from a typical row. It is not SHAP: with interactions the
contributions do not sum to the score's gap to the baseline score. Cost: one extra model run per
feature.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.onnx_model import MISSING_CATEGORY, OnnxInput, feed_arrow
from airflow_mlops.core.serving.model import POSITIVE_CLASS_INDEX, ModelSpec, Prediction, ServingModel

if TYPE_CHECKING:
    import numpy as np


def baseline_from_reference(reference: Any, inputs: Sequence[OnnxInput]) -> dict[str, Any]:
    """The baseline row of occlusion explanations: per feature, the median (numeric) or the most frequent
    value (categorical, ties to the smallest) of the training reference sample (a pyarrow table)."""
    import numpy as np

    feed = feed_arrow(reference, inputs)
    baseline: dict[str, Any] = {}
    for item in inputs:
        values = feed[item.name].reshape(-1)
        if item.type == "float":
            finite = values[~np.isnan(values)]
            baseline[item.name] = float(np.median(finite)) if len(finite) else math.nan
        else:
            present = values[values != MISSING_CATEGORY]
            if not len(present):
                baseline[item.name] = MISSING_CATEGORY
                continue
            labels, counts = np.unique(present.astype(str), return_counts=True)
            baseline[item.name] = str(labels[np.argmax(counts)])
    return baseline


def explained_output(spec: ModelSpec) -> str:
    """What the contributions are contributions to, in words (for reports and the CLI)."""
    if spec.task == "binary":
        return f"probability of class {spec.positive_class} (the positive class)"
    return "probability of the predicted class" if spec.is_classifier else "predicted value"


def explained_score(spec: ModelSpec, prediction: Prediction, predicted: np.ndarray | None) -> np.ndarray:
    """The score the contributions explain, one per row (see the module docstring).

    :param predicted: multiclass only: per row, the index of the class whose probability is explained
        (the class predicted for the row before any feature was occluded).
    """
    import numpy as np

    if prediction.probabilities is None:
        return prediction.values.astype(np.float32)
    if spec.task == "binary":
        return prediction.probabilities[:, POSITIVE_CLASS_INDEX]
    return np.take_along_axis(prediction.probabilities, predicted[:, None], axis=1)[:, 0]  # type: ignore[index]


def _occluded(model: ServingModel, feed: Mapping[str, np.ndarray], item: OnnxInput, rows: int) -> Prediction:
    """The model's prediction with ``item`` set to its baseline value in every row."""
    import numpy as np

    value = model.baseline[item.name]  # type: ignore[index]
    dtype = np.float32 if item.type == "float" else object
    outputs = model.onnx.run_feed({**feed, item.name: np.full((rows, 1), value, dtype=dtype)})
    if model.spec.is_classifier:
        probabilities = np.asarray(outputs[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float32)
        return Prediction(values=np.empty(0), probabilities=probabilities)
    return Prediction(values=np.asarray(outputs[contracts.ONNX_OUTPUT_REGRESSION]).reshape(-1), probabilities=None)


def require_baseline(model: ServingModel) -> None:
    """:raises SpecError: ``model`` was loaded without the baseline row occlusion needs."""
    if model.baseline is None:
        raise SpecError(
            f"Explanations need a baseline row, and model {model.name!r} version {model.version} was loaded "
            "without one (its run has no reference sample artifact)."
        )


def occlusion_contributions(model: ServingModel, feed: Mapping[str, np.ndarray], prediction: Prediction) -> np.ndarray:
    """Per-row feature contributions by occlusion: a float32 array of shape (rows, features), one column
    per ``model.spec.inputs`` in order.

    :param feed: the graph's inputs for the rows (as :func:`~airflow_mlops.core.onnx_model.feed_arrow` makes).
    :param prediction: the model's prediction for ``feed``.
    :raises SpecError: the model was loaded without a baseline row.
    """
    import numpy as np

    require_baseline(model)
    rows = len(prediction.values)
    predicted = prediction.probabilities.argmax(axis=1) if prediction.probabilities is not None else None
    score = explained_score(model.spec, prediction, predicted)
    contributions = np.empty((rows, len(model.spec.inputs)), dtype=np.float32)
    for j, item in enumerate(model.spec.inputs):
        contributions[:, j] = score - explained_score(model.spec, _occluded(model, feed, item, rows), predicted)
    return contributions
