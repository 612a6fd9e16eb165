"""The estimator section of a training spec: LightGBM (with this package's defaults) or any
scikit-learn compatible estimator named by its import path."""

from __future__ import annotations

import builtins
import importlib
from dataclasses import dataclass, field
from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.metrics import Task
from airflow_mlops.core.training.spec_fields import _mapping, _reject_unknown, _text, _where

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
