"""The promotion lease: serialises promotions of one registered model.

MLflow has no conditional alias update, so promotions of one model are serialised by a lease: a
registered model named ``<name>.mlops-lock``, whose creation is atomic (registered model names are
unique). Its tags say who holds it and until when; a holder that died is replaced once it expires.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from airflow_mlops.core.registry.errors import RegistryLockTimeout, _error_code, _mlflow_exception

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".mlops-lock"
TAG_LOCK_OWNER = "mlops.lock_owner"
TAG_LOCK_EXPIRES = "mlops.lock_expires_at"


@contextlib.contextmanager
def registry_lock(
    client: Any,
    name: str,
    *,
    owner: str,
    timeout: float = 60.0,
    ttl: float = 120.0,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
    reclaim_own: bool = False,
) -> Iterator[str]:
    """Hold the promotion lease of model ``name`` for the duration of the block.

    The lease is a registered model ``<name>.mlops-lock``: creating it succeeds for exactly one caller.
    Its tags say who holds it and until when (wall clock, ``ttl`` seconds); a holder that died is
    replaced once the lease expires. Released on exit, only by its holder.

    :param reclaim_own: ``owner`` names one task instance, whose tries never run at the same time; a
        lease left by an earlier try of it (killed, or cut off from the registry before it could
        release) is taken over at once instead of blocking the retry until the lease expires.

    :raises RegistryLockTimeout: the lease stayed held by someone else for ``timeout`` seconds.
    """
    lock_name = name + LOCK_SUFFIX
    token = f"{owner}#{uuid.uuid4().hex}"
    waited_until = time.monotonic() + timeout
    while not _try_create(
        client, lock_name, token, ttl, f"Promotion lease of {name!r} held by {owner}; removed when done."
    ):
        holder = _lock_holder(client, lock_name)
        if holder is not None and _may_take_over(holder, owner, reclaim_own):
            log.warning("Taking over the promotion lease of %s from %s", name, holder[0])
            _release(client, lock_name, holder[0])
            continue
        if time.monotonic() >= waited_until:
            who = holder[0] if holder else "another promotion"
            raise RegistryLockTimeout(
                f"The promotion lease of model {name!r} is held by {who}; waited {timeout:g} s. "
                f"If no promotion is running, delete the registered model {lock_name!r}."
            )
        sleep(poll)
    try:
        yield token
    finally:
        _release(client, lock_name, token)


def _try_create(client: Any, lock_name: str, token: str, ttl: float, description: str) -> bool:
    """Create the lease for ``token``: True when this call took it, False when someone holds it."""
    tags = {TAG_LOCK_OWNER: token, TAG_LOCK_EXPIRES: f"{time.time() + ttl:.3f}"}
    while True:
        try:
            client.create_registered_model(lock_name, tags=tags, description=description)
            return True
        except _mlflow_exception() as exc:
            code = _error_code(exc)
            if code == "RESOURCE_ALREADY_EXISTS":
                return False
            if code != "RESOURCE_DOES_NOT_EXIST":
                raise
            # The server found the name taken, then could not read it back: its holder released it in
            # between. The lease is free now; try again at once.


def _may_take_over(holder: tuple[str, float], owner: str, reclaim_own: bool) -> bool:
    """A lease whose holder died (expired), or one left by an earlier try of the same task instance."""
    return time.time() > holder[1] or (reclaim_own and holder[0].rpartition("#")[0] == owner)


def _lock_holder(client: Any, lock_name: str) -> tuple[str, float] | None:
    try:
        model = client.get_registered_model(lock_name)
    except _mlflow_exception() as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    tags = model.tags or {}
    try:
        expires = float(tags.get(TAG_LOCK_EXPIRES, "0"))
    except ValueError:
        expires = 0.0
    return str(tags.get(TAG_LOCK_OWNER, "")), expires


def _release(client: Any, lock_name: str, token: str) -> None:
    """Delete the lease if ``token`` still holds it (never someone else's)."""
    try:
        holder = _lock_holder(client, lock_name)
        if holder is not None and holder[0] == token:
            client.delete_registered_model(lock_name)
    except Exception as exc:  # an unreleased lease expires after its ttl
        log.warning("Could not release the promotion lease %s (%s); it expires on its own", lock_name, exc)
