"""Hyperparameter search plans (ML Test Score M3, "all hyperparameters have been tuned").

Two methods, both scored on the validation split and each trial ended early by LightGBM's early
stopping (the pruning: a trial's trees stop growing when the validation loss stops improving):

- ``grid``: ``trials`` combinations drawn (seeded) from the lists of ``search.space``;
- ``tpe``: Optuna's Tree-structured Parzen Estimator (seeded ``TPESampler``), over ranges
  (``{low, high, log, type}``) or lists of choices, proposing each trial from the scores of the
  previous ones.

Both start with the hand-set parameters (``estimator.params``, trial 0), so every search records the
search's best against what a person chose.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.metrics import METRICS
from airflow_mlops.core.training.search_space import Range

if TYPE_CHECKING:
    from airflow_mlops.core.training.spec import TrainingSpec


class SearchPlan:
    """Proposes the overrides of each trial (:meth:`ask`) and learns their scores (:meth:`tell`)."""

    def __init__(self, spec: TrainingSpec) -> None:
        self.spec = spec
        self._queue: list[dict[str, Any]] = [{}]  # trial 0: the hand-set parameters
        self._study: Any = None
        self._pending: Any = None
        search = spec.search
        if search is None:
            return
        if search.method == "grid":
            self._queue += _grid(spec)
        else:
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            higher = METRICS[search.metric].higher_is_better
            sampler = optuna.samplers.TPESampler(seed=spec.seed, n_startup_trials=min(5, max(1, search.trials // 3)))
            self._study = optuna.create_study(direction="maximize" if higher else "minimize", sampler=sampler)
        self._left = search.trials

    def ask(self) -> dict[str, Any] | None:
        """The next trial's overrides of ``estimator.params``, or None when the budget is spent."""
        if self._queue:
            return self._queue.pop(0)
        if self._study is None or self._left <= 0:
            return None
        self._left -= 1
        self._pending = self._study.ask(_distributions(self.spec))
        return dict(self._pending.params)

    def tell(self, score: float | None) -> None:
        """The validation score of the trial last asked (None: it produced no score)."""
        if self._pending is None:
            return
        import math

        import optuna

        failed = score is None or math.isnan(score)
        state = optuna.trial.TrialState.FAIL if failed else optuna.trial.TrialState.COMPLETE
        self._study.tell(self._pending, None if failed else score, state=state)
        self._pending = None


def _grid(spec: TrainingSpec) -> list[dict[str, Any]]:
    """``trials`` combinations of the grid, drawn with ``spec.seed``."""
    import numpy as np
    from sklearn.model_selection import ParameterGrid

    if spec.search is None:
        return []
    grid = list(ParameterGrid({k: list(v) for k, v in spec.search.space.items() if not isinstance(v, Range)}))
    if len(grid) <= spec.search.trials:
        return grid
    picked = np.random.default_rng(spec.seed).choice(len(grid), spec.search.trials, replace=False)
    return [grid[i] for i in sorted(picked.tolist())]


def _distributions(spec: TrainingSpec) -> dict[str, Any]:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    out: dict[str, Any] = {}
    if spec.search is None:
        return out
    for name, dimension in spec.search.space.items():
        if isinstance(dimension, Range):
            if dimension.integer:
                out[name] = IntDistribution(int(dimension.low), int(dimension.high), log=dimension.log)
            else:
                out[name] = FloatDistribution(dimension.low, dimension.high, log=dimension.log)
        else:
            out[name] = CategoricalDistribution(list(dimension))
    return out


def search_comparison(trials: Sequence[Any], metric: str) -> dict[str, Any] | None:
    """The search's best trial against the hand-set parameters (trial 0), on the validation metric.

    :param trials: the run's :class:`~airflow_mlops.core.training.model.TrialResult` list.
    """
    scored = [t for t in trials if metric in t.metrics]
    hand_set = next((t for t in scored if t.number == 0), None)
    if hand_set is None or len(scored) < 2:
        return None
    spec = METRICS[metric]
    best = max(scored, key=lambda t: spec.improvement(t.metrics[metric], 0.0))
    return {
        "metric": metric,
        "hand_set": hand_set.metrics[metric],
        "best": best.metrics[metric],
        "gain": spec.improvement(best.metrics[metric], hand_set.metrics[metric]),
        "best_trial": best.number,
        "best_params": dict(best.params),
        "trials": len(scored),
    }


def log_search_comparison(run_id: str, comparison: Mapping[str, Any]) -> None:
    """``search.hand_set_validation_<metric>``, ``search.best_validation_<metric>`` and the gain on the
    training run, and the best trial's number and parameters as tags."""
    import json
    import time

    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    stamp, name = int(time.time() * 1000), comparison["metric"]
    metrics = [
        Metric(f"search.hand_set_validation_{name}", float(comparison["hand_set"]), stamp, 0),
        Metric(f"search.best_validation_{name}", float(comparison["best"]), stamp, 0),
        Metric("search.gain_over_hand_set", float(comparison["gain"]), stamp, 0),
    ]
    tags = [
        RunTag("mlops.search.best_trial", str(comparison["best_trial"])),
        RunTag("mlops.search.best_params", json.dumps(comparison["best_params"], sort_keys=True, default=str)[:5000]),
    ]
    MlflowClient().log_batch(run_id, metrics=metrics, tags=tags)
