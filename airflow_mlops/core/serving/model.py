"""The serving model: a registered model version's ONNX graph and training spec, ready to score.

:class:`ServingModel` checks the graph against the ONNX model contract of its task when it is built,
and :meth:`ServingModel.predict` checks every row got a usable prediction. Loading one from the
registry is :func:`airflow_mlops.core.serving.load.load_serving_model`; nothing here unpickles.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, DataError, SpecError
from airflow_mlops.core.features.spec import FeatureTransforms
from airflow_mlops.core.onnx_model import OnnxInput, OnnxModel, inputs_from_spec

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

Task = Literal["binary", "multiclass", "regression"]
POSITIVE_CLASS_INDEX = 1  # binary: the larger of the two sorted classes, as airflow_mlops.core.metrics defines it


@dataclass(frozen=True)
class ModelSpec:
    """What scoring needs from the training spec artifact (``contracts.ARTIFACT_SPEC``).

    :param task: ``binary``, ``multiclass`` or ``regression``.
    :param inputs: graph inputs and the frame columns that feed them.
    :param classes: class labels in the order of the ``probabilities`` output (classifiers only).
    :param target: the label column the model was trained on (informational).
    :param vocabulary: per categorical feature, the values the model encodes (the training spec's
        ``vocabulary``); any other value is an unseen category to it. None when the spec has none.
    :param transforms: the version's own feature transforms (the training spec's ``transforms``): its
        graph reads their output, so every caller runs them first.
    """

    task: Task
    inputs: tuple[OnnxInput, ...]
    classes: tuple[Any, ...] = ()
    target: str | None = None
    vocabulary: Mapping[str, frozenset[str]] | None = None
    transforms: FeatureTransforms = field(default_factory=FeatureTransforms)

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> ModelSpec:
        task = raw.get("task")
        if task not in ("binary", "multiclass", "regression"):
            raise SpecError(
                f"The training spec's 'task' must be 'binary', 'multiclass' or 'regression'. Got {task!r} instead."
            )
        classes = tuple(raw.get("classes") or ())
        if task != "regression":
            if len(classes) < 2 or len({str(c) for c in classes}) != len(classes):
                raise SpecError(
                    f"A {task} training spec must list at least two distinct 'classes'. Got {list(classes)!r}."
                )
            if task == "binary" and len(classes) != 2:
                raise SpecError(f"A binary training spec must list exactly two 'classes'. Got {list(classes)!r}.")
        target = raw.get("target")
        vocabulary = raw.get("vocabulary")
        return cls(
            task=task,
            inputs=tuple(inputs_from_spec(raw)),
            classes=classes if task != "regression" else (),
            target=str(target) if target is not None else None,
            vocabulary=_vocabulary(vocabulary) if isinstance(vocabulary, Mapping) else None,
            transforms=FeatureTransforms.from_mapping(raw.get("transforms"), where="transforms"),
        )

    @property
    def is_classifier(self) -> bool:
        return self.task != "regression"

    @property
    def feature_columns(self) -> list[str]:
        return [i.column for i in self.inputs]

    @property
    def input_columns(self) -> list[str]:
        """The columns a batch must carry: those the graph reads, less those the version's feature
        transforms produce, plus those the transforms read."""
        return self.transforms.raw_columns(self.feature_columns)

    @property
    def probability_columns(self) -> list[str]:
        return [f"{contracts.PROBABILITY_COLUMN_PREFIX}{c}" for c in self.classes]

    @property
    def positive_class(self) -> Any:
        """The class a binary model's score is the probability of (None for other tasks)."""
        return self.classes[POSITIVE_CLASS_INDEX] if self.task == "binary" else None


def _vocabulary(raw: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """The training spec's ``vocabulary`` (feature -> kept values) as sets of strings."""
    if not all(isinstance(v, list | tuple) for v in raw.values()):
        raise SpecError(f"The training spec's 'vocabulary' must map each feature to a list of values. Got {raw!r}.")
    return {str(k): frozenset(str(v) for v in values) for k, values in raw.items()}


@dataclass(frozen=True)
class Prediction:
    """The outputs of one batch: ``values`` (labels or regression values) and class probabilities."""

    values: np.ndarray
    probabilities: np.ndarray | None

    def score(self, task: Task) -> np.ndarray:
        """One number per row to compare models by: P(positive class) for binary (the second class),
        the probability of the predicted class for multiclass, the value for regression."""
        import numpy as np

        if self.probabilities is None:
            return self.values
        if task == "binary":
            return self.probabilities[:, POSITIVE_CLASS_INDEX]
        return np.asarray(self.probabilities.max(axis=1))


@dataclass(frozen=True, eq=False)
class ServingModel:
    """A registered model version ready to score: its ONNX graph, its training spec and where it came from.

    Build it with :meth:`from_bytes` (or :func:`load_serving_model` from the registry).
    """

    name: str
    version: str
    onnx: OnnxModel
    spec: ModelSpec
    alias: str | None = None
    baseline: Mapping[str, Any] | None = None
    # Another runtime computing the graph's outputs from the same feed (serving.runtime 'compiled',
    # :mod:`airflow_mlops.core.serving.compiled`); None runs the ONNX graph.
    runner: Any = None

    @classmethod
    def from_bytes(
        cls,
        model_bytes: bytes,
        spec: Mapping[str, Any],
        *,
        name: str,
        version: str,
        expected_sha256: str | None,
        threads: int = 1,
        alias: str | None = None,
        baseline: Mapping[str, Any] | None = None,
    ) -> ServingModel:
        """Check the bytes against ``expected_sha256``, load them and check the graph keeps the contract.

        :raises IntegrityError: the bytes do not hash to ``expected_sha256`` or are not a valid model.
        :raises SpecError: the graph's outputs do not follow the ONNX model contract for the spec's task.
        """
        model_spec = ModelSpec.from_mapping(spec)
        onnx = OnnxModel(model_bytes, model_spec.inputs, expected_sha256=expected_sha256, threads=threads)
        model = cls(name=str(name), version=str(version), onnx=onnx, spec=model_spec, alias=alias, baseline=baseline)
        model._check_outputs()
        return model

    @property
    def sha256(self) -> str:
        return self.onnx.sha256

    @property
    def runtime(self) -> str:
        return "onnx" if self.runner is None else "compiled"

    def _output(self, name: str) -> Any:
        return next((o for o in self.onnx.session.get_outputs() if o.name == name), None)

    def _check_outputs(self) -> None:
        needed = (
            [contracts.ONNX_OUTPUT_LABEL, contracts.ONNX_OUTPUT_PROBABILITIES]
            if self.spec.is_classifier
            else [contracts.ONNX_OUTPUT_REGRESSION]
        )
        missing = [n for n in needed if n not in self.onnx.output_names]
        if missing:
            raise SpecError(
                f"Model {self.name!r} version {self.version} is a {self.spec.task} model but its ONNX graph "
                f"lacks output(s) {missing} (it has {self.onnx.output_names}); the ONNX model contract expects "
                f"{needed}. Was it exported with ZipMap, or by an incompatible trainer?"
            )
        if self.spec.is_classifier:
            shape = self._output(contracts.ONNX_OUTPUT_PROBABILITIES).shape
            width = shape[1] if len(shape) == 2 else None
            if isinstance(width, int) and width != len(self.spec.classes):
                raise SpecError(
                    f"Model {self.name!r} version {self.version}: the 'probabilities' output has {width} columns "
                    f"but the spec lists {len(self.spec.classes)} classes {list(self.spec.classes)!r}."
                )

    def prediction_type(self) -> pa.DataType:
        import pyarrow as pa

        if not self.spec.is_classifier:
            return pa.float32()
        kind = self._output(contracts.ONNX_OUTPUT_LABEL).type
        return pa.string() if "string" in kind else pa.int64()

    def predict(self, feed: Mapping[str, np.ndarray], *, first_row: int = 0) -> Prediction:
        """Run the graph on a prepared feed and check every row got a usable prediction.

        :param first_row: position of the feed's first row in the partition, for error messages.
        :raises DataError: the model produced NaN for some rows (the message names the feature
            columns that are missing or infinite in those rows: this model does not accept them there).
        """
        import numpy as np

        outputs = (self.runner or self.onnx).run_feed(feed)
        if self.spec.is_classifier:
            values = np.asarray(outputs[contracts.ONNX_OUTPUT_LABEL]).reshape(-1)
            probabilities = np.asarray(outputs[contracts.ONNX_OUTPUT_PROBABILITIES], dtype=np.float32)
            if probabilities.ndim != 2 or probabilities.shape[1] != len(self.spec.classes):
                raise SpecError(
                    f"Model {self.name!r} version {self.version} returned probabilities of shape "
                    f"{probabilities.shape}; the contract expects (rows, {len(self.spec.classes)})."
                )
            bad = np.asarray(np.isnan(probabilities).any(axis=1))
            prediction = Prediction(values=values, probabilities=probabilities)
        else:
            values = np.asarray(outputs[contracts.ONNX_OUTPUT_REGRESSION], dtype=np.float32).reshape(-1)
            bad = np.asarray(~np.isfinite(values))
            prediction = Prediction(values=values, probabilities=None)
        rows = len(next(iter(feed.values()))) if feed else 0
        if len(values) != rows or (prediction.probabilities is not None and prediction.probabilities.shape[0] != rows):
            raise ArtifactError(
                f"Model {self.name!r} version {self.version} returned {len(values)} predictions for {rows} rows."
            )
        if bad.any():
            self._explain_invalid(feed, bad, first_row)
        return prediction

    def _explain_invalid(self, feed: Mapping[str, np.ndarray], bad: np.ndarray, first_row: int) -> None:
        import numpy as np

        culprits = [
            i.column
            for i in self.spec.inputs
            if i.type == "float" and not np.isfinite(feed[i.name][bad].astype(np.float32)).all()
        ]
        where = (
            f"those rows hold missing values (NaN/null) or infinities in feature column(s) {culprits}, "
            "which this model does not accept"
            if culprits
            else "no feature column is missing there: the values may be out of the model's range"
        )
        raise DataError(
            f"Model {self.name!r} version {self.version} produced no valid prediction (NaN) for {int(bad.sum())} "
            f"row(s), the first at row {first_row + int(np.flatnonzero(bad)[0])} of the partition; {where}."
        )
