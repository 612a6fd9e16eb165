"""The LightGBM text model of a trained pipeline, logged beside the ONNX graph for ``serving.runtime: compiled``.

The serving worker compiles its trees itself (:mod:`airflow_mlops.core.serving.compiled`); what the run
stores is LightGBM's own text format (``Booster.save_model``), never native code, with its sha256 as the
run tag ``contracts.TAG_LIGHTGBM_SHA256`` so the worker can check the bytes before compiling them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.storage import sha256_bytes


def lightgbm_text_model(pipeline: Any) -> bytes | None:
    """The fitted LightGBM booster of ``pipeline``'s ``model`` step as LightGBM text (its best iteration
    when early stopping chose one, as ``predict`` uses); None for any other estimator."""
    estimator = getattr(pipeline, "named_steps", {}).get("model")
    booster = getattr(estimator, "booster_", None) if type(estimator).__module__.startswith("lightgbm") else None
    if booster is None:
        return None
    with tempfile.TemporaryDirectory(prefix="mlops-lightgbm-") as folder:
        path = Path(folder) / "model.txt"
        booster.save_model(str(path))
        return path.read_bytes()


def write_lightgbm_text(pipeline: Any, folder: Path) -> dict[str, str]:
    """Write the text model into the run's artifact ``folder``; return the tag that records its sha256
    (nothing for a model that is not LightGBM)."""
    text = lightgbm_text_model(pipeline)
    if text is None:
        return {}
    target = folder / contracts.ARTIFACT_LIGHTGBM_TEXT
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(text)
    return {contracts.TAG_LIGHTGBM_SHA256: sha256_bytes(text)}
