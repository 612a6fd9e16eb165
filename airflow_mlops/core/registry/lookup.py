"""Read the registry: which version an alias points at, a run's versions, one version's state.

Transient errors (server down) propagate everywhere here: "does not exist" must never be mistaken for
"cannot tell".
"""

from __future__ import annotations

from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.registry.errors import _error_code, _mlflow_exception
from airflow_mlops.core.registry.lease import LOCK_SUFFIX

READY = "READY"
PENDING = "PENDING_REGISTRATION"
FAILED = "FAILED_REGISTRATION"


def validate_model_name(name: str) -> str:
    """Registered model names are used in search filters; refuse what would break them."""
    text = str(name)
    if not text.strip() or any(c in text for c in "'\"`\n\r") or text.endswith(LOCK_SUFFIX):
        raise SpecError(
            f"The model name must be a non-empty name without quotes or line breaks, not ending in "
            f"{LOCK_SUFFIX!r}. Got {text!r} instead."
        )
    return text


# -- reading --------------------------------------------------------------------------------------
def alias_version(client: Any, name: str, alias: str) -> str | None:
    """The version ``alias`` points at, or None when the model or the alias does not exist.

    Transient errors (server down) propagate: "no champion" must never be mistaken for "cannot tell".
    """
    try:
        model = client.get_registered_model(name)
    except _mlflow_exception() as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    version = (model.aliases or {}).get(alias)
    return None if version is None else str(version)


def is_complete(version: Any) -> bool:
    """True when a registration finished: READY and marked complete."""
    return bool(
        str(version.status) == READY and (version.tags or {}).get(contracts.TAG_REGISTRATION_COMPLETE) == "true"
    )


def versions_of_run(client: Any, name: str, run_id: str) -> list[Any]:
    """Versions of ``name`` created from ``run_id``, oldest first."""
    found = client.search_model_versions(f"name = '{validate_model_name(name)}' and run_id = '{_safe_id(run_id)}'")
    return sorted(found, key=lambda v: int(v.version))


def _safe_id(run_id: str) -> str:
    text = str(run_id)
    if not text or not all(c.isalnum() or c in "-_" for c in text):
        raise SpecError(f"An MLflow run id is letters, digits, '-' and '_'. Got {run_id!r} instead.")
    return text


def version_state(client: Any, name: str, version: str) -> dict[str, Any]:
    """Status of one version, JSON-able: ``{"exists", "status", "complete", "message"}``."""
    try:
        found = client.get_model_version(name, str(version))
    except _mlflow_exception() as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return {"exists": False, "status": None, "complete": False, "message": str(exc)}
        raise
    return {
        "exists": True,
        "status": str(found.status),
        "complete": is_complete(found),
        "message": found.status_message or "",
    }
