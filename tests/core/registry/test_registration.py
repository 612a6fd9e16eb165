"""Registration is idempotent per run and never half-done."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts, registry
from airflow_mlops.core.errors import ArtifactError, SpecError
from tests.core.registry.support import NAME, Flaky, register, training_run, versions


def test_register_copies_lineage_and_evidence_and_a_retry_returns_the_same_version(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)
    first = register(client, run_id)
    assert (first.version, first.created, first.completed, first.status) == ("1", True, False, "READY")
    version = client.get_model_version(NAME, "1")
    assert version.run_id == run_id and version.source == f"runs:/{run_id}/onnx"
    tags = version.tags
    assert tags[contracts.TAG_ONNX_SHA256] == client.get_run(run_id).data.tags[contracts.TAG_ONNX_SHA256]
    assert tags[contracts.TAG_DATASET_URI].endswith("data.parquet") and "unrelated" not in tags
    assert tags[contracts.TAG_SOURCE_RUN_ID] == run_id and tags[contracts.TAG_GATE_PASSED] == "true"
    assert tags[contracts.TAG_GATE_EVIDENCE_URI].endswith("decision.json")
    assert tags[contracts.TAG_REGISTRATION_COMPLETE] == "true"
    assert "**Gate: passed**" in version.description and "roc_auc: 0.71" in version.description
    again = register(client, run_id)
    assert (again.version, again.created, again.completed) == ("1", False, False)
    assert len(versions(client)) == 1
    other = register(client, training_run(client, tmp_path))
    assert other.version == "2" and len(versions(client)) == 2


def test_failure_after_creation_deletes_the_version_when_the_registry_answers(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)
    marker = contracts.TAG_REGISTRATION_COMPLETE
    flaky = Flaky(client, {"set_model_version_tag": lambda args: args[2] == marker})
    with pytest.raises(ConnectionError):
        register(flaky, run_id)
    assert versions(client) == []  # no half-registered version is left behind
    assert register(client, run_id).created


def test_failure_with_the_registry_gone_leaves_an_unmarked_version_that_a_retry_completes(
    client: Any, tmp_path: Path
) -> None:
    run_id = training_run(client, tmp_path)
    marker = contracts.TAG_REGISTRATION_COMPLETE
    down = Flaky(client, {"set_model_version_tag": lambda args: args[2] == marker,
                          "delete_model_version": lambda args: True})  # fmt: skip
    with pytest.raises(ConnectionError):
        register(down, run_id)
    (half,) = versions(client)
    assert contracts.TAG_REGISTRATION_COMPLETE not in half.tags
    with pytest.raises(registry.VersionNotPromotable, match="registration did not finish"):
        registry.promote(client, NAME, "1", expected=None)
    assert client.get_registered_model(NAME).aliases == {}
    resumed = register(client, run_id)
    assert (resumed.version, resumed.created, resumed.completed) == ("1", False, True)
    assert [str(v.version) for v in versions(client)] == ["1"]
    assert registry.promote(client, NAME, "1", expected=None).changed


def test_a_version_that_stays_pending_times_out_and_a_failed_one_is_replaced(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)

    class Pending(Flaky):
        status = "PENDING_REGISTRATION"

        def __getattr__(self, name: str) -> Any:
            real = super().__getattr__(name)
            if name not in ("create_model_version", "get_model_version"):
                return real

            def call(*args: Any, **kwargs: Any) -> Any:
                found = real(*args, **kwargs)
                found._status = self.status
                return found

            return call

    clock = iter(range(0, 10_000, 10))
    stuck = Pending(client, {})
    with pytest.raises(ArtifactError, match="still PENDING_REGISTRATION after 30 s; a retry resumes the wait"):
        register(stuck, run_id, ready_timeout=30, sleep=lambda s: None, clock=lambda: float(next(clock)))
    failing = Pending(client, {})
    failing.status = "FAILED_REGISTRATION"
    with pytest.raises(ArtifactError, match=r"failed to register version 2 .* It was deleted"):
        register(failing, run_id, sleep=lambda s: None)
    assert [str(v.version) for v in versions(client)] == []  # both attempts cleaned up after themselves
    assert register(client, run_id).version == "3"


def test_duplicates_of_one_run_collapse_to_the_oldest_version(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path)
    client.create_registered_model(NAME)
    for _ in range(2):  # as two racing attempts would leave them
        client.create_model_version(NAME, f"runs:/{run_id}/onnx", run_id, await_creation_for=0)
    result = register(client, run_id)
    assert (result.version, result.created, result.completed) == ("1", False, True)
    assert [str(v.version) for v in versions(client)] == ["1"]


def test_model_names_and_run_ids_that_would_break_a_filter_are_refused(client: Any) -> None:
    with pytest.raises(SpecError, match="without quotes"):
        registry.register_version(client, "x' or name='y", "abc", source="s", tags={}, description="")
    with pytest.raises(SpecError, match="run id is letters, digits"):
        registry.register_version(client, NAME, "abc' or 1=1", source="s", tags={}, description="")
