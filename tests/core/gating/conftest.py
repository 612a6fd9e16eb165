"""The gate tests' data and models: real flights rows and small models trained on them, once per session."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.core.gating.support import Exported, train
from tests.support.data import flights


@pytest.fixture(scope="session")
def evaluation() -> pd.DataFrame:
    return flights(months=[4], sample=5000)


@pytest.fixture(scope="session")
def good() -> Exported:
    return train(flights(months=[2, 3], sample=8000))


@pytest.fixture(scope="session")
def weak() -> Exported:
    """A real but poor model: logistic regression on distance alone."""
    return train(flights(months=[2, 3], sample=8000), estimator="logistic", numeric=["distance"], categorical=[])


@pytest.fixture(scope="session")
def shuffled() -> Exported:
    return train(flights(months=[2, 3], sample=8000), shuffle_labels=True)
