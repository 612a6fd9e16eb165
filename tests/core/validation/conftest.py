"""Module-scoped fixtures of the validation tests.

Great Expectations takes 7-14 s to import; every test here that needs it goes through the module-scoped
``suite`` fixture so the import happens once per process and the suite is inferred once per module.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from airflow_mlops.core import validation as v
from tests.core.validation.support import reference_frame


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return reference_frame()


@pytest.fixture(scope="module")
def suite(reference: pd.DataFrame) -> Any:
    return v.infer_suite(reference, name="test.inferred", source="reference_frame()")
