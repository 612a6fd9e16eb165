from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.core.backtest import InMemoryRegistry
from airflow_mlops.core.errors import SourceNotFoundError


def test_versions_count_from_one_and_promotion_moves_the_alias() -> None:
    registry = InMemoryRegistry("m")
    result: Any = object()  # the registry only holds the training result
    with pytest.raises(SourceNotFoundError, match="no champion yet"):
        _ = registry.champion
    first = registry.register(result, 10, "initial")
    second = registry.register(result, 20, "2013-02")
    registry.promote(first.version, "initial")
    registry.promote(second.version, "2013-02")
    assert (first.version, second.version) == ("1", "2")
    assert registry.champion is second and second.reference_id == "v2"
    assert registry.promotions[-1] == {"version": "2", "previous": "1", "at": "2013-02"}
    with pytest.raises(SourceNotFoundError, match="no version '9'"):
        registry.promote("9", "later")
