"""What each input feature contributed to a fitted model, as the training run records it."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from airflow_mlops.core.training.model import FittedModel
    from airflow_mlops.core.training.spec import TrainingSpec


def feature_importance(fitted: FittedModel, spec: TrainingSpec) -> dict[str, float]:
    """Importance per input feature (one-hot columns summed back to their feature), normalised to sum 1.

    LightGBM: total split gain. Other estimators: ``feature_importances_``, else the absolute
    coefficients (features are standardised, so coefficients are comparable). Empty when neither exists.
    """
    import numpy as np

    estimator = fitted.pipeline.named_steps["model"]
    if spec.estimator.is_lightgbm:
        raw = np.asarray(estimator.booster_.feature_importance(importance_type="gain"), dtype=np.float64)
    elif hasattr(estimator, "feature_importances_"):
        raw = np.asarray(estimator.feature_importances_, dtype=np.float64)
    elif hasattr(estimator, "coef_"):
        coef = np.abs(np.asarray(estimator.coef_, dtype=np.float64))
        raw = coef.reshape(-1, coef.shape[-1]).sum(axis=0)
    else:
        return {}
    columns = fitted.pipeline.named_steps["features"].get_feature_names_out()
    totals = dict.fromkeys(spec.features, 0.0)
    for column, value in zip(columns, raw, strict=True):
        group, _, rest = str(column).partition("__")
        if group == "numeric":
            totals[rest] += float(value)
        else:  # categorical__<feature>_<category>: the longest feature name that prefixes the rest
            owner = max((f for f in spec.categorical_features if rest.startswith(f + "_")), key=len)
            totals[owner] += float(value)
    total = sum(totals.values())
    if total <= 0:
        return dict.fromkeys(totals, 0.0)
    return {name: value / total for name, value in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))}
