"""What the registry and the evidence bundle keep of a canary, and the alias moves it makes.

The ``challenger`` alias is set and removed under the promotion lease
(:func:`airflow_mlops.core.registry.registry_lock`), like ``champion``, so naming a new challenger cannot
interleave with the promotion or the drop of the previous one. The challenger's version carries:

- ``mlops.canary.status``: ``challenger`` while in shadow, then ``passed`` (the promotion task moves
  ``champion`` to it next) or ``dropped``;
- ``mlops.canary.batches``: its shadow batches' figures (JSON, newest kept when the tag would overflow);
- ``mlops.canary.verdict``: the last judgement (JSON of :class:`~airflow_mlops.core.canary.CanaryVerdict`);
- ``mlops.canary.reason``: why it was promoted or dropped.

The verdict and the batches are also written to ``canary.json`` beside the gate's ``decision.json``,
so the evidence bundle of a canaried version holds what it was promoted or dropped on.
"""

from __future__ import annotations

import json
import posixpath
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.canary.verdict import CanaryVerdict, ShadowBatch
from airflow_mlops.core.registry.errors import VersionNotPromotable
from airflow_mlops.core.registry.lease import registry_lock
from airflow_mlops.core.registry.lookup import alias_version, is_complete

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot

TAG_STATUS = "mlops.canary.status"
TAG_BATCHES = "mlops.canary.batches"
TAG_VERDICT = "mlops.canary.verdict"
TAG_REASON = "mlops.canary.reason"
ARTIFACT = "canary.json"
TAG_MAX_CHARS = 4000  # MLflow's SQL stores keep a version tag in 5000 characters


def name_challenger(client: Any, name: str, version: str, *, key: str, lock_timeout: float = 60.0) -> str | None:
    """Point ``challenger`` at ``version`` (complete, not the champion); return the challenger it replaced.

    A replaced challenger is recorded as dropped: a newer gated candidate supersedes it.

    :raises VersionNotPromotable: the version is not completely registered, or it is the champion.
    """
    with registry_lock(client, name, owner=key or "canary", timeout=lock_timeout):
        found = client.get_model_version(name, version)
        if not is_complete(found):
            raise VersionNotPromotable(
                f"Version {version} of {name!r} is not completely registered: it cannot be a challenger."
            )
        if alias_version(client, name, contracts.ALIAS_CHAMPION) == str(version):
            raise VersionNotPromotable(
                f"Version {version} of {name!r} is the champion: it cannot be its own challenger."
            )
        previous = alias_version(client, name, contracts.ALIAS_CHALLENGER)
        client.set_registered_model_alias(name, contracts.ALIAS_CHALLENGER, str(version))
        client.set_model_version_tag(name, str(version), TAG_STATUS, contracts.ALIAS_CHALLENGER)
        if previous is not None and previous != str(version):
            client.set_model_version_tag(name, previous, TAG_STATUS, "dropped")
            client.set_model_version_tag(name, previous, TAG_REASON, f"replaced by version {version} as challenger")
        return None if previous == str(version) else previous


def drop_challenger(client: Any, name: str, version: str, reason: str, *, key: str, lock_timeout: float = 60.0) -> bool:
    """Remove ``challenger`` from ``version`` (if it still holds it) and record why; True when removed."""
    with registry_lock(client, name, owner=key or "canary", timeout=lock_timeout):
        held = alias_version(client, name, contracts.ALIAS_CHALLENGER) == str(version)
        if held:
            client.delete_registered_model_alias(name, contracts.ALIAS_CHALLENGER)
        client.set_model_version_tag(name, str(version), TAG_STATUS, "dropped")
        client.set_model_version_tag(name, str(version), TAG_REASON, reason[:4000])
        return held


def recorded_batches(tags: dict[str, str] | None) -> list[ShadowBatch]:
    """The shadow batches recorded on a version (its tags); unreadable means none."""
    try:
        raw = json.loads((tags or {}).get(TAG_BATCHES) or "[]")
    except ValueError:
        return []
    return [ShadowBatch.from_dict(b) for b in raw if isinstance(b, dict)] if isinstance(raw, list) else []


def recorded_verdict(tags: dict[str, str] | None) -> dict[str, Any]:
    """The last verdict recorded on a version (its tags), ``{}`` when none."""
    try:
        raw = json.loads((tags or {}).get(TAG_VERDICT) or "{}")
    except ValueError:
        return {}
    return raw if isinstance(raw, dict) else {}


def record_verdict(
    client: Any, storage: StorageRoot | None, name: str, verdict: CanaryVerdict, batches: list[ShadowBatch],
    evidence_uri: str | None,
) -> str | None:  # fmt: skip
    """Write the batches and the verdict to the challenger's tags and ``canary.json`` in the evidence bundle
    (beside ``evidence_uri``, when the version has one); return that file's URI."""
    version = verdict.challenger_version
    kept = [b.to_dict() for b in batches]
    while len(kept) > 1 and len(json.dumps(kept)) > TAG_MAX_CHARS:
        kept.pop(0)  # the oldest batches go first; canary.json keeps them all
    client.set_model_version_tag(name, version, TAG_BATCHES, json.dumps(kept, sort_keys=True))
    client.set_model_version_tag(name, version, TAG_VERDICT, json.dumps(verdict.to_dict(), sort_keys=True)[:4900])
    if verdict.decision == "promote":
        client.set_model_version_tag(name, version, TAG_STATUS, "passed")
        client.set_model_version_tag(name, version, TAG_REASON, "; ".join(verdict.reasons)[:4000])
    if storage is None or not evidence_uri:
        return None
    uri = posixpath.join(posixpath.dirname(evidence_uri), ARTIFACT)
    content = {"model_name": name, "verdict": verdict.to_dict(), "batches": [b.to_dict() for b in batches]}
    storage.write_bytes(uri, json.dumps(content, indent=2, sort_keys=True).encode())
    return uri
