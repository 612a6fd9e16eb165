"""Shared data of the validation tests: a small frame with awkward column names and its suite's JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from airflow_mlops.core import validation as v

REPO = Path(__file__).resolve().parents[3]
TEMPERATURE = "Température °C"  # unicode and a space
SPACED = "dep delay"


def reference_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    delay = pd.array(rng.normal(5, 20, n).round().astype("int64"), dtype="Int32")
    delay[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame(
        {
            "distance": rng.integers(100, 2000, n).astype("int64"),
            "delay": delay,
            "carrier": rng.choice(["AA", "DL", "UA"], n).astype(object),
            TEMPERATURE: rng.normal(10, 5, n),
            SPACED: rng.choice(["early", "late", "on time"], n).astype(object),
            "cancelled": (rng.random(n) < 0.1).astype("int8"),
            "tailnum": [f"N{i:05d}" for i in rng.integers(0, 100_000, n)],
            "ts": pd.date_range("2013-01-01", periods=n, freq="h"),
            "flag": rng.random(n) < 0.5,
        }
    )


def expectations_of(suite: Any, etype: str, column: str | None = None) -> list[dict[str, Any]]:
    found = [e for e in v.suite_to_dict(suite)["expectations"] if e["type"] == etype]
    return [e for e in found if column is None or e["kwargs"].get("column") == column]
