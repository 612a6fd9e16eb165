"""The drift policy's state across runs: one small JSON file per monitored subject under the storage
root, written atomically and guarded by a generation counter against concurrent checks."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.drift.policy import DriftPolicy, Observation, PolicyDecision, decide
from airflow_mlops.core.errors import ArtifactError

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot


def state_key(subject: str) -> str:
    """A file-name-safe key for a monitored subject (a model name or a reference)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", subject).strip("._") or "default"


def state_uri(root: StorageRoot, pipeline: str, subject: str) -> str:
    return root.layout(pipeline, contracts.KIND_DRIFT, "_policy", f"{state_key(subject)}.json")


def load_state(root: StorageRoot, uri: str) -> dict[str, Any]:
    """The stored state, or an empty one when the file does not exist yet."""
    if not root.exists(uri):
        return {}
    try:
        state = json.loads(root.read_bytes(uri))
    except ValueError as exc:
        raise ArtifactError(f"The drift policy state {uri!r} is not valid JSON: {exc}") from exc
    if not isinstance(state, dict):
        raise ArtifactError(f"The drift policy state {uri!r} must be a JSON object.")
    return state


def save_state(root: StorageRoot, uri: str, state: Mapping[str, Any], expected_generation: int) -> None:
    """Write ``state`` atomically, refusing if another run wrote the file since it was read.

    :raises ArtifactError: the stored generation is no longer ``expected_generation`` (a concurrent
        check); the caller reloads and decides again.
    """
    current = int(load_state(root, uri).get("generation", 0))
    if current != expected_generation:
        raise ArtifactError(
            f"The drift policy state {uri!r} changed while this check ran (generation {current}, expected "
            f"{expected_generation}): another check of the same model wrote it."
        )
    root.write_bytes(uri, json.dumps(state, indent=1, sort_keys=True).encode("utf-8"))


def decide_and_save(
    root: StorageRoot, uri: str, policy: DriftPolicy, observation: Observation, attempts: int = 3
) -> PolicyDecision:
    """Load the state, decide, save; on a concurrent write, start over (up to ``attempts`` times)."""
    for attempt in range(attempts):
        state = load_state(root, uri)
        decision, new_state = decide(policy, state, observation)
        if decision.status == "stale":
            return decision
        try:
            save_state(root, uri, new_state, int(state.get("generation", 0)))
        except ArtifactError:
            if attempt == attempts - 1:
                raise
            continue
        return decision
    raise ArtifactError(f"Could not update the drift policy state {uri!r}.")  # pragma: no cover
