"""Fixtures of the registry tests: a fresh MLflow store, and three registered versions in it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.core.registry.support import client_for, register, training_run


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return client_for(tmp_path)


@pytest.fixture
def three(client: Any, tmp_path: Path) -> list[str]:
    return [register(client, training_run(client, tmp_path)).version for _ in range(3)]
