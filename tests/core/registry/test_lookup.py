"""Reading the registry tells "no champion" from "no answer"."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_mlops.core import registry
from tests.core.registry.support import NAME


def test_alias_lookup_tells_no_champion_from_no_answer(
    client: Any, three: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    assert registry.alias_version(client, "never_registered", "champion") is None
    assert registry.alias_version(client, NAME, "champion") is None
    from mlflow import MlflowClient

    dead = MlflowClient(tracking_uri="http://127.0.0.1:9", registry_uri="http://127.0.0.1:9")
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        registry.alias_version(dead, NAME, "champion")
