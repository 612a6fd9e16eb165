"""When a drift check becomes a retrain trigger: the drift policy, and its state across runs.

A check produces an :class:`Observation` (drift share, drifted columns, quality drop, labelled rows).
The policy turns the sequence of observations into decisions:

- **conditions**: the drift share reaches ``drift_share`` (by default the share weighted by the
  champion's feature importance; ``signal: plain`` uses the plain share); the quality metric dropped
  by at least ``quality_drop`` against its baseline; one of ``trigger_columns`` drifted (a feature,
  a prediction column, or the target); or, only with ``retrain_on_input_drift``, a monitored column
  the model does not read drifted.
- **hysteresis**: a condition that is on stays on until its figure falls below the threshold minus
  ``hysteresis`` (drift share) or ``quality_hysteresis`` (quality drop), so a figure hovering at the
  threshold does not flap. The quality condition is only evaluated on batches with labels: on an
  unlabelled batch quality is *unknown* and never counts (its last state is kept only for the
  hysteresis of the next labelled batch). A new champion (another ``reference_id``) starts with every
  condition off.
- **one point per batch**: the serving check of a partition and its later labelled check
  (``<partition>:labelled``) are one batch: once one of them triggered, the other does not trigger again.
- **alarm**: any condition on. An alarm triggers a retrain unless a trigger happened less than
  ``cooldown`` ago (at most one trigger per period) or fewer than ``min_new_labels`` labelled rows
  arrived since the last trigger (retraining needs new labels to learn from).

Time is the batch's time (``as_of``), not the wall clock, so backfills decide as the live runs did.
The state is the list of recent observations, not a counter: deciding replays it in batch order, so a
rerun of a batch replaces its observation instead of counting twice, and a late batch slots into its
place. Beyond ``history`` observations the oldest are folded into a carried ``base``.

Everything here is pure: :mod:`airflow_mlops.core.drift.state` reads and writes the state, one small
JSON file under the storage root, atomically.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from airflow_mlops.core.errors import ArtifactError, SpecError
from airflow_mlops.core.params import parse_duration, parse_flag, parse_number

STATE_FORMAT = 1
Status = Literal["retrain", "ok", "cooldown", "awaiting_labels", "no_data", "stale", "already_triggered"]
Signal = Literal["weighted", "plain"]
LABELLED_SUFFIX = ":labelled"  # the batch id of a partition's labelled check

_POLICY_KEYS = (
    "drift_share", "quality_drop", "trigger_columns", "cooldown", "min_new_labels", "hysteresis",
    "quality_hysteresis", "history", "signal", "retrain_on_input_drift",
)  # fmt: skip


def batch_key(batch_id: str) -> str:
    """The batch a check belongs to: its partition, whether the check is the serving or the labelled one."""
    return batch_id[: -len(LABELLED_SUFFIX)] if batch_id.endswith(LABELLED_SUFFIX) else batch_id


def cooldown_seconds(raw: Any) -> float:
    """The cooldown in seconds: a number of seconds or a duration like ``'12h'``, ``'7d'``, ``'2w'``; 0 is none."""
    cooldown = parse_duration(raw, "cooldown", allow_zero=True)
    return cooldown.total_seconds() if cooldown is not None else 0.0


def _optional_fraction(raw: Any, name: str, upper: float | None = 1.0) -> float | None:
    if raw is None or raw == "":
        return None
    return parse_number(raw, name, high=math.inf if upper is None else upper)


@dataclass(frozen=True)
class DriftPolicy:
    """When a drift check asks for retraining. Build it with :meth:`from_mapping`.

    :param drift_share: retrain when the share of drifted features reaches this (None: ignore).
    :param quality_drop: retrain when the quality metric is worse than its baseline by at least this,
        in the metric's units (0.05 = five points of ROC AUC); None ignores quality.
    :param trigger_columns: retrain when any of these columns drifts.
    :param cooldown: at most one trigger per this many seconds of batch time (``'7d'`` accepted).
    :param min_new_labels: a trigger needs at least this many labelled rows since the last trigger.
    :param hysteresis: a drift-share alarm clears only below ``drift_share - hysteresis``.
    :param quality_hysteresis: a quality alarm clears only below ``quality_drop - quality_hysteresis``.
    :param history: observations kept in the state file before the oldest are folded.
    :param signal: which drift share ``drift_share`` applies to: ``weighted`` (by the champion's
        feature importance; the plain share when none is known) or ``plain``.
    :param retrain_on_input_drift: let the drift of a monitored column the model does not read
        trigger a retrain (off: it is reported and notified only).
    """

    drift_share: float | None = 0.5
    quality_drop: float | None = None
    trigger_columns: tuple[str, ...] = ()
    cooldown: float = 0.0
    min_new_labels: int = 0
    hysteresis: float = 0.0
    quality_hysteresis: float = 0.0
    history: int = 500
    signal: Signal = "weighted"
    retrain_on_input_drift: bool = False

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any] | None = None) -> DriftPolicy:
        raw = dict(raw or {})
        unknown = sorted(set(raw) - set(_POLICY_KEYS))
        if unknown:
            raise SpecError(f"Unknown DriftPolicy parameter(s) {unknown}. Allowed: {list(_POLICY_KEYS)}.")
        columns = raw.get("trigger_columns") or ()
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        if not isinstance(columns, Sequence) or not all(isinstance(c, str) and c for c in columns):
            raise SpecError(f"The 'trigger_columns' of DriftPolicy must be a list of column names. Got {columns!r}.")
        share = _optional_fraction(raw.get("drift_share", cls.drift_share), "drift_share")
        hysteresis = _optional_fraction(raw.get("hysteresis", 0.0), "hysteresis") or 0.0
        if share is not None and hysteresis > share:
            raise SpecError(
                f"The 'hysteresis' of DriftPolicy ({hysteresis}) must not exceed its 'drift_share' ({share}): "
                "the alarm could never clear."
            )
        quality = _optional_fraction(raw.get("quality_drop"), "quality_drop", upper=None)
        q_hysteresis = _optional_fraction(raw.get("quality_hysteresis", 0.0), "quality_hysteresis", None) or 0.0
        if quality is not None and q_hysteresis > quality:
            raise SpecError(
                f"The 'quality_hysteresis' of DriftPolicy ({q_hysteresis}) must not exceed its 'quality_drop' "
                f"({quality})."
            )
        labels = _whole(raw.get("min_new_labels", 0), "min_new_labels", 0)
        history = _whole(raw.get("history", cls.history), "history", 1)
        signal = raw.get("signal") or cls.signal
        if signal not in ("weighted", "plain"):
            raise SpecError(f"The 'signal' of DriftPolicy must be 'weighted' or 'plain'. Got {signal!r}.")
        on_input = parse_flag(raw.get("retrain_on_input_drift", False), "The 'retrain_on_input_drift' of DriftPolicy")
        return cls(
            drift_share=share,
            quality_drop=quality,
            trigger_columns=tuple(columns),
            cooldown=cooldown_seconds(raw.get("cooldown", 0)),
            min_new_labels=labels,
            hysteresis=hysteresis,
            quality_hysteresis=q_hysteresis,
            history=history,
            signal=signal,
            retrain_on_input_drift=on_input,
        )

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in _POLICY_KEYS}
        out["trigger_columns"] = list(self.trigger_columns)
        return out


def _whole(raw: Any, name: str, low: int) -> int:
    return int(parse_number(raw, name, low=low, integer=True))


def _utc(value: str | datetime) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Observation:
    """What one drift check contributes to the policy."""

    batch_id: str
    as_of: str  # ISO 8601, UTC
    reference_id: str
    drift_share: float | None
    drifted_columns: tuple[str, ...] = ()
    quality_drop: float | None = None
    quality_metric: str | None = None
    labelled_rows: int = 0
    weighted_drift_share: float | None = None
    input_drifted_columns: tuple[str, ...] = ()

    @classmethod
    def create(cls, batch_id: str, as_of: str | datetime, reference_id: str, **figures: Any) -> Observation:
        try:
            moment = _utc(as_of)
        except ValueError as exc:
            raise SpecError(f"The batch time 'as_of' must be an ISO 8601 timestamp. Got {as_of!r}.") from exc
        figures["drifted_columns"] = tuple(figures.get("drifted_columns") or ())
        figures["input_drifted_columns"] = tuple(figures.get("input_drifted_columns") or ())
        return cls(batch_id=str(batch_id), as_of=moment.isoformat(), reference_id=str(reference_id), **figures)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["drifted_columns"] = list(self.drifted_columns)
        out["input_drifted_columns"] = list(self.input_drifted_columns)
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Observation:
        data = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        data["drifted_columns"] = tuple(data.get("drifted_columns") or ())
        data["input_drifted_columns"] = tuple(data.get("input_drifted_columns") or ())
        return cls(**data)


@dataclass(frozen=True)
class PolicyDecision:
    """The policy's answer for one batch. ``retrain`` is what the operator acts on."""

    batch_id: str
    as_of: str
    retrain: bool
    status: Status
    alarm: bool
    reasons: tuple[str, ...]
    labelled_since_trigger: int
    last_trigger_at: str | None
    next_eligible_at: str | None = None
    conditions: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["reasons"] = list(self.reasons)
        out["conditions"] = dict(self.conditions)
        return out


@dataclass
class _Carry:
    """The state the replay carries from one observation to the next."""

    reference_id: str | None = None
    share_on: bool = False
    quality_on: bool = False
    last_trigger_at: str | None = None
    labelled_since_trigger: int = 0
    as_of: str | None = None  # time of the last observation folded into this carry
    last_trigger_batch: str | None = None  # batch_key of the last trigger: its other check does not count again

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None) -> _Carry:
        raw = raw or {}
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _signal(policy: DriftPolicy, obs: Observation) -> tuple[float, str, str]:
    """The drift share the policy compares with ``drift_share``, and its name in the reasons. The
    observation carries a weighted share only when importance weighed it; else the plain one stands in."""
    assert obs.drift_share is not None
    if policy.signal == "plain":
        return obs.drift_share, "drift share", ""
    if obs.weighted_drift_share is None:
        return obs.drift_share, "drift share", " (plain: no feature importance to weigh it)"
    return obs.weighted_drift_share, "weighted drift share", ""


def _conditions(policy: DriftPolicy, carry: _Carry, obs: Observation) -> tuple[list[str], dict[str, Any]]:
    """Update the conditions' states in ``carry`` for ``obs``: the reasons of the alarm and each state.

    Quality is known only on a labelled batch; on others it is reported unknown and never counts."""
    reasons = []
    if policy.drift_share is not None:
        share, name, note = _signal(policy, obs)
        floor = policy.drift_share - policy.hysteresis if carry.share_on else policy.drift_share
        carry.share_on = share >= floor
        if carry.share_on:
            reasons.append(f"{name} {share:.3f} >= {floor:.3f}{note}")
    quality: bool | None = None
    if policy.quality_drop is not None and obs.quality_drop is not None:
        floor = policy.quality_drop - policy.quality_hysteresis if carry.quality_on else policy.quality_drop
        carry.quality_on = quality = obs.quality_drop >= floor
        if quality:
            reasons.append(f"{obs.quality_metric or 'quality'} drop {obs.quality_drop:.4f} >= {floor:.4f}")
    named = [c for c in policy.trigger_columns if c in obs.drifted_columns]
    if named:
        reasons.append(f"trigger column(s) drifted: {named}")
    inputs = list(obs.input_drifted_columns) if policy.retrain_on_input_drift else []
    if inputs:
        reasons.append(f"input drift in column(s) the model does not read: {inputs}")
    conditions = {"drift_share": carry.share_on, "quality": quality, "columns": named, "input_drift": inputs}
    return reasons, conditions


def _step(policy: DriftPolicy, carry: _Carry, obs: Observation) -> PolicyDecision:
    """Advance ``carry`` by one observation (in place) and return the decision for it."""
    if carry.reference_id != obs.reference_id:
        carry.reference_id, carry.share_on, carry.quality_on = obs.reference_id, False, False
    carry.labelled_since_trigger += obs.labelled_rows
    carry.as_of = obs.as_of
    common: dict[str, Any] = {
        "batch_id": obs.batch_id,
        "as_of": obs.as_of,
        "labelled_since_trigger": carry.labelled_since_trigger,
    }
    if obs.drift_share is None:
        return PolicyDecision(
            **common, retrain=False, status="no_data", alarm=False, last_trigger_at=carry.last_trigger_at,
            reasons=("no drift figures for this batch (too few rows or no comparable column)",),
        )  # fmt: skip
    reasons, conditions = _conditions(policy, carry, obs)
    if policy.quality_drop is not None and conditions["quality"] is None:
        conditions["quality_note"] = "quality unknown (no labels in this batch): not counted"
    alarm = bool(reasons)
    held: dict[str, Any] = {"conditions": conditions, "last_trigger_at": carry.last_trigger_at}
    if not alarm:
        return PolicyDecision(**common, retrain=False, status="ok", alarm=False, reasons=(), **held)
    if carry.last_trigger_batch == batch_key(obs.batch_id):
        return PolicyDecision(
            **common, retrain=False, status="already_triggered", alarm=True, **held,
            reasons=(*reasons, f"batch {batch_key(obs.batch_id)} already triggered a retrain (its other check)"),
        )  # fmt: skip
    if carry.last_trigger_at is not None and policy.cooldown > 0:
        eligible = _utc(carry.last_trigger_at) + timedelta(seconds=policy.cooldown)
        if _utc(obs.as_of) < eligible:
            return PolicyDecision(
                **common, retrain=False, status="cooldown", alarm=True, reasons=tuple(reasons), **held,
                next_eligible_at=eligible.isoformat(),
            )  # fmt: skip
    if carry.labelled_since_trigger < policy.min_new_labels:
        missing = policy.min_new_labels - carry.labelled_since_trigger
        return PolicyDecision(
            **common, retrain=False, status="awaiting_labels", alarm=True,
            reasons=(*reasons, f"waiting for {missing} more labelled rows"), **held,
        )  # fmt: skip
    carry.last_trigger_at, carry.last_trigger_batch = obs.as_of, batch_key(obs.batch_id)
    carry.labelled_since_trigger = 0
    return PolicyDecision(
        **{**common, "labelled_since_trigger": 0}, retrain=True, status="retrain", alarm=True,
        reasons=tuple(reasons), conditions=conditions, last_trigger_at=obs.as_of,
    )  # fmt: skip


def _order(obs: Observation) -> tuple[datetime, str]:
    return _utc(obs.as_of), obs.batch_id


def decide(
    policy: DriftPolicy, state: Mapping[str, Any] | None, observation: Observation
) -> tuple[PolicyDecision, dict[str, Any]]:
    """Decide for ``observation`` given the stored ``state``; return the decision and the new state.

    Pure: the caller persists the new state. An observation with a ``batch_id`` already in the state
    replaces it (a rerun). An observation older than the folded history is judged for information
    (status ``stale``) and never triggers.
    """
    state = dict(state or {})
    if state and state.get("format") != STATE_FORMAT:
        raise ArtifactError(f"The drift policy state has format {state.get('format')!r}; expected {STATE_FORMAT}.")
    base = _Carry.from_dict(state.get("base"))
    kept = [Observation.from_dict(o) for o in state.get("observations", [])]
    if base.as_of is not None and _utc(observation.as_of) <= _utc(base.as_of):
        probe = _Carry(reference_id=observation.reference_id, last_trigger_at=None)
        decision = _step(policy, probe, observation)
        stale = replace(
            decision, retrain=False, status="stale",
            reasons=(*decision.reasons, f"older than the policy history (kept from {base.as_of})"),
        )  # fmt: skip
        return stale, {**state, "format": STATE_FORMAT}
    observations = sorted([o for o in kept if o.batch_id != observation.batch_id] + [observation], key=_order)
    decisions = []
    while len(observations) > policy.history:  # fold the oldest into the carried base
        decisions.append(_step(policy, base, observations.pop(0)))
    carry = _Carry(**base.to_dict())
    decisions += [_step(policy, carry, o) for o in observations]
    mine = next(d for d in decisions if d.batch_id == observation.batch_id)
    new_state = {
        "format": STATE_FORMAT,
        "generation": int(state.get("generation", 0)) + 1,
        "policy": policy.to_dict(),
        "base": base.to_dict(),
        "observations": [o.to_dict() for o in observations],
        "decisions": {d.batch_id: {"status": d.status, "retrain": d.retrain} for d in decisions},
        "carry": carry.to_dict(),
    }
    return mine, new_state
