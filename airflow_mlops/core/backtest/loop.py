"""The policy backtest: replay a labelled history batch by batch through the code the reference DAGs
run, and compare the drift policy with two baselines on the same batches.

For each batch, as ``batch_serving`` and ``continuous_training`` would: the champion scores the batch
(serving), the labelled serving log is checked against the champion's training reference (the drift
check), the observation goes to the drift policy with its state carried in memory, and when the policy
says retrain a candidate is trained on every row seen so far (the pipeline's training spec) and gated
against the champion on its own out-of-time test split (judged by its selection model when it was
refit on every row, as the live gate does); it becomes the champion when the gate passes, and
serves from the next batch on. The registry is :class:`~airflow_mlops.core.backtest.registry.InMemoryRegistry`;
nothing talks to MLflow or a scheduler.

The baselines replay the same batches: ``never`` keeps the first champion; ``always`` retrains on every
row seen so far after each batch and promotes without a gate.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.backtest import steps
from airflow_mlops.core.backtest.registry import InMemoryRegistry, ModelVersion

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.backtest.batches import Batch, History
    from airflow_mlops.core.backtest.settings import BacktestSettings

log = logging.getLogger(__name__)
POLICY, NEVER, ALWAYS = "drift_policy", "never_retrain", "retrain_every_batch"


@dataclass
class BatchRecord:
    """What happened at one batch under one policy."""

    batch: str
    start: str
    end: str
    rows: int
    champion_version: str
    metric: str | None = None
    higher_is_better: bool | None = None
    quality: float | None = None
    drift_share: float | None = None
    weighted_drift_share: float | None = None
    drifted_columns: list[str] = field(default_factory=list)
    decision: str = ""
    reasons: list[str] = field(default_factory=list)
    retrain: bool = False
    candidate_version: str | None = None
    gate_verdict: str | None = None
    gate_summary: str | None = None
    promoted: bool = False
    train_seconds: float | None = None


@dataclass
class PolicyRun:
    """One policy's replay: its records and its registry."""

    name: str
    registry: InMemoryRegistry
    records: list[BatchRecord] = field(default_factory=list)
    serving_cache: dict[str, Any] = field(default_factory=dict)

    @property
    def retrains(self) -> int:
        return sum(r.retrain for r in self.records)

    @property
    def promotions(self) -> int:
        return sum(r.promoted for r in self.records)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "retrains": self.retrains,
            "promotions": self.promotions,
            "records": [asdict(r) for r in self.records],
        }


@dataclass(frozen=True)
class BacktestResult:
    """The three replays of the same batches, and how the batches were cut."""

    settings: dict[str, Any]
    batches: list[dict[str, Any]]
    initial_rows: int
    runs: dict[str, PolicyRun]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Settings, batches and every policy's records (the report module adds the summary)."""
        return {
            "settings": self.settings,
            "initial_rows": self.initial_rows,
            "batches": self.batches,
            "policies": {name: run.to_dict() for name, run in self.runs.items()},
            "seconds": round(self.seconds, 1),
        }


def _seen(frames: list[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _train(settings: BacktestSettings, run: PolicyRun, frames: list[pd.DataFrame], through: str) -> ModelVersion:
    started = time.perf_counter()
    data = _seen(frames)
    result = steps.train(data, settings.training_spec, settings.transformer)
    version = run.registry.register(result, len(data), through)
    log.info("%s: trained v%s on %d rows through %s in %.1f s", run.name, version.version, len(data), through,
             time.perf_counter() - started)  # fmt: skip
    return version


def _observe(settings: BacktestSettings, run: PolicyRun, batch: Batch) -> tuple[BatchRecord, Any]:
    """Serve the batch with the champion and check its labelled serving log: the record and the drift result."""
    champion = run.registry.champion
    model = run.serving_cache.get(champion.version)
    if model is None:
        model = run.serving_cache[champion.version] = steps.serving_model(champion, settings.model_name)
    served = steps.serve(model, batch.frame, settings.training_spec.target, settings.transformer)
    drift = steps.check_drift(champion, served, settings.drift_spec, settings.business_metric)
    record = BatchRecord(batch.label, batch.start, batch.end, batch.rows, champion.version)
    record.drift_share = drift.drift_share
    record.weighted_drift_share = drift.weighted_drift_share if drift.weighting == "importance" else None
    record.drifted_columns = list(drift.drifted_columns)
    if drift.quality is not None:
        record.metric, record.higher_is_better = drift.quality.metric, drift.quality.higher_is_better
        record.quality = drift.quality.current
    return record, drift


def replay_policy(settings: BacktestSettings, history: History, first: ModelVersion) -> PolicyRun:
    """The drift policy's replay: serve, check, decide; on retrain, train, gate and promote on pass."""
    from airflow_mlops.core.drift import DriftPolicy, decide, observe

    run = _start(POLICY, settings, first)
    policy = DriftPolicy.from_mapping(settings.drift_policy)
    state: dict[str, Any] = {}  # the policy's state file, kept in memory
    frames = [history.initial]
    for batch in history.batches:
        record, drift = _observe(settings, run, batch)
        champion = run.registry.champion
        observation = observe(drift, f"{batch.label}:labelled", batch.end, champion.reference_id)
        decision, state = decide(policy, state, observation)
        record.decision, record.reasons, record.retrain = decision.status, list(decision.reasons), decision.retrain
        frames.append(batch.frame)
        if decision.retrain:
            started = time.perf_counter()
            candidate = _train(settings, run, frames, batch.label)
            verdict = steps.gate(candidate, champion, settings.gate_policy)
            record.candidate_version, record.gate_verdict = candidate.version, verdict.verdict
            record.gate_summary, record.promoted = verdict.summary(), verdict.passed
            record.train_seconds = round(time.perf_counter() - started, 2)
            if verdict.passed:
                run.registry.promote(candidate.version, batch.label)
        run.records.append(record)
        log.info("%s %s: v%s %s=%s drift %s -> %s %s", POLICY, batch.label, record.champion_version, record.metric,
                 record.quality, record.drift_share, record.decision, record.gate_verdict or "")  # fmt: skip
    return run


def replay_baseline(settings: BacktestSettings, history: History, first: ModelVersion, retrain: bool) -> PolicyRun:
    """``never``: the first champion serves every batch. ``always``: after each batch (but the last, whose
    model would serve nothing), train on every row so far and promote it without a gate."""
    run = _start(ALWAYS if retrain else NEVER, settings, first)
    frames = [history.initial]
    for index, batch in enumerate(history.batches):
        record, _ = _observe(settings, run, batch)
        frames.append(batch.frame)
        record.decision = "retrain" if retrain else "keep"
        if retrain and index < len(history.batches) - 1:
            started = time.perf_counter()
            candidate = _train(settings, run, frames, batch.label)
            run.registry.promote(candidate.version, batch.label)
            record.retrain, record.promoted, record.candidate_version = True, True, candidate.version
            record.train_seconds = round(time.perf_counter() - started, 2)
        run.records.append(record)
        log.info("%s %s: v%s %s=%s", run.name, batch.label, record.champion_version, record.metric, record.quality)
    return run


def _start(name: str, settings: BacktestSettings, first: ModelVersion) -> PolicyRun:
    """A policy's registry with the shared first champion as version 1."""
    registry = InMemoryRegistry(settings.model_name)
    registry.register(first.result, first.trained_rows, first.trained_through)
    registry.promote("1", "initial")
    return PolicyRun(name, registry)


def run_backtest(settings: BacktestSettings, history: History) -> BacktestResult:
    """Train the first champion on the initial history, then replay the three policies."""
    started = time.perf_counter()
    bootstrap = PolicyRun("initial", InMemoryRegistry(settings.model_name))
    first = _train(settings, bootstrap, [history.initial], "initial")
    runs = {
        POLICY: replay_policy(settings, history, first),
        NEVER: replay_baseline(settings, history, first, retrain=False),
        ALWAYS: replay_baseline(settings, history, first, retrain=True),
    }
    batches = [{"batch": b.label, "start": b.start, "end": b.end, "rows": b.rows} for b in history.batches]
    return BacktestResult(settings.to_dict(), batches, len(history.initial), runs, time.perf_counter() - started)
