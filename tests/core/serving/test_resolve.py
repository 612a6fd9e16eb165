"""Registry resolution: every refusal is one ModelVersionError that names the model and what was asked for."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import (
    IntegrityError,
    ModelVersionError,
    ModelVersionNotFoundError,
    ModelVersionNotReadyError,
    ModelVersionUnverifiableError,
    SourceNotFoundError,
    SpecError,
)
from airflow_mlops.core.serving import resolve_model_version
from tests.support import models


def test_a_registered_version_resolves_by_alias_and_by_number(registry: tuple[Any, str]) -> None:
    client, experiment_id = registry
    trained = models.flights_classifier("sklearn")
    registered = models.register(client, trained, "resolved", experiment_id=experiment_id)
    by_alias = resolve_model_version(client, "resolved", alias=contracts.ALIAS_CHAMPION)
    assert (by_alias.version, by_alias.alias, by_alias.onnx_sha256) == (registered.version, "champion", trained.sha256)
    by_number = resolve_model_version(client, "resolved", alias="ignored", version=int(registered.version))
    assert (by_number.version, by_number.alias, by_number.run_id) == (registered.version, None, by_alias.run_id)


def test_refusals_are_model_version_errors_naming_what_was_asked(registry: tuple[Any, str]) -> None:
    client, experiment_id = registry
    trained = models.flights_classifier("sklearn")
    models.register(client, trained, "untagged_version", experiment_id=experiment_id, tag_version=False)
    registered = models.register(client, trained, "retagged_version", experiment_id=experiment_id)
    client.set_model_version_tag("retagged_version", registered.version, contracts.TAG_ONNX_SHA256, "f" * 64)
    cases = [
        (dict(name="retagged_version", alias="gold"), ModelVersionNotFoundError, SourceNotFoundError,
         "'retagged_version' has no version with alias 'gold'"),
        (dict(name="retagged_version", version="99"), ModelVersionNotFoundError, SourceNotFoundError,
         "has no version 99"),
        (dict(name="no_such_model", alias="champion"), ModelVersionNotFoundError, SourceNotFoundError,
         "'no_such_model' has no version with alias 'champion'"),
        (dict(name="untagged_version", alias="champion"), ModelVersionUnverifiableError, IntegrityError,
         r"alias 'champion'\) carries no 'mlops\.onnx_sha256' tag"),
        (dict(name="retagged_version", alias="champion"), ModelVersionUnverifiableError, IntegrityError,
         "one of them was changed"),
    ]  # fmt: skip
    for asked, kind, builtin, message in cases:
        name = asked.pop("name")
        with pytest.raises(kind, match=message) as caught:
            resolve_model_version(client, name, **asked)
        error = caught.value
        assert isinstance(error, ModelVersionError) and isinstance(error, builtin) and not error.retryable
        assert (error.model, error.alias, error.version) == (name, asked.get("alias"), asked.get("version"))


def test_a_version_not_ready_yet_is_retryable() -> None:
    pending = SimpleNamespace(version="4", status="PENDING_REGISTRATION", run_id="r", tags={})
    client = SimpleNamespace(get_model_version_by_alias=lambda name, alias: pending)
    with pytest.raises(
        ModelVersionNotReadyError, match=r"version 4 \(model 'm' alias 'champion'\) is PENDING"
    ) as caught:
        resolve_model_version(client, "m", alias="champion")
    assert caught.value.retryable and (caught.value.model, caught.value.alias) == ("m", "champion")


def test_missing_arguments_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="'model_name' parameter is required"):
        resolve_model_version(object(), "", alias="champion")
    with pytest.raises(SpecError, match="alias' to resolve or a pinned 'model_version'"):
        resolve_model_version(object(), "m")
