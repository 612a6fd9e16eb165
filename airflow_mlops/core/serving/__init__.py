"""Serving: a registered model version pinned, loaded and explained, as every serving-side check sees it.

Scoring, explanation, monitoring, reproducibility and the gate share it. Public API: ``resolve_model_version``
and ``ModelReference`` (pin a version by alias or number, with its ONNX sha256), ``load_serving_model``
(download and verify it, never unpickling), ``ServingModel``, ``ModelSpec``, ``Prediction`` and ``Task``,
``run_transformer`` (the version's feature transforms bound to its dimensions),
``baseline_from_reference``, ``occlusion_contributions``, ``explained_score`` and ``explained_output``
(modules: ``resolve`` asks the registry, ``load`` downloads, ``model`` checks the graph and predicts,
``explanations`` computes occlusion contributions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.serving.explanations import (
        baseline_from_reference,
        explained_output,
        explained_score,
        occlusion_contributions,
    )
    from airflow_mlops.core.serving.load import load_serving_model, run_transformer
    from airflow_mlops.core.serving.model import ModelSpec, Prediction, ServingModel, Task
    from airflow_mlops.core.serving.resolve import ModelReference, resolve_model_version

__all__ = [
    "ModelReference",
    "ModelSpec",
    "Prediction",
    "ServingModel",
    "Task",
    "baseline_from_reference",
    "explained_output",
    "explained_score",
    "load_serving_model",
    "occlusion_contributions",
    "resolve_model_version",
    "run_transformer",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ModelReference": "resolve",
        "ModelSpec": "model",
        "Prediction": "model",
        "ServingModel": "model",
        "Task": "model",
        "baseline_from_reference": "explanations",
        "explained_output": "explanations",
        "explained_score": "explanations",
        "load_serving_model": "load",
        "occlusion_contributions": "explanations",
        "resolve_model_version": "resolve",
        "run_transformer": "load",
    },
)
