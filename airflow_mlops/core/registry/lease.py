"""The promotion lease: serialises promotions of one registered model.

MLflow has no conditional alias update, so promotions of one model are serialised by a lease: a
registered model named ``<name>.mlops-lock``, whose creation is atomic (registered model names are
unique). Its tags say who holds it and until when. While the block runs, a background thread renews
the expiry every third of the ttl, so a live holder (however slow) keeps its lease and a dead one
stops renewing and is replaced once its lease expires.

There is no exception for "a retry of the same task": two tries of one task instance can be alive at
once (a zombie try and the retry Airflow started in its place), and letting the second take the
first's lease let both promote. Every caller, the same task's retry included, waits for expiry.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from airflow_mlops.core.registry.errors import (
    RegistryLeaseLost,
    RegistryLockTimeout,
    _error_code,
    _mlflow_exception,
)

log = logging.getLogger(__name__)

LOCK_SUFFIX = ".mlops-lock"
TAG_LOCK_OWNER = "mlops.lock_owner"
TAG_LOCK_EXPIRES = "mlops.lock_expires_at"
#: Seconds a lease lasts without renewal: how long a retry waits after its try died holding it.
DEFAULT_TTL = 30.0


@contextlib.contextmanager
def registry_lock(
    client: Any,
    name: str,
    *,
    owner: str,
    timeout: float = 60.0,
    ttl: float = DEFAULT_TTL,
    poll: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[str]:
    """Hold the promotion lease of model ``name`` for the duration of the block; yields its token.

    The lease is a registered model ``<name>.mlops-lock``: creating it succeeds for exactly one caller.
    Its tags say who holds it and until when (wall clock); it is renewed every ``ttl / 3`` seconds
    while the block runs, and released on exit, only by its holder. A lease whose holder stopped
    renewing it (died) is taken over once it has expired. Call :func:`confirm_lease` right before a
    write that must not happen twice.

    :raises RegistryLockTimeout: the lease stayed held by someone else for ``timeout`` seconds.
    """
    lock_name = name + LOCK_SUFFIX
    token = f"{owner}#{uuid.uuid4().hex}"
    waited_until = time.monotonic() + timeout
    while not _try_create(
        client, lock_name, token, ttl, f"Promotion lease of {name!r} held by {owner}; removed when done."
    ):
        holder = _lock_holder(client, lock_name)
        if holder is not None and time.time() > holder[1]:
            log.warning("Taking over the expired promotion lease of %s from %s", name, holder[0])
            _release(client, lock_name, holder[0])
            continue
        if time.monotonic() >= waited_until:
            who = holder[0] if holder else "another promotion"
            raise RegistryLockTimeout(
                f"The promotion lease of model {name!r} is held by {who}; waited {timeout:g} s. "
                f"If no promotion is running, delete the registered model {lock_name!r}."
            )
        sleep(poll)
    stop = threading.Event()
    renewal = threading.Thread(
        target=_renew_until_stopped, args=(client, lock_name, token, ttl, stop), name=f"lease-{name}", daemon=True
    )
    renewal.start()
    try:
        yield token
    finally:
        stop.set()
        renewal.join()
        _release(client, lock_name, token)


def confirm_lease(client: Any, name: str, token: str, *, margin: float) -> None:
    """Refuse to go on unless ``token`` still holds the lease for at least ``margin`` more seconds.

    A renewed lease always has at least two thirds of its ttl left, so a third of the ttl is a margin
    that only a holder whose renewals stopped can fall under.

    A holder that stalled longer than the ttl (a paused process, a registry it could not reach to
    renew) may have been replaced: writing then would undo the compare-and-set.

    :raises RegistryLeaseLost: someone else holds the lease, or ours is about to expire.
    """
    lock_name = name + LOCK_SUFFIX
    holder = _lock_holder(client, lock_name)
    if holder is None or holder[0] != token:
        raise RegistryLeaseLost(
            f"The promotion lease of model {name!r} is no longer held by {token.rpartition('#')[0]!r} "
            f"(now: {holder[0] if holder else 'nobody'}): it expired while this promotion stalled. "
            "Nothing was changed; the retry compares the champion again."
        )
    if holder[1] - time.time() < margin:
        raise RegistryLeaseLost(
            f"The promotion lease of model {name!r} expires in {holder[1] - time.time():.1f} s, under the "
            f"{margin:g} s needed to move the alias safely; nothing was changed."
        )


def _renew_until_stopped(client: Any, lock_name: str, token: str, ttl: float, stop: threading.Event) -> None:
    """Push the lease's expiry forward every ``ttl / 3`` seconds while ``token`` holds it."""
    while not stop.wait(ttl / 3):
        try:
            holder = _lock_holder(client, lock_name)
            if holder is None or holder[0] != token:
                log.warning("The promotion lease %s was lost (now held by %s)", lock_name, holder and holder[0])
                return
            client.set_registered_model_tag(lock_name, TAG_LOCK_EXPIRES, f"{time.time() + ttl:.3f}")
        except Exception as exc:  # confirm_lease refuses to write once the lease has run out
            log.warning("Could not renew the promotion lease %s (%s); will try again", lock_name, exc)


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
