"""Promote a model version to an alias (``champion``), or roll back, with compare-and-set semantics.

The caller says which version it expects to replace (the one the gate evaluated), and if the alias
moved meanwhile nothing changes and :class:`~airflow_mlops.core.registry.errors.ChampionMoved` is
raised. Promotions of one model are serialised by the lease of :mod:`airflow_mlops.core.registry.lease`.
The previous champion keeps the ``previous_champion`` alias, so a rollback is a promotion of that
version.

Everything here takes an ``MlflowClient``; nothing reads Airflow configuration.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.registry.errors import ChampionMoved, VersionNotPromotable, _error_code, _mlflow_exception
from airflow_mlops.core.registry.lease import DEFAULT_TTL, confirm_lease, registry_lock
from airflow_mlops.core.registry.lookup import alias_version, is_complete, validate_model_name

_UNSET: Any = object()
HISTORY_KEEP = 20  # alias moves kept in the history tag
HISTORY_MAX_CHARS = 4000  # MLflow's SQL stores keep a registered model tag in 5000 characters


@dataclass(frozen=True)
class Promotion:
    """Outcome of :func:`promote` or :func:`rollback`.

    :ivar version: the version the alias points at now.
    :ivar previous_version: the version it pointed at before (now under ``previous_alias``).
    :ivar changed: False when the alias already pointed there (a retry of a finished promotion).
    """

    name: str
    alias: str
    version: str
    previous_alias: str
    previous_version: str | None
    changed: bool
    mode: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "previous_alias": self.previous_alias,
            "previous_version": self.previous_version,
            "changed": self.changed,
            "mode": self.mode,
        }


def promote(
    client: Any,
    name: str,
    version: str,
    *,
    expected: str | None = _UNSET,
    alias: str = contracts.ALIAS_CHAMPION,
    previous_alias: str = contracts.ALIAS_PREVIOUS_CHAMPION,
    clear_aliases: tuple[str, ...] = (contracts.ALIAS_CHALLENGER,),
    key: str = "",
    mode: str = "promote",
    by: str = "",
    expected_run_id: str | None = None,
    lock_timeout: float = 60.0,
    lock_ttl: float = DEFAULT_TTL,
    sleep: Callable[[float], None] = time.sleep,
) -> Promotion:
    """Point ``alias`` at ``version`` if it still points at ``expected``; keep the old one addressable.

    :param expected: the version the caller believes holds the alias (``None``: no holder). Leave it
        out to skip the comparison (a manual promotion).
    :param clear_aliases: aliases removed from ``version`` once it holds ``alias`` (a promoted
        challenger is no longer a challenger).
    :param key: identifies the caller (e.g. the task instance). A retry with the same key after the
        alias already moved is recognised and returns ``changed=False`` instead of failing. The key
        gives no right to another holder's lease: two live tries of one task are serialised too.
    :param lock_ttl: seconds the lease lasts unrenewed; a caller that died holding it delays the
        next promotion by at most this long.
    :param by: who decided the move (a user name), recorded in the history; ``key`` when empty.
    :param expected_run_id: the run the version must come from (the run the gate passed).
    :raises ChampionMoved: the alias points elsewhere than ``expected``; nothing changed.
    :raises VersionNotPromotable: the version is missing, not READY, not completely registered, or
        not from ``expected_run_id``.
    :raises RegistryLeaseLost: this caller stalled past its lease before the alias moved; nothing changed.
    """
    validate_model_name(name)
    version = str(version)
    with registry_lock(client, name, owner=key or mode, timeout=lock_timeout, ttl=lock_ttl, sleep=sleep) as token:
        found = _check_promotable(client, name, version)
        if expected_run_id is not None and str(found.run_id) != str(expected_run_id):
            raise VersionNotPromotable(
                f"Version {version} of {name!r} comes from run {found.run_id}, but the gate passed run "
                f"{expected_run_id}: refusing to promote what was not gated."
            )
        current = alias_version(client, name, alias)
        done = _last_promotion(client, name)
        if current == version:
            previous = done.get("from") if key and done.get("key") == key and done.get("to") == version else current
            return Promotion(name, alias, version, previous_alias, previous, False, mode)
        if expected is not _UNSET and current != (None if expected is None else str(expected)):
            raise ChampionMoved(name, alias, expected, current)
        confirm_lease(client, name, token, margin=lock_ttl / 3)
        _move(client, name, alias, version, previous_alias, current, clear_aliases, key, mode, by)
        return Promotion(name, alias, version, previous_alias, current, True, mode)


def rollback(
    client: Any,
    name: str,
    *,
    expected: str | None = _UNSET,
    alias: str = contracts.ALIAS_CHAMPION,
    previous_alias: str = contracts.ALIAS_PREVIOUS_CHAMPION,
    key: str = "",
    by: str = "",
    lock_timeout: float = 60.0,
    lock_ttl: float = DEFAULT_TTL,
    sleep: Callable[[float], None] = time.sleep,
) -> Promotion:
    """Promote the version under ``previous_alias`` back to ``alias``; the rolled-back one becomes previous.

    A second rollback therefore rolls forward again. With ``key``, a retry of a rollback that already
    happened returns ``changed=False`` instead of swapping back.

    :raises VersionNotPromotable: there is no previous version to roll back to.
    :raises ChampionMoved: ``expected`` was given and the alias points elsewhere.
    """
    validate_model_name(name)
    with registry_lock(client, name, owner=key or "rollback", timeout=lock_timeout, ttl=lock_ttl, sleep=sleep) as token:
        current = alias_version(client, name, alias)
        done = _last_promotion(client, name)
        if key and done.get("key") == key and done.get("to") == current:
            return Promotion(name, alias, str(current), previous_alias, done.get("from"), False, "rollback")
        target = alias_version(client, name, previous_alias)
        if target is None:
            raise VersionNotPromotable(
                f"Model {name!r} has no {previous_alias!r} alias: there is no earlier champion to roll back to."
            )
        if expected is not _UNSET and current != (None if expected is None else str(expected)):
            raise ChampionMoved(name, alias, expected, current)
        _check_promotable(client, name, target)
        confirm_lease(client, name, token, margin=lock_ttl / 3)
        _move(client, name, alias, target, previous_alias, current, (), key, "rollback", by)
        return Promotion(name, alias, target, previous_alias, current, True, "rollback")


def _check_promotable(client: Any, name: str, version: str) -> Any:
    try:
        found = client.get_model_version(name, version)
    except _mlflow_exception() as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise VersionNotPromotable(f"Model {name!r} has no version {version!r}.") from exc
        raise
    if not is_complete(found):
        raise VersionNotPromotable(
            f"Version {version} of model {name!r} is {found.status} and "
            f"{'marked' if (found.tags or {}).get(contracts.TAG_REGISTRATION_COMPLETE) else 'not marked'} complete: "
            "its registration did not finish. Re-run the registration (it completes the version) before promoting."
        )
    return found


def _move(
    client: Any,
    name: str,
    alias: str,
    version: str,
    previous_alias: str,
    current: str | None,
    clear_aliases: tuple[str, ...],
    key: str,
    mode: str,
    by: str,
) -> None:
    # previous first: if we stop between the two calls the champion is unchanged and a retry redoes both
    if current is not None:
        client.set_registered_model_alias(name, previous_alias, current)
    client.set_registered_model_alias(name, alias, version)
    record = {"key": key, "from": current, "to": version, "mode": mode, "at": time.time(), "by": by or key}
    client.set_registered_model_tag(name, contracts.TAG_LAST_PROMOTION, json.dumps(record, sort_keys=True))
    history = [*promotion_history(client.get_registered_model(name).tags), record]
    while len(history) > HISTORY_KEEP or (len(history) > 1 and len(json.dumps(history)) > HISTORY_MAX_CHARS):
        history.pop(0)
    client.set_registered_model_tag(name, contracts.TAG_PROMOTION_HISTORY, json.dumps(history, sort_keys=True))
    for other in clear_aliases:
        if alias_version(client, name, other) == version:
            client.delete_registered_model_alias(name, other)


def promotion_history(tags: dict[str, str] | None) -> list[dict[str, Any]]:
    """The recorded alias moves of a registered model (its tags), oldest first; unreadable means none."""
    try:
        value = json.loads((tags or {}).get(contracts.TAG_PROMOTION_HISTORY) or "[]")
    except ValueError:
        return []
    return [entry for entry in value if isinstance(entry, dict)] if isinstance(value, list) else []


def _last_promotion(client: Any, name: str) -> dict[str, Any]:
    try:
        model = client.get_registered_model(name)
    except _mlflow_exception() as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    try:
        value = json.loads((model.tags or {}).get(contracts.TAG_LAST_PROMOTION) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
