"""Explain one prediction of a registered model version: for debugging a single example.

For one input row it reports what the model saw at every stage: the raw inputs, the values fed to the
ONNX graph (after dtype coercion and missing-category filling), the columns the fitted preprocessing
produced (one-hot and numeric), each feature's contribution, and the prediction of both the native
model and the served ONNX graph, so that a disagreement between the two shows at once.

Contributions: for LightGBM, the exact TreeSHAP values of the native booster (``pred_contrib``), in
raw-score units (log-odds for binary, the predicted class's margin for multiclass, the value for
regression); they sum with the bias to the raw score. One-hot columns are summed back to their
categorical feature. Other estimators get occlusion contributions through the ONNX graph (the score
minus the score with that feature set to the training reference's typical value), which do not sum:
the same computation, on the same score, as the scored file's ``explain_top_k`` columns
(:mod:`airflow_mlops.core.serving.explanations`): for binary models the probability of the positive
class, for multiclass that of the predicted class.

This is a debugging tool, not a serving path: it loads the native model, which MLflow unpickles.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import ArtifactError, DataError, SpecError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.features.apply import Transformer
    from airflow_mlops.core.serving.model import Prediction, ServingModel
    from airflow_mlops.core.serving.resolve import ModelReference

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Explanation:
    """One explained prediction; :meth:`to_dict` is JSON-able."""

    model: dict[str, Any]
    inputs: dict[str, Any]
    features_fed: dict[str, Any]
    transformed: dict[str, float]
    method: str
    explained_output: str
    contributions: list[dict[str, Any]]
    transformed_contributions: dict[str, float]
    bias: float | None
    raw_score: float | None
    native: dict[str, Any] | None
    onnx: dict[str, Any]
    native_onnx_difference: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "inputs": self.inputs,
            "features_fed": self.features_fed,
            "transformed": self.transformed,
            "method": self.method,
            "explained_output": self.explained_output,
            "contributions": self.contributions,
            "transformed_contributions": self.transformed_contributions,
            "bias": self.bias,
            "raw_score": self.raw_score,
            "native": self.native,
            "onnx": self.onnx,
            "native_onnx_difference": self.native_onnx_difference,
        }

    def render(self) -> str:
        """A short human-readable summary (the CLI prints it before the JSON)."""
        lines = [
            f"Model {self.model['name']} v{self.model['version']} ({self.model['task']}), run {self.model['run_id']}",
            f"ONNX prediction: {self.onnx}",
        ]
        if self.native is not None:
            lines.append(f"Native prediction: {self.native} (difference {self.native_onnx_difference:.3g})")
        lines.append(f"Contributions to the {self.explained_output} ({self.method}):")
        if self.bias is not None:
            lines.append(f"  {'(bias)':<28} {self.bias:+.4f}")
        for item in self.contributions:
            lines.append(f"  {item['feature']:<28} {item['contribution']:+.4f}   value {item['value']!r}")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """A JSON-able scalar (numpy and pandas scalars, NaN as None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if isinstance(value, str | int | float | bool) else str(value)


def row_frame(row: Mapping[str, Any], model: ServingModel, transformer: Transformer | None = None) -> pd.DataFrame:
    """A one-row frame of ``row``'s feature columns; a version with feature transforms takes the columns
    they read and runs them (with ``transformer``, which holds the dimensions of its joins) as scoring does,
    unless the row already holds every feature (a serving-log row, transformed when it was served).

    :raises DataError: a feature is missing from the row (missing *values* are fine: pass None).
    """
    import pandas as pd

    if not isinstance(row, Mapping):
        raise SpecError(f"The row to explain must be a mapping of column to value. Got {type(row).__name__}.")
    features = model.spec.feature_columns
    if model.spec.transforms and all(c in row for c in features):
        return pd.DataFrame([{c: row[c] for c in features}])  # a serving-log row: transformed as it was served
    needed = model.spec.input_columns
    missing = [c for c in needed if c not in row]
    if missing:
        raise DataError(
            f"The row lacks feature column(s) {missing} of model {model.name!r} v{model.version}; it needs "
            f"{needed} (give None for a missing value)."
        )
    frame = pd.DataFrame([{c: row[c] for c in needed}])
    if not model.spec.transforms:
        return frame
    if transformer is None:
        raise SpecError(f"Model {model.name!r} v{model.version} has feature transforms: pass their transformer.")
    transforms = model.spec.transforms
    times = {*transforms.timezones, *(j.as_of.column for j in transforms.joins if j.as_of)}
    for column in times & set(needed):  # a row given as JSON holds its times as text
        if isinstance(row[column], str):
            frame[column] = pd.to_datetime(frame[column])
    return transformer.apply_frame(frame)[model.spec.feature_columns]


def read_row(
    root: Any, row: Mapping[str, Any] | str | None, input_uri: str | None, row_index: Any = 0
) -> tuple[dict[str, Any], int | None]:
    """The row to explain: ``row`` (a mapping or its JSON), or row ``row_index`` of the Parquet file
    ``input_uri`` (inside ``root``, or a local file). Returns the row and its index (None for a given row).

    :raises SpecError: neither or both are given, or the index is out of range.
    """
    import json

    import pyarrow.parquet as pq

    from airflow_mlops.core.monitoring import locate

    if (row in (None, "", {})) == (not input_uri):
        raise SpecError("Give either 'row' (a mapping of column to value) or 'input_uri' with 'row_index'.")
    if row not in (None, "", {}):
        if isinstance(row, str):
            text = row
            try:
                row = json.loads(text)
            except ValueError as exc:
                raise SpecError(f"'row' must be a mapping or its JSON. Got {text[:200]!r}.") from exc
        if not isinstance(row, Mapping):
            raise SpecError(f"'row' must be a mapping of column to value. Got {type(row).__name__}.")
        return dict(row), None
    try:
        index = int(row_index)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"'row_index' must be a non-negative integer. Got {row_index!r}.") from exc
    source, uri = locate(root, str(input_uri))
    with source.filesystem.open_input_file(source.fs_path(uri)) as handle:
        parquet = pq.ParquetFile(handle)
        rows = parquet.metadata.num_rows
        if not 0 <= index < rows:
            raise SpecError(f"'row_index' {index} is out of range: {input_uri!r} has {rows} rows.")
        table = parquet.read()
    return table.slice(index, 1).to_pylist()[0], index


def _feature_of(column: str, categorical: list[str]) -> str:
    """The input feature a transformed column comes from (``numeric__x`` -> x, ``categorical__f_v`` -> f)."""
    group, _, rest = column.partition("__")
    if group == "categorical":
        owners = [f for f in categorical if rest.startswith(f + "_")]
        if owners:
            return max(owners, key=len)
    return rest or column


def _onnx_prediction(model: ServingModel, fed: Mapping[str, np.ndarray]) -> tuple[dict[str, Any], Prediction]:
    """The served graph's prediction for the row, as reported, and as the model returned it."""
    prediction = model.predict(fed)
    if prediction.probabilities is None:
        return {"value": _plain(prediction.values[0])}, prediction
    probabilities = prediction.probabilities[0].astype("float64")
    result = {
        "label": _plain(prediction.values[0]),
        "probabilities": {str(c): float(p) for c, p in zip(model.spec.classes, probabilities, strict=True)},
    }
    return result, prediction


def _onnx_scores(prediction: Prediction) -> np.ndarray:
    """The row's class probabilities (classifiers) or value (regression), as float64."""
    import numpy as np

    if prediction.probabilities is None:
        return np.asarray(prediction.values, dtype=np.float64)
    return np.asarray(prediction.probabilities[0], dtype=np.float64)


def _occlusion(model: ServingModel, fed: Mapping[str, np.ndarray], prediction: Prediction) -> dict[str, float]:
    """Per-feature occlusion contributions: the same computation as the scored file's top-k columns."""
    from airflow_mlops.core.serving.explanations import occlusion_contributions

    values = occlusion_contributions(model, fed, prediction)[0]
    return {item.column: float(value) for item, value in zip(model.spec.inputs, values, strict=True)}


@dataclass(frozen=True)
class _NativeView:
    """What the native (pickled) pipeline says about the row; ``per_column`` only for LightGBM."""

    transformed: dict[str, float]
    prediction: dict[str, Any]
    difference: float
    per_column: dict[str, float]
    bias: float | None
    raw_score: float | None


def _native_view(
    pipeline: Any, model: ServingModel, fed: Mapping[str, np.ndarray], onnx_scores: np.ndarray
) -> _NativeView:
    """The fitted preprocessing's columns, the native prediction and, for LightGBM, exact TreeSHAP values."""
    import numpy as np
    import pandas as pd

    x = pd.DataFrame({i.name: fed[i.name][:, 0] for i in model.spec.inputs})
    matrix = pipeline.named_steps["features"].transform(x)
    names = [str(n) for n in pipeline.named_steps["features"].get_feature_names_out()]
    transformed = {n: float(v) for n, v in zip(names, np.asarray(matrix, dtype=np.float64)[0], strict=True)}
    native: dict[str, Any]
    if model.spec.is_classifier:
        native_scores = np.asarray(pipeline.predict_proba(x), dtype=np.float64)[0]
        native = {"probabilities": {str(c): float(p) for c, p in zip(model.spec.classes, native_scores, strict=True)}}
    else:
        native_scores = np.asarray(pipeline.predict(x), dtype=np.float64)
        native = {"value": float(native_scores[0])}
    difference = float(np.max(np.abs(native_scores - onnx_scores)))
    estimator = pipeline.named_steps["model"]
    if not hasattr(estimator, "booster_"):
        return _NativeView(transformed, native, difference, {}, None, None)
    width = len(names) + 1
    contrib = np.asarray(estimator.booster_.predict(np.asarray(matrix), pred_contrib=True), dtype=np.float64)[0]
    block = int(np.argmax(onnx_scores)) if model.spec.task == "multiclass" else 0
    values = contrib[block * width : (block + 1) * width]
    per_column = {n: float(v) for n, v in zip(names, values[:-1], strict=True)}
    return _NativeView(transformed, native, difference, per_column, float(values[-1]), float(values.sum()))


def _per_feature(model: ServingModel, per_column: Mapping[str, float]) -> dict[str, float]:
    """TreeSHAP values of the transformed columns summed back to their input feature (one-hot included)."""
    categorical = [i.column for i in model.spec.inputs if i.type == "string"]
    totals: dict[str, float] = dict.fromkeys(model.spec.feature_columns, 0.0)
    for column, value in per_column.items():
        totals[_feature_of(column, categorical)] = totals.get(_feature_of(column, categorical), 0.0) + value
    return totals


def _native_pipeline(client: Any, ref: ModelReference) -> Any:
    """The native (pickled) pipeline of the version's run, or None when the run has none."""
    from airflow_mlops.core.gating.inputs import load_native_model

    try:
        return load_native_model(client, client.get_run(ref.run_id))
    except ArtifactError as exc:
        log.warning("%s; explaining through the ONNX graph by occlusion", exc)
        return None


def _identity(ref: ModelReference, model: ServingModel) -> dict[str, Any]:
    return {
        "name": ref.name,
        "version": ref.version,
        "alias": ref.alias,
        "run_id": ref.run_id,
        "onnx_sha256": model.sha256,
        "task": model.spec.task,
        "classes": [_plain(c) for c in model.spec.classes],
    }


def explain_row(
    client: Any, ref: ModelReference, row: Mapping[str, Any], root: Any = None, sql_engine: Any = None
) -> Explanation:
    """Explain the prediction of model version ``ref`` for ``row`` (see the module docstring).

    A version with feature transforms explains the row after them, as it scored it: ``row`` holds the
    columns they read, and ``root`` (the storage root) holds the dimension tables of their joins
    (``sql_engine``, a connection id -> a SQLAlchemy engine, reaches those kept in a SQL database).

    :raises DataError: the row lacks a feature or holds a value the model cannot read.
    :raises ArtifactError: the model's artifacts are missing.
    """
    from airflow_mlops.core.onnx_model import feed
    from airflow_mlops.core.serving.explanations import explained_output
    from airflow_mlops.core.serving.load import load_serving_model, run_transformer

    model = load_serving_model(client, ref, with_baseline=True)
    frame = row_frame(row, model, run_transformer(client, ref.run_id, model, root, sql_engine))
    fed = feed(frame, model.spec.inputs)
    onnx, prediction = _onnx_prediction(model, fed)
    pipeline = _native_pipeline(client, ref)
    native = _native_view(pipeline, model, fed, _onnx_scores(prediction)) if pipeline is not None else None
    if native is not None and native.per_column:
        method, totals = "lightgbm_pred_contrib", _per_feature(model, native.per_column)
        explained = {
            "binary": f"log-odds of class {model.spec.positive_class}",
            "multiclass": f"raw margin of class {onnx.get('label')}",
            "regression": "predicted value",
        }[model.spec.task]
    else:
        method, explained, totals = "onnx_occlusion", explained_output(model.spec), _occlusion(model, fed, prediction)
    inputs = {c: _plain(frame.iloc[0][c]) for c in model.spec.feature_columns}
    return Explanation(
        model=_identity(ref, model),
        inputs=inputs,
        features_fed={i.column: _plain(fed[i.name][0, 0]) for i in model.spec.inputs},
        transformed=native.transformed if native is not None else {},
        method=method,
        explained_output=explained,
        contributions=[
            {"feature": name, "contribution": value, "value": inputs.get(name)}
            for name, value in sorted(totals.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        ],
        transformed_contributions={k: v for k, v in native.per_column.items() if v != 0.0} if native else {},
        bias=native.bias if native is not None else None,
        raw_score=native.raw_score if native is not None else None,
        native=native.prediction if native is not None else None,
        onnx=onnx,
        native_onnx_difference=native.difference if native is not None else None,
    )
