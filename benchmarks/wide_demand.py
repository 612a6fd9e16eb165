"""The wide-table case of the scoring benchmark: 54 numeric features, a 7-class LightGBM model.

Built from real data: the bike sharing hourly table (the file the tests read, ``BIKE_SHARING`` in
``tests/support/data.py``, or ``--bike-sharing``), widened the way a demand model would be: the 12
calendar and weather columns, lags of the rentals and of the weather (1 hour to 1 week back),
rolling means and spreads, and cyclic encodings of hour, weekday and day of year. The target is the
hour's rentals ``cnt`` cut into 7 demand levels at its quantiles (0 = quietest). The lags only look
back, so nothing leaks the target. Early rows have missing lags (NaN), which LightGBM reads as
missing, as it would in production.

The model is fitted the way the training stem fits LightGBM (numeric features passed through a
``ColumnTransformer`` untouched) and exported with the project's converter (double-precision trees).
"""

from __future__ import annotations

from typing import Any

WIDE_TARGET = "demand_level"
WIDE_CLASSES = 7
_BASE = ["season", "yr", "mnth", "hr", "holiday", "weekday", "workingday", "weathersit", "temp", "atemp", "hum"]
_BASE.append("windspeed")


def wide_frame(source: str) -> Any:
    """The widened hourly table of ``source`` (bike sharing ``hour.parquet``): 54 numeric feature
    columns, the target, and the hour's timestamp."""
    import numpy as np
    import pandas as pd

    hours = pd.read_parquet(source).sort_values("timestamp").reset_index(drop=True)
    columns: dict[str, Any] = {c: hours[c].astype("float64") for c in _BASE}
    for lag in (1, 2, 3, 6, 12, 24, 48, 168):
        columns[f"cnt_lag_{lag}"] = hours["cnt"].shift(lag)
    for name in ("casual", "registered"):
        for lag in (1, 24, 168):
            columns[f"{name}_lag_{lag}"] = hours[name].shift(lag)
    for name in ("temp", "hum", "windspeed", "weathersit"):
        for lag in (1, 3, 24):
            columns[f"{name}_lag_{lag}"] = hours[name].shift(lag)
    past = hours["cnt"].shift(1)
    for window in (3, 6, 24, 168):
        columns[f"cnt_mean_{window}"] = past.rolling(window, min_periods=1).mean()
    columns["cnt_std_24"] = past.rolling(24, min_periods=2).std()
    for name in ("temp", "hum", "windspeed", "weathersit"):
        columns[f"{name}_mean_24"] = hours[name].shift(1).rolling(24, min_periods=1).mean()
    columns["feels_gap"] = hours["temp"] - hours["atemp"]
    columns["cnt_day_change"] = columns["cnt_lag_1"] - columns["cnt_lag_24"]
    day_of_year = hours["timestamp"].dt.dayofyear.astype("float64")
    for name, value, period in (("hr", hours["hr"], 24), ("weekday", hours["weekday"], 7), ("doy", day_of_year, 366)):
        columns[f"{name}_sin"] = np.sin(2 * np.pi * value / period)
        columns[f"{name}_cos"] = np.cos(2 * np.pi * value / period)
    frame = pd.DataFrame(columns).astype("float64")
    edges = np.quantile(hours["cnt"], np.linspace(0, 1, WIDE_CLASSES + 1)[1:-1])
    frame[WIDE_TARGET] = np.searchsorted(edges, hours["cnt"], side="right").astype("int64")
    frame["timestamp"] = hours["timestamp"]
    return frame


def wide_features(frame: Any) -> list[str]:
    return [c for c in frame.columns if c not in (WIDE_TARGET, "timestamp")]


def wide_classifier(source: str, trees: int, seed: int = 0) -> dict[str, Any]:
    """Fit the wide model; returns the native pipeline, ONNX bytes, training spec and LightGBM text model."""
    import numpy as np
    from lightgbm import LGBMClassifier
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    from tests.support.models import export

    frame = wide_frame(source)
    numeric = wide_features(frame)
    x = frame[numeric].astype(np.float32)
    features = ColumnTransformer([("numeric", "passthrough", numeric)], remainder="drop")
    estimator = LGBMClassifier(
        n_estimators=trees, num_leaves=31, learning_rate=0.05, verbose=-1, n_jobs=1, random_state=seed
    )
    native = Pipeline([("features", features), ("model", estimator)]).fit(x, frame[WIDE_TARGET])
    spec = {
        "task": "multiclass",
        "target": WIDE_TARGET,
        "numeric_features": numeric,
        "categorical_features": [],
        "classes": [int(c) for c in native.classes_],
        "onnx_inputs": [{"name": c, "column": c, "type": "float"} for c in numeric],
        "vocabulary": {},
    }
    return {
        "native": native,
        "onnx_bytes": export(native, numeric, [], classifier=True),
        "spec": spec,
        "lightgbm_text": estimator.booster_.model_to_string().encode(),
        "frame": frame,
    }
