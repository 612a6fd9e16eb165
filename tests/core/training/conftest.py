"""Real data for the training tests, and one model trained on January flights, shared by the session."""

from __future__ import annotations

import pandas as pd
import pytest

from airflow_mlops.core.training import TrainingResult, train_model
from tests.core.training.support import FLIGHTS, spec_of
from tests.support.data import bike_sharing, flights


@pytest.fixture(scope="session")
def january() -> pd.DataFrame:
    return flights(months=[1], sample=6000)


@pytest.fixture(scope="session")
def bikes() -> pd.DataFrame:
    return bike_sharing().iloc[:6000].reset_index(drop=True)


@pytest.fixture(scope="session")
def trained(january: pd.DataFrame) -> TrainingResult:
    return train_model(january, spec_of(FLIGHTS))
