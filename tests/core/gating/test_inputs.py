"""Loading what the gate evaluates from MLflow runs: checksums, missing pieces, logged parity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.gating.inputs import download_run_artifact, load_run_model, logged_parity
from tests.core.registry.support import client_for, training_run

SPEC = {"task": "binary", "onnx_inputs": [{"name": "distance", "column": "distance", "type": "float"}],
        "parity": {"measure": "max_abs_probability_diff", "value": 3e-8}}  # fmt: skip


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return client_for(tmp_path)


def test_a_run_loads_with_its_recorded_checksum_and_logged_parity(client: Any, tmp_path: Path) -> None:
    run_id = training_run(client, tmp_path, onnx=b"graph", spec=SPEC)
    model = load_run_model(client, run_id, "candidate", native=False)
    assert model.onnx_bytes == b"graph" and model.spec == SPEC and model.run_id == run_id
    assert model.expected_sha256 == client.get_run(run_id).data.tags[contracts.TAG_ONNX_SHA256]
    assert model.logged_parity == 3e-8 and model.native_predict is None
    assert model.training_sample is None  # this run logged no reference sample
    champion = load_run_model(client, run_id, "champion", expected_sha256="a" * 64, version="4", native=True)
    assert champion.expected_sha256 == "a" * 64 and champion.version == "4"
    assert champion.native_predict is None  # no native model logged: the gate falls back to the logged parity


def test_missing_runs_artifacts_and_checksums_are_named(client: Any, tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match=r"There is no MLflow run '0+' \(the candidate\)"):
        load_run_model(client, "0" * 32, "candidate")
    run_id = training_run(client, tmp_path)
    with pytest.raises(SourceNotFoundError, match=f"Run {run_id} has no artifact 'nothing/here.bin'"):
        download_run_artifact(client, run_id, "nothing/here.bin")
    client.delete_tag(run_id, contracts.TAG_ONNX_SHA256)
    with pytest.raises(SpecError, match=r"has no 'mlops\.onnx_sha256' tag"):
        load_run_model(client, run_id, "candidate", native=False)


def test_logged_parity_reads_the_spec_then_the_run_metric() -> None:
    assert logged_parity({"task": "regression", "parity": {"measure": "max_rel_diff", "value": 2e-9}}, {}) == 2e-9
    # a parity in another measure than the task's is not taken for it
    assert logged_parity({"task": "binary", "parity": {"measure": "max_rel_diff", "value": 1.0}}, {}) is None
    assert logged_parity({"task": "binary"}, {"parity_max_abs_probability_diff": 4e-7}) == 4e-7
    assert logged_parity({"task": "binary"}, {}) is None
