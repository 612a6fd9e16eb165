"""Fixtures shared by the drift tests."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.support import drift as flights_drift
from tests.support.data import flights


@pytest.fixture(scope="session")
def scored() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The champion's reference and a labelled December batch it scored."""
    model, reference = flights_drift.model_and_reference()
    labelled = model.score(flights_drift.with_weather(flights([12], sample=4000)))
    return reference, labelled
