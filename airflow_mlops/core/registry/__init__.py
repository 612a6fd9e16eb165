"""Registry: register training runs as MLflow model versions and move the ``champion`` alias, with no
half-states. Registration is idempotent per run and marked complete only once the version is READY and
fully tagged; promotion is a compare-and-set on the alias under a lease, and the previous champion stays
addressable for rollback. Public API: ``register_version``, ``Registration``, ``registration_tags``,
``version_description``, ``model_card_url``, ``version_source``, ``promote``, ``rollback``,
``promotion_history``, ``Promotion``, ``registry_lock``, ``alias_version``, ``versions_of_run``,
``version_state``, ``is_complete``, ``validate_model_name``, the errors ``ChampionMoved``,
``VersionNotPromotable``, ``RegistryLockTimeout``, ``RegistryLeaseLost`` and the constants ``READY``,
``PENDING``, ``FAILED``, ``LOCK_SUFFIX``, ``TAG_LOCK_OWNER``, ``TAG_LOCK_EXPIRES`` (modules:
``registration`` registers a run, ``promotion`` moves aliases, ``lease`` serialises promotions, ``lookup``
reads versions and aliases, ``tags`` builds what a version carries, ``errors`` holds the exceptions)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.registry.errors import (
        ChampionMoved,
        RegistryLeaseLost,
        RegistryLockTimeout,
        VersionNotPromotable,
    )
    from airflow_mlops.core.registry.lease import LOCK_SUFFIX, TAG_LOCK_EXPIRES, TAG_LOCK_OWNER, registry_lock
    from airflow_mlops.core.registry.lookup import (
        FAILED,
        PENDING,
        READY,
        alias_version,
        is_complete,
        validate_model_name,
        version_state,
        versions_of_run,
    )
    from airflow_mlops.core.registry.promotion import Promotion, promote, promotion_history, rollback
    from airflow_mlops.core.registry.registration import Registration, register_version, version_source
    from airflow_mlops.core.registry.tags import model_card_url, registration_tags, version_description

__all__ = [
    "FAILED",
    "LOCK_SUFFIX",
    "PENDING",
    "READY",
    "TAG_LOCK_EXPIRES",
    "TAG_LOCK_OWNER",
    "ChampionMoved",
    "Promotion",
    "Registration",
    "RegistryLeaseLost",
    "RegistryLockTimeout",
    "VersionNotPromotable",
    "alias_version",
    "is_complete",
    "model_card_url",
    "promote",
    "promotion_history",
    "register_version",
    "registration_tags",
    "registry_lock",
    "rollback",
    "validate_model_name",
    "version_description",
    "version_source",
    "version_state",
    "versions_of_run",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "ChampionMoved": "errors",
        "RegistryLeaseLost": "errors",
        "RegistryLockTimeout": "errors",
        "VersionNotPromotable": "errors",
        "LOCK_SUFFIX": "lease",
        "TAG_LOCK_EXPIRES": "lease",
        "TAG_LOCK_OWNER": "lease",
        "registry_lock": "lease",
        "FAILED": "lookup",
        "PENDING": "lookup",
        "READY": "lookup",
        "alias_version": "lookup",
        "is_complete": "lookup",
        "validate_model_name": "lookup",
        "version_state": "lookup",
        "versions_of_run": "lookup",
        "Promotion": "promotion",
        "promote": "promotion",
        "promotion_history": "promotion",
        "rollback": "promotion",
        "Registration": "registration",
        "register_version": "registration",
        "version_source": "registration",
        "model_card_url": "tags",
        "registration_tags": "tags",
        "version_description": "tags",
    },
)
