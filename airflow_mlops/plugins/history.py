"""What the MLOps view shows of a registered model, read from MLflow: its champion and challenger, every
version with the gate's verdict and evidence and its canary (shadow batches, agreement, quality), and every
alias move (who, when, from -> to).

Everything comes from what registration, the gate and promotion record (``core/registry``, ``core/gating``):
version tags (``mlops.gate_verdict``, ``mlops.gate_evidence_uri``, ``mlops.pipeline``, ``mlops.canary.*``
of :mod:`airflow_mlops.core.canary.record`), the source run's
``mlops.gate_history`` tag, and the registered model's ``mlops.promotion_history`` (or, for a model promoted
before that tag existed, its ``mlops.last_promotion``). Nothing here imports Airflow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.registry.errors import _error_code, _mlflow_exception
from airflow_mlops.core.registry.lease import LOCK_SUFFIX
from airflow_mlops.core.registry.promotion import promotion_history

MAX_VERSIONS = 50  # newest versions listed on a model's page


@dataclass(frozen=True)
class VersionRow:
    version: str
    created: str
    run_id: str
    aliases: tuple[str, ...]
    gate_verdict: str
    evidence_uri: str
    gate_decisions: tuple[str, ...]  # every verdict the gate gave the version's run, oldest first
    canary_status: str = ""  # challenger | passed | dropped; empty for a version never shadowed
    canary: dict[str, Any] = field(default_factory=dict)  # the last canary verdict: batches, agreement, quality


@dataclass(frozen=True)
class Move:
    at: str
    by: str
    source: str | None
    target: str
    mode: str
    gate_verdict: str
    evidence_uri: str


@dataclass(frozen=True)
class ModelHistory:
    name: str
    pipeline: str
    aliases: dict[str, str]
    versions: list[VersionRow] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)

    @property
    def champion(self) -> str | None:
        return self.aliases.get(contracts.ALIAS_CHAMPION)

    @property
    def previous(self) -> str | None:
        return self.aliases.get(contracts.ALIAS_PREVIOUS_CHAMPION)

    @property
    def challenger(self) -> VersionRow | None:
        """The version in shadow, with its canary figures, when there is one."""
        number = self.aliases.get(contracts.ALIAS_CHALLENGER)
        return next((v for v in self.versions if v.version == number), None)


def model_names(client: Any) -> list[str]:
    """Registered models, without the promotion leases (``<name>.mlops-lock``), sorted."""
    found = client.search_registered_models(max_results=1000)
    return sorted(str(m.name) for m in found if not str(m.name).endswith(LOCK_SUFFIX))


def _when(epoch: Any) -> str:
    """An ISO time (UTC, seconds) from seconds or MLflow's milliseconds; empty when unknown."""
    try:
        value = float(epoch)
    except (TypeError, ValueError):
        return ""
    seconds = value / 1000 if value > 1e11 else value
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")


def _gate_decisions(client: Any, run_id: str) -> tuple[str, ...]:
    if not run_id:
        return ()
    try:
        raw = client.get_run(run_id).data.tags.get(contracts.TAG_GATE_HISTORY)
    except _mlflow_exception() as exc:  # a deleted run: the version is still listed
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            return ()
        raise
    try:
        entries = json.loads(raw) if raw else []
    except ValueError:
        return ()
    return tuple(str(e.get("verdict")) for e in entries if isinstance(e, dict)) if isinstance(entries, list) else ()


def _version_row(client: Any, version: Any, aliases: dict[str, str]) -> VersionRow:
    from airflow_mlops.core.canary.record import TAG_STATUS, recorded_verdict

    tags = version.tags or {}
    number = str(version.version)
    return VersionRow(
        version=number,
        created=_when(version.creation_timestamp),
        run_id=str(version.run_id or ""),
        aliases=tuple(sorted(a for a, v in aliases.items() if v == number)),
        gate_verdict=str(tags.get(contracts.TAG_GATE_VERDICT, "")),
        evidence_uri=str(tags.get(contracts.TAG_GATE_EVIDENCE_URI, "")),
        gate_decisions=_gate_decisions(client, str(version.run_id or "")),
        canary_status=str(tags.get(TAG_STATUS, "")),
        canary=recorded_verdict(tags),
    )


def _moves(model_tags: dict[str, str], versions: dict[str, VersionRow]) -> list[Move]:
    records = promotion_history(model_tags)
    if not records:  # promoted before the history tag existed: the last move is all that is known
        try:
            last = json.loads(model_tags.get(contracts.TAG_LAST_PROMOTION) or "{}")
        except ValueError:
            last = {}
        records = [last] if isinstance(last, dict) and last.get("to") else []
    moves = []
    for record in reversed(records):  # newest first
        target = str(record.get("to"))
        row = versions.get(target)
        moves.append(
            Move(
                at=_when(record.get("at")),
                by=str(record.get("by") or record.get("key") or "unknown"),
                source=None if record.get("from") is None else str(record.get("from")),
                target=target,
                mode=str(record.get("mode") or "promote"),
                gate_verdict=row.gate_verdict if row else "",
                evidence_uri=row.evidence_uri if row else "",
            )
        )
    return moves


def model_history(client: Any, name: str) -> ModelHistory:
    """Champion, versions (newest first) and alias moves (newest first) of the registered model ``name``."""
    model = client.get_registered_model(name)
    aliases = {str(k): str(v) for k, v in (model.aliases or {}).items()}
    found = client.search_model_versions(f"name = '{name}'", max_results=MAX_VERSIONS, order_by=["version_number DESC"])
    rows = [_version_row(client, v, aliases) for v in sorted(found, key=lambda v: -int(v.version))]
    by_number = {row.version: row for row in rows}
    pipeline = next((str((v.tags or {}).get(contracts.TAG_PIPELINE)) for v in found if (v.tags or {}).get(
        contracts.TAG_PIPELINE)), "")  # fmt: skip
    return ModelHistory(name, pipeline, aliases, rows, _moves(dict(model.tags or {}), by_number))
