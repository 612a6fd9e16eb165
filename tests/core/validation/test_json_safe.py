"""JSON-safe copies of numpy, pandas and non-finite values."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from airflow_mlops.core import validation as v


def test_jsonable_handles_numpy_pandas_and_non_finite_numbers() -> None:
    value = {
        "b": np.bool_(True),
        "i": np.int32(3),
        "f": [np.float64("nan"), math.inf, -math.inf, 1.5],
        "na": pd.NA,
        "ts": pd.Timestamp("2013-01-01T05:00", tz="UTC"),
        "set": {2, 1},
    }
    out = v.jsonable(value)
    assert out == {
        "b": True,
        "i": 3,
        "f": ["NaN", "Infinity", "-Infinity", 1.5],
        "na": None,
        "ts": "2013-01-01T05:00:00+00:00",
        "set": [1, 2],
    }
    assert type(out["b"]) is bool
    json.loads(v.dumps(value))  # strict JSON: no NaN literals
