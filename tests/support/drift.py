"""Flights frames shaped like the drift check's inputs: a training reference and scored batches.

A small gradient-boosting model is fitted on a seeded sample of the reference months so that the
reference and the batches carry real predictions (``prediction``, ``probability_1``) from one model.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from tests.support.data import FLIGHTS_DIR, flights

if TYPE_CHECKING:
    import pandas as pd

NUMERIC = ["sched_dep_time", "sched_arr_time", "distance", "temp", "humid", "wind_speed", "precip", "visib"]
CATEGORICAL = ["carrier", "origin", "dest"]
TARGET = "arr_delayed_15"
IDS = ["sched_dep_ts", "carrier", "flight"]


def training_spec() -> dict[str, Any]:
    return {
        "task": "binary",
        "target": TARGET,
        "numeric_features": NUMERIC,
        "categorical_features": CATEGORICAL,
        "classes": [0, 1],
    }


@lru_cache(maxsize=1)
def _weather() -> pd.DataFrame:
    import pandas as pd

    weather = pd.read_parquet(FLIGHTS_DIR / "weather.parquet")
    return weather.drop(columns=["year", "month", "day", "hour"])


def with_weather(frame: pd.DataFrame) -> pd.DataFrame:
    """Flights with the departure airport's weather of the scheduled hour (a pre-departure feature)."""
    return frame.merge(_weather(), on=["origin", "time_hour"], how="left", validate="many_to_one")


class FlightsModel:
    """A gradient-boosting classifier of ``arr_delayed_15`` on the pre-departure features."""

    def __init__(self, train: pd.DataFrame) -> None:
        from sklearn.ensemble import HistGradientBoostingClassifier

        labelled = train[train[TARGET].notna()]
        self._categories = {c: sorted(labelled[c].dropna().unique()) for c in CATEGORICAL}
        self._model = HistGradientBoostingClassifier(
            max_iter=40, random_state=0, categorical_features="from_dtype"
        ).fit(self._features(labelled), labelled[TARGET].astype(int))

    def _features(self, frame: pd.DataFrame) -> pd.DataFrame:
        import pandas as pd

        out = frame[NUMERIC].astype("float64").copy()
        for column in CATEGORICAL:
            out[column] = pd.Categorical(frame[column], categories=self._categories[column])
        return out

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with the scored-output columns appended."""
        import pandas as pd

        probability = self._model.predict_proba(self._features(frame))[:, 1]
        out = frame.copy()
        out["prediction"] = (probability >= 0.5).astype("int64")
        out["probability_1"] = probability
        out["model_name"] = "flights_delay"
        out["model_version"] = "1"
        out["scored_at"] = pd.Timestamp("2014-01-01", tz="UTC")
        return out.reset_index(drop=True)


@lru_cache(maxsize=4)
def model_and_reference(sample: int = 4000) -> tuple[FlightsModel, pd.DataFrame]:
    """A model fitted on half of a January-March sample; the other half, scored, is the reference."""
    frame = with_weather(flights([1, 2, 3], sample=2 * sample))
    train, reference = frame.iloc[::2], frame.iloc[1::2]
    model = FlightsModel(train)
    columns = NUMERIC + CATEGORICAL + [TARGET]
    return model, model.score(reference[columns])


def serving_log(model: FlightsModel, month: int, sample: int | None = 4000) -> pd.DataFrame:
    """A month of flights as a serving log: ids, features, outputs; no label."""
    frame = with_weather(flights([month], sample=sample))
    return model.score(frame[IDS + [c for c in NUMERIC + CATEGORICAL if c not in IDS]])


def ground_truth(month: int) -> pd.DataFrame:
    """What becomes known after the flights landed: ids and the actual arrival delay."""
    frame = flights([month])
    return frame[[*IDS, "arr_delay"]]
