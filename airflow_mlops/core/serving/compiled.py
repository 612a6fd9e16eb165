"""The ``compiled`` serving runtime: a LightGBM model's trees compiled to machine code with lleaves.

Opt-in (``serving.runtime: compiled``) and behind the same guarantees as the ONNX path:

- compiled on the worker from the LightGBM text model the training run logged
  (``contracts.ARTIFACT_LIGHTGBM_TEXT``), after its bytes were checked against the sha256 tag recorded
  with it (``contracts.TAG_LIGHTGBM_SHA256``); no native code ever comes from the artifact store;
- the compiled object is cached per worker under ``cache_dir``, keyed by the text model's sha256, the
  compiler's version, its options and the host CPU, so a worker compiles a model version once;
- fed from exactly the feed the ONNX graph gets (:func:`~airflow_mlops.core.onnx_model.feed_arrow`):
  numeric features as the same float32 values (widened to double, exactly, as the graph does before its
  trees), categorical ones one-hot over the training vocabulary, unseen and missing values as all zeros,
  which is how the training pipeline's encoder and so the ONNX graph encode them;
- checked against the ONNX graph at load on a bounded sample (:func:`check_parity`): a mismatch beyond
  the tolerance refuses the runtime.

Its :meth:`CompiledForest.run_feed` returns the ONNX output names, so everything after the model
(prediction checks, output columns, serving log, shadow) is the code the ONNX path runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, IntegrityError, SpecError
from airflow_mlops.core.onnx_model import OnnxInput
from airflow_mlops.core.storage import sha256_bytes

if TYPE_CHECKING:
    import numpy as np

Runtime = Literal["onnx", "compiled"]
RUNTIMES: tuple[str, ...] = ("onnx", "compiled")
EXTRA = "airflow-mlops[compiled]"
PARITY_TOLERANCE = 1e-5  # probabilities (absolute) or regression values (relative to max(|v|, 1))
PARITY_ROWS = 2000
# Compiler options. ``finline=False`` compiles several times faster but predicts slower; blocks of 34
# trees (lleaves' default) keep each block's code in the instruction cache.
COMPILE_OPTIONS: Mapping[str, Any] = {"fblocksize": 34, "finline": True, "fcodemodel": "large"}


def _lleaves() -> Any:
    """lleaves, or a clear error naming the extra that brings it."""
    try:
        import lleaves
    except ImportError as exc:
        raise SpecError(
            f"serving.runtime 'compiled' needs the lleaves compiler, which is not installed ({exc}). Install the "
            f"extra: pip install '{EXTRA}', or use serving.runtime 'onnx'."
        ) from exc
    return lleaves


@dataclass(frozen=True)
class FeatureLayout:
    """How the ONNX feed becomes the matrix the LightGBM trees were fitted on: numeric inputs in order,
    then each categorical input one-hot over its vocabulary (sorted, as training's encoder keeps it)."""

    numeric: tuple[str, ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @classmethod
    def of(cls, inputs: Sequence[OnnxInput], vocabulary: Mapping[str, Any] | None) -> FeatureLayout:
        strings = [i for i in inputs if i.type == "string"]
        if strings and vocabulary is None:
            raise SpecError("The training spec has categorical features but no 'vocabulary': cannot encode them.")
        known = vocabulary or {}
        return cls(
            numeric=tuple(i.name for i in inputs if i.type == "float"),
            categorical=tuple((i.name, tuple(sorted(str(v) for v in known.get(i.column, ())))) for i in strings),
        )

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(len(values) for _, values in self.categorical)

    def matrix(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """The float64 ``(rows, width)`` matrix of a feed (C order, as the compiled code reads it)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        rows = len(next(iter(feed.values()))) if feed else 0
        out = np.zeros((rows, self.width), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            out[:, j] = feed[name][:, 0]
        offset = len(self.numeric)
        for name, values in self.categorical:
            if values:
                codes = pc.index_in(pa.array(feed[name][:, 0], pa.string()), value_set=pa.array(values, pa.string()))
                found = codes.is_valid().to_numpy(zero_copy_only=False)
                index = codes.fill_null(0).to_numpy(zero_copy_only=False)
                out[np.flatnonzero(found), offset + index[found]] = 1.0
            offset += len(values)
        return out


def cache_key(text_sha256: str) -> str:
    """The cache entry of a text model: its sha256, the compiler's versions, options and host CPU."""
    from importlib.metadata import version

    import llvmlite.binding as llvm

    parts = [
        text_sha256,
        version("lleaves"),
        version("llvmlite"),
        repr(sorted(COMPILE_OPTIONS.items())),
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    ]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def compile_forest(text: bytes, cache_dir: str | os.PathLike[str]) -> tuple[Any, float, bool]:
    """Compile (or load from this worker's cache) a LightGBM text model.

    :returns: the compiled lleaves model, the seconds it took, and whether the cache served it.
    """
    lleaves = _lleaves()
    folder = Path(cache_dir) / cache_key(sha256_bytes(text))
    folder.mkdir(parents=True, exist_ok=True)
    model_file, object_file = folder / "model.txt", folder / "forest.o"
    if not model_file.is_file() or model_file.read_bytes() != text:
        _atomic_write(model_file, text)
    started = time.perf_counter()
    cached = object_file.is_file()
    model = lleaves.Model(model_file=str(model_file))
    if cached:
        model.compile(cache=str(object_file), **COMPILE_OPTIONS)
    else:  # compile to a temporary name: a worker killed mid-way leaves no half-written object behind
        with tempfile.TemporaryDirectory(dir=folder, prefix=".compiling-") as tmp:
            partial = Path(tmp) / "forest.o"
            model.compile(cache=str(partial), **COMPILE_OPTIONS)
            os.replace(partial, object_file)
    return model, time.perf_counter() - started, cached


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class CompiledForest:
    """A compiled LightGBM model that answers a feed with the ONNX graph's outputs.

    :param text: the LightGBM text model.
    :param expected_sha256: the sha256 recorded for it at training; the bytes must match.
    :param task: ``binary``, ``multiclass`` or ``regression``.
    :param classes: class labels in probability order (classifiers).
    :param label_type: ``string`` or ``int64``: the type of the ONNX graph's ``label`` output.
    """

    def __init__(
        self,
        text: bytes,
        expected_sha256: str,
        layout: FeatureLayout,
        *,
        task: str,
        classes: Sequence[Any],
        label_type: str,
        cache_dir: str | os.PathLike[str],
        threads: int = 1,
    ) -> None:
        import numpy as np

        actual = sha256_bytes(text)
        if actual != expected_sha256:
            raise IntegrityError(
                f"The LightGBM text model has sha256 {actual}, but {expected_sha256} was recorded at training: "
                "the file was changed. Refusing to compile it."
            )
        self.sha256, self.layout, self.task, self.threads = actual, layout, task, threads
        self.model, self.compile_seconds, self.cached = compile_forest(text, cache_dir)
        if self.model.num_feature() != layout.width:
            raise ArtifactError(
                f"The LightGBM model reads {self.model.num_feature()} features, but the training spec's inputs "
                f"encode to {layout.width}: the text model does not belong to this spec."
            )
        kind = np.dtype(object) if label_type == "string" else np.dtype(np.int64)
        self.labels = np.asarray([str(c) if label_type == "string" else c for c in classes], dtype=kind)

    def run_feed(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The ONNX graph's outputs (``label`` + ``probabilities``, or ``variable``) for a feed."""
        import numpy as np

        predicted = self.model.predict(self.layout.matrix(feed), n_jobs=self.threads)
        if self.task == "regression":
            return {contracts.ONNX_OUTPUT_REGRESSION: np.asarray(predicted, dtype=np.float32).reshape(-1, 1)}
        if self.task == "binary":
            predicted = np.column_stack([1.0 - predicted, predicted])
        probabilities = np.asarray(predicted, dtype=np.float32)
        return {
            contracts.ONNX_OUTPUT_LABEL: self.labels[np.argmax(predicted, axis=1)],
            contracts.ONNX_OUTPUT_PROBABILITIES: probabilities,
        }


@dataclass(frozen=True)
class RuntimeParity:
    """The compiled runtime against the ONNX graph on the same feed."""

    rows: int
    max_difference: float
    label_agreement: float | None
    tolerance: float = PARITY_TOLERANCE

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance and self.label_agreement in (None, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "max_difference": self.max_difference,
            "label_agreement": self.label_agreement,
            "tolerance": self.tolerance,
            "passed": self.passed,
        }


def check_parity(onnx: Any, compiled: CompiledForest, feed: Mapping[str, np.ndarray]) -> RuntimeParity:
    """Run both on ``feed`` and compare; :raises IntegrityError: beyond the tolerance or labels differ."""
    import numpy as np

    expected, actual = onnx.run_feed(feed), compiled.run_feed(feed)
    rows = len(next(iter(feed.values()))) if feed else 0
    if compiled.task == "regression":
        a = np.asarray(expected[contracts.ONNX_OUTPUT_REGRESSION], dtype=np.float64).reshape(-1)
        b = np.asarray(actual[contracts.ONNX_OUTPUT_REGRESSION], dtype=np.float64).reshape(-1)
        difference = np.abs(a - b) / np.maximum(np.abs(a), 1.0)
        agreement = None
    else:
        a = np.asarray(expected[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float64)
        b = np.asarray(actual[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float64)
        difference = np.abs(a - b).reshape(-1) if a.shape == b.shape else np.array([np.inf])
        labels = np.asarray(expected[contracts.ONNX_OUTPUT_LABEL]).reshape(-1).astype(str)
        agreement = float(np.mean(labels == actual[contracts.ONNX_OUTPUT_LABEL].astype(str))) if rows else 1.0
    worst = float(np.nanmax(np.where(np.isnan(difference), np.inf, difference))) if difference.size else 0.0
    parity = RuntimeParity(rows=rows, max_difference=worst, label_agreement=agreement)
    if not parity.passed:
        raise IntegrityError(
            f"The compiled LightGBM model does not compute what the registered ONNX graph computes on {rows} "
            f"sample rows: largest difference {worst:.3g} (tolerance {PARITY_TOLERANCE:g}), label agreement "
            f"{agreement}. Refusing serving.runtime 'compiled'; use 'onnx'."
        )
    return parity
