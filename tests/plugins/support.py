"""The state the MLOps view shows, built with the registry's and drift policy's own code: a model whose
champion went from version 1 to version 2 after a retrain, the gate evidence of version 2 under the storage
root, and the drift policy's state over three batches (the last one labelled)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow_mlops.core import contracts, registry
from airflow_mlops.core.drift.policy import DriftPolicy, Observation
from airflow_mlops.core.drift.state import decide_and_save, state_uri
from airflow_mlops.core.storage import StorageRoot
from tests.core.registry.support import NAME, register, training_run

PIPELINE = "flights"  # the pipeline tag of tests.core.registry.support's runs
EVIDENCE = f"{PIPELINE}/evidence/2013-04-01/gate/retrain/decision.json"
CARD = f"{PIPELINE}/evidence/2013-04-01/gate/retrain/model_card.html"
DRIFT_REPORT = f"{PIPELINE}/drift/2013-04-08/report.html"


def retrained_model(client: Any, root: StorageRoot, artifact_root: Path | None) -> str:
    """Register two versions, promote version 1 then version 2; return the model name."""
    for _ in range(2):
        register(client, training_run(client, artifact_root))
    registry.promote(client, NAME, "1", expected=None, key="ct/initial/promote")
    root.write_bytes(root.join(EVIDENCE), b'{"verdict": "passed", "champion": {"version": "1"}}')
    root.write_bytes(root.join(CARD), b"<html><body><h1>Model card of the retrained candidate</h1></body></html>")
    client.set_model_version_tag(NAME, "2", contracts.TAG_GATE_EVIDENCE_URI, root.join(EVIDENCE))
    registry.promote(client, NAME, "2", expected="1", key="ct/retrain/promote")
    return NAME


def drift_state(root: StorageRoot) -> str:
    """Three batches through the drift policy (the third drifted, with labels): the state file's URI."""
    uri = state_uri(root, PIPELINE, NAME)
    policy = DriftPolicy.from_mapping({"drift_share": 0.3, "quality_drop": 0.05})
    checks = [
        ("2013-04-01", 0.10, None, 0),
        ("2013-04-08", 0.20, None, 0),
        ("2013-04-15", 0.50, None, 0),
        ("2013-04-15:labelled", 0.50, 0.08, 900),
    ]
    for batch, share, drop, labelled in checks:
        observation = Observation.create(
            batch, f"{batch[:10]}T00:00:00+00:00", "flights_delay/v1", drift_share=share, quality_drop=drop,
            quality_metric="roc_auc" if drop is not None else None, labelled_rows=labelled,
        )  # fmt: skip
        decide_and_save(root, uri, policy, observation)
    root.write_bytes(root.join(DRIFT_REPORT), b"<html><body>drift report of 2013-04-08</body></html>")
    return uri
