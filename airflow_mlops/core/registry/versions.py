"""Register and promote model versions in the MLflow registry, with no half-states.

Registration is idempotent per training run: the versions of a run are looked up first, so a retry
returns the version the first attempt made instead of adding a duplicate. Everything a version carries
(lineage tags, the ONNX sha256, the gate's evidence, the description) is sent in the one
``create_model_version`` call, which the registry stores in one transaction. The registration is then
marked complete (:data:`~airflow_mlops.core.contracts.TAG_REGISTRATION_COMPLETE`) only once the version
is ``READY`` and every tag is in place. When anything fails after the version was created, the version
is deleted if the registry still answers; if it does not, the version stays without the mark, promotion
refuses it, and the next attempt finds and completes it.

Promotion moves the ``champion`` alias with compare-and-set semantics: the caller says which version it
expects to replace (the one the gate evaluated), and if the alias moved meanwhile nothing changes and
:class:`ChampionMoved` is raised. MLflow has no conditional alias update, so promotions of one model are
serialised by a lease: a registered model named ``<name>.mlops-lock``, whose creation is atomic
(registered model names are unique). The previous champion keeps the ``previous_champion`` alias, so a
rollback is a promotion of that version.

Everything here takes an ``MlflowClient``; nothing reads Airflow configuration.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, MlopsError, SpecError

log = logging.getLogger(__name__)

READY = "READY"
PENDING = "PENDING_REGISTRATION"
FAILED = "FAILED_REGISTRATION"
LOCK_SUFFIX = ".mlops-lock"
TAG_LOCK_OWNER = "mlops.lock_owner"
TAG_LOCK_EXPIRES = "mlops.lock_expires_at"
_UNSET: Any = object()


class ChampionMoved(MlopsError):
    """The alias does not point where the caller expected: someone promoted meanwhile."""

    def __init__(self, name: str, alias: str, expected: str | None, actual: str | None) -> None:
        self.name, self.alias, self.expected, self.actual = name, alias, expected, actual
        super().__init__(
            f"The {alias!r} alias of model {name!r} points at version {actual or 'none'}, but this promotion "
            f"expected version {expected or 'none'} (the one the gate evaluated). Another promotion moved it "
            "meanwhile; nothing was changed. Re-run the gate against the new champion."
        )


class VersionNotPromotable(MlopsError, ValueError):
    """The version cannot take the alias: missing, not READY, or its registration is incomplete."""


class RegistryLockTimeout(MlopsError, TimeoutError):
    """Another promotion of the same model held the lease for longer than we were willing to wait."""


def _error_code(exc: BaseException) -> str | None:
    return getattr(exc, "error_code", None)


def _mlflow_exception() -> type[Exception]:
    from mlflow.exceptions import MlflowException

    return MlflowException


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


# -- registration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Registration:
    """Outcome of :func:`register_version`.

    :ivar created: this call created the version (False: an earlier attempt had).
    :ivar completed: this call finished an interrupted registration.
    """

    name: str
    version: str
    run_id: str
    source: str
    status: str
    created: bool
    completed: bool
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "source": self.source,
            "status": self.status,
            "created": self.created,
            "completed": self.completed,
            "onnx_sha256": self.tags.get(contracts.TAG_ONNX_SHA256),
            "gate_evidence_uri": self.tags.get(contracts.TAG_GATE_EVIDENCE_URI),
        }


def registration_tags(run_tags: Mapping[str, str], run_id: str, gate: Mapping[str, Any] | None) -> dict[str, str]:
    """Tags for a new version: the run's ``mlops.*`` lineage, its source run and the gate's verdict."""
    tags = {k: str(v) for k, v in run_tags.items() if k.startswith(contracts.TAG_PREFIX)}
    tags.pop(contracts.TAG_REGISTRATION_COMPLETE, None)
    tags[contracts.TAG_SOURCE_RUN_ID] = run_id
    if gate is not None:
        tags[contracts.TAG_GATE_PASSED] = "true" if gate.get("passed") else "false"
        tags[contracts.TAG_GATE_VERDICT] = str(gate.get("verdict") or ("passed" if gate.get("passed") else "rejected"))
        if gate.get("evidence_uri"):
            tags[contracts.TAG_GATE_EVIDENCE_URI] = str(gate["evidence_uri"])
        tags[contracts.TAG_GATE_CHAMPION_VERSION] = str(gate.get("champion_version") or "none")
    return tags


def version_description(run_id: str, gate: Mapping[str, Any] | None) -> str:
    """Markdown shown on the version's page: where it came from and what the gate found."""
    lines = [f"Registered from MLflow run `{run_id}`."]
    if gate is None:
        return "\n".join([*lines, "", "No gate evidence was attached."])
    verdict = str(gate.get("verdict") or ("passed" if gate.get("passed") else "rejected"))
    lines += ["", f"**Gate: {verdict}**" + (f" (forced: {gate.get('force_reason')})" if gate.get("forced") else "")]
    champion = gate.get("champion_version")
    lines.append(f"Compared with champion version {champion}." if champion else "First model: no champion to compare.")
    candidate, reference = gate.get("candidate_metrics") or {}, gate.get("champion_metrics") or {}
    primary = gate.get("primary_metric")
    if primary and primary in candidate:
        ref = reference.get(primary)
        lines.append(
            f"{primary}: {_short(candidate[primary])}" + (f" (champion {_short(ref)})" if ref is not None else "")
        )
    failed = [r.get("name") for r in gate.get("reasons") or [] if isinstance(r, Mapping) and not r.get("passed", True)]
    if failed:
        lines.append("Failed checks: " + ", ".join(map(str, failed)))
    if gate.get("evidence_uri"):
        lines += ["", f"Evidence: `{gate['evidence_uri']}`"]
    return "\n".join(lines)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def register_version(
    client: Any,
    name: str,
    run_id: str,
    *,
    source: str,
    tags: Mapping[str, str],
    description: str,
    ready_timeout: float = 300.0,
    poll_interval: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Registration:
    """Register ``run_id`` as a version of ``name``, or finish the registration an earlier try began.

    :raises ArtifactError: the registry marked the version ``FAILED_REGISTRATION`` (it is deleted),
        or it did not become ``READY`` within ``ready_timeout`` seconds (a retry resumes the wait).
    """
    validate_model_name(name)
    _safe_id(run_id)
    tags = {str(k): str(v) for k, v in tags.items()}
    tags.pop(contracts.TAG_REGISTRATION_COMPLETE, None)
    _ensure_registered_model(client, name)

    existing = [v for v in versions_of_run(client, name, run_id) if not _discard_failed(client, v)]
    created = False
    if existing:
        target = existing[0]
        _discard_duplicates(client, existing[1:])
    else:
        target = client.create_model_version(
            name, source, run_id, tags=tags, description=description, await_creation_for=0
        )
        created = True
    try:
        if created:
            # Two attempts may race past the lookup; the oldest version of the run wins, the rest go.
            same_run = [v for v in versions_of_run(client, name, run_id) if str(v.status) != FAILED]
            if same_run and str(same_run[0].version) != str(target.version):
                _discard_duplicates(client, [target])
                target, created = same_run[0], False
        finished_before = is_complete(target)
        final = _complete(client, target, tags, description, ready_timeout, poll_interval, sleep, clock)
    except BaseException:
        if created:
            _delete_quietly(client, name, str(target.version))
        raise
    return Registration(
        name=name,
        version=str(final.version),
        run_id=run_id,
        source=str(final.source),
        status=str(final.status),
        created=created,
        completed=not created and not finished_before,
        tags=dict(final.tags or {}),
    )


def _ensure_registered_model(client: Any, name: str) -> None:
    try:
        client.create_registered_model(name)
    except _mlflow_exception() as exc:
        if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
            raise


def _discard_failed(client: Any, version: Any) -> bool:
    if str(version.status) != FAILED:
        return False
    log.warning(
        "Deleting version %s of %s: its registration failed (%s)", version.version, version.name, version.status_message
    )
    _delete_quietly(client, str(version.name), str(version.version))
    return True


def _discard_duplicates(client: Any, versions: list[Any]) -> None:
    for version in versions:
        if version.aliases:  # never drop a version something points at
            continue
        log.warning("Deleting duplicate version %s of %s for run %s", version.version, version.name, version.run_id)
        _delete_quietly(client, str(version.name), str(version.version))


def _delete_quietly(client: Any, name: str, version: str) -> None:
    try:
        client.delete_model_version(name, version)
    except Exception as exc:  # the registry may be the thing that failed: the next attempt cleans up
        log.warning("Could not delete version %s of %s (%s); a retry will complete or replace it", version, name, exc)


def _complete(
    client: Any,
    version: Any,
    tags: Mapping[str, str],
    description: str,
    ready_timeout: float,
    poll_interval: float,
    sleep: Callable[[float], None],
    clock: Callable[[], float],
) -> Any:
    name, number = str(version.name), str(version.version)
    deadline = clock() + ready_timeout
    while str(version.status) == PENDING:
        if clock() >= deadline:
            raise ArtifactError(
                f"Version {number} of model {name!r} is still {PENDING} after {ready_timeout:g} s; "
                "a retry resumes the wait."
            )
        sleep(poll_interval)
        version = client.get_model_version(name, number)
    if str(version.status) == FAILED:
        _delete_quietly(client, name, number)
        raise ArtifactError(
            f"The registry failed to register version {number} of model {name!r}: {version.status_message}. "
            "It was deleted; a retry registers the run again."
        )
    present = dict(version.tags or {})
    for key, value in tags.items():
        if present.get(key) != value:
            client.set_model_version_tag(name, number, key, value)
    if (version.description or "") != description:
        client.update_model_version(name, number, description=description)
    client.set_model_version_tag(name, number, contracts.TAG_REGISTRATION_COMPLETE, "true")
    return client.get_model_version(name, number)


# -- promotion ------------------------------------------------------------------------------------
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
    expected_run_id: str | None = None,
    lock_timeout: float = 60.0,
    lock_ttl: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Promotion:
    """Point ``alias`` at ``version`` if it still points at ``expected``; keep the old one addressable.

    :param expected: the version the caller believes holds the alias (``None``: no holder). Leave it
        out to skip the comparison (a manual promotion).
    :param clear_aliases: aliases removed from ``version`` once it holds ``alias`` (a promoted
        challenger is no longer a challenger).
    :param key: identifies the caller (e.g. the task instance). A retry with the same key after the
        alias already moved is recognised and returns ``changed=False`` instead of failing.
    :param expected_run_id: the run the version must come from (the run the gate passed).
    :raises ChampionMoved: the alias points elsewhere than ``expected``; nothing changed.
    :raises VersionNotPromotable: the version is missing, not READY, not completely registered, or
        not from ``expected_run_id``.
    """
    validate_model_name(name)
    version = str(version)
    with registry_lock(
        client, name, owner=key or mode, timeout=lock_timeout, ttl=lock_ttl, sleep=sleep, reclaim_own=bool(key)
    ):
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
        _move(client, name, alias, version, previous_alias, current, clear_aliases, key, mode)
        return Promotion(name, alias, version, previous_alias, current, True, mode)


def rollback(
    client: Any,
    name: str,
    *,
    expected: str | None = _UNSET,
    alias: str = contracts.ALIAS_CHAMPION,
    previous_alias: str = contracts.ALIAS_PREVIOUS_CHAMPION,
    key: str = "",
    lock_timeout: float = 60.0,
    lock_ttl: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Promotion:
    """Promote the version under ``previous_alias`` back to ``alias``; the rolled-back one becomes previous.

    A second rollback therefore rolls forward again. With ``key``, a retry of a rollback that already
    happened returns ``changed=False`` instead of swapping back.

    :raises VersionNotPromotable: there is no previous version to roll back to.
    :raises ChampionMoved: ``expected`` was given and the alias points elsewhere.
    """
    validate_model_name(name)
    with registry_lock(
        client, name, owner=key or "rollback", timeout=lock_timeout, ttl=lock_ttl, sleep=sleep, reclaim_own=bool(key)
    ):
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
        _move(client, name, alias, target, previous_alias, current, (), key, "rollback")
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
) -> None:
    # previous first: if we stop between the two calls the champion is unchanged and a retry redoes both
    if current is not None:
        client.set_registered_model_alias(name, previous_alias, current)
    client.set_registered_model_alias(name, alias, version)
    record = {"key": key, "from": current, "to": version, "mode": mode, "at": time.time()}
    client.set_registered_model_tag(name, contracts.TAG_LAST_PROMOTION, json.dumps(record, sort_keys=True))
    for other in clear_aliases:
        if alias_version(client, name, other) == version:
            client.delete_registered_model_alias(name, other)


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


# -- the promotion lease --------------------------------------------------------------------------
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
    mlflow_exception = _mlflow_exception()
    while True:
        tags = {TAG_LOCK_OWNER: token, TAG_LOCK_EXPIRES: f"{time.time() + ttl:.3f}"}
        try:
            client.create_registered_model(
                lock_name, tags=tags, description=f"Promotion lease of {name!r} held by {owner}; removed when done."
            )
            break
        except mlflow_exception as exc:
            if _error_code(exc) != "RESOURCE_ALREADY_EXISTS":
                raise
        holder = _lock_holder(client, lock_name)
        if holder is not None and time.time() > holder[1]:
            log.warning("Taking over the expired promotion lease of %s from %s", name, holder[0])
            _release(client, lock_name, holder[0])
            continue
        if holder is not None and reclaim_own and holder[0].rpartition("#")[0] == owner:
            log.warning("Taking over the promotion lease of %s left by an earlier try %s", name, holder[0])
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


# -- waiting --------------------------------------------------------------------------------------
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
