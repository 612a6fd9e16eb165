"""The pipeline file: one YAML in ``include/pipelines/`` per use case, read by the reference DAGs.

The file's ``training:`` section is the training spec (:mod:`airflow_mlops.core.training.spec`); the
other sections say where the data lands and how each stage of the loop treats it, so that a new use case
is a new file, not new code::

    model_name: flights_delay            # registered model; the file's stem when omitted
    data:
      landing: landing                   # folder or s3:// prefix; relative: {storage_root}/{pipeline}/landing
      training_pattern: "flights_*.parquet"   # files a training snapshot is made of
      batch_pattern: "flights_{{ data_interval_start.strftime('%Y-%m') }}*.parquet"  # one serving interval
      watermark_column: sched_dep_ts
      schema: {sched_dep_ts: timestamp}
      retrain_on_new_data: {min_files: 1, min_interval: 1d}   # or source: sql (core/pipeline/source.py)
    validation:
      suite: include/expectations/flights.json  # relative to the project folder (the parent of include/);
                                                # ./x.json is relative to this file's folder
    gate:
      policy: {floors: {roc_auc: 0.6}, tolerance: 0.005}
      canary_batches: 2                  # a passed candidate becomes `challenger` first (core/canary/policy.py)
      canary: {min_agreement: 0.9, max_quality_drop: 0.01}
    serving:
      schedule: "@monthly"               # or @weekly, a cron expression, P7D, an asset URI (core/pipeline/schedule.py)
      passthrough_columns: [flight, carrier, sched_dep_ts]
      shadow: true
      invalid_values: count              # +inf/-inf/float32 overflow in a feature: count (warn) | refuse
      on_empty: fail                     # a batch with no rows: fail | skip, as ingestion's on_empty
      monitor_columns: [fee, surcharge]  # non-feature columns the serving log keeps for drift (default: all)
      runtime: onnx                      # onnx | compiled (LightGBM trees compiled on the worker; extra 'compiled')
    drift:
      spec: {...}                        # DriftSpec parameters
      policy: {...}                      # DriftPolicy parameters
    monitoring:
      alerts: ml_alerts                  # webhook connection of the checks' notifier (optional)
      max_model_age: 90d                 # staleness limits of the served champion (batch DAG)
      max_data_age: 75d
      retrain_when_stale: true           # a stale champion emits the drift asset: retrain
      reproducibility: false             # retrain every new champion to check it reproduces
      spec_review: warn                  # a spec not committed unchanged: require (block) | warn | off
      feature_cost: {max_cost_ratio: 3}  # CheckFeatureCostOperator's settings (core/feature_cost/)
      staleness_impact: {max_cost_per_month: 0.01}  # ROC AUC a month of model age may cost (batch DAG)
    feature_requirements:                # never features, each with its reason (core/pipeline/requirements.py)
      forbidden: {dep_delay: known only after departure}
      forbidden_patterns: {"^(dep|arr)_": actual times are known only after the flight}
      serving_columns: suite             # every feature is a column the validation suite checks
    business:                            # the impact metric (airflow_mlops.core.pipeline.business)
      name: delay_cost                   # test_<name> at training, business.<name> per labelled batch
      threshold: 0.25                    # binary: act when P(positive) >= threshold
      per_rows: 1000
      costs: {false_negative: 100, false_positive: 25, true_positive: 25}
      check: {min_batches: 5, min_correlation: 0.3}   # does the proxy metric track it? (batch DAG)
      outcome: {name: delay_minutes_caught, column: arr_delay, floor: 0}  # measured after serving: the check
                                         # runs on it instead of the cost table (core/pipeline/outcome.py)

Parsing is cheap (PyYAML and the standard library only): DAG files read every pipeline file when
they are parsed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.params import parse_section
from airflow_mlops.core.pipeline import sections
from airflow_mlops.core.pipeline.record import CheckRecord
from airflow_mlops.core.pipeline.requirements import FeatureRequirements
from airflow_mlops.core.pipeline.schedule import MONTHLY, ServingSchedule, check_batch_pattern, parse_schedule
from airflow_mlops.core.pipeline.source import (
    SOURCE_KEYS,
    DataSource,
    RetrainOnNewData,
    parse_retrain_on_new_data,
    parse_source,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SECTIONS = (
    "model_name", "data", "validation", "gate", "serving", "drift", "monitoring", "training",
    "feature_requirements", "business",
)  # fmt: skip
_DATA = ("landing", "training_pattern", "batch_pattern", "watermark_column", "schema", *SOURCE_KEYS)
_VALIDATION = ("suite",)
_GATE = ("policy", "on_reject", "canary_batches", "canary")
_SERVING = (
    "schedule", "passthrough_columns", "shadow", "explain_top_k", "invalid_values", "on_empty", "monitor_columns",
    "runtime",
)  # fmt: skip
_DRIFT = ("spec", "policy")
_MONITORING = (
    "alerts", "max_model_age", "max_data_age", "retrain_when_stale", "reproducibility", "spec_review", "feature_cost",
    "staleness_impact",
)  # fmt: skip


# How check_spec_provenance treats a spec that is not committed unchanged (core/provenance.py). Here, not
# there: DAG files read pipeline files at every parse, and the git machinery is not needed for that.
ReviewMode = Literal["require", "warn", "off"]
REVIEW_MODES: tuple[ReviewMode, ...] = ("require", "warn", "off")


def parse_review(raw: Any, described: str) -> ReviewMode:
    """``require``, ``warn`` or ``off``. YAML 1.1 reads a bare ``off`` as false, so false means ``off``.

    :param described: how the message names the setting, e.g. ``"The 'review' argument"``.
    """
    if raw is False:
        return "off"
    text = str(raw).strip().lower() if isinstance(raw, str) else None
    if text not in REVIEW_MODES:
        raise SpecError(f"{described} must be 'require', 'warn' or 'off'. Got {raw!r} instead.")
    return text


@dataclass(frozen=True)
class PipelineFile:
    """One use case: its name (the file's stem), its file, and the settings of every stage."""

    name: str
    path: Path
    model_name: str
    landing: str
    training_pattern: str
    batch_pattern: str
    watermark_column: str | None = None
    schema: dict[str, str] = field(default_factory=dict)
    source: DataSource = field(
        default_factory=DataSource
    )  # core/pipeline/source.py: the landing files, or a SQL table or query
    retrain_on_new_data: RetrainOnNewData | None = None  # dags/landing_watch.py watches the source when set
    suite: Path | None = None
    gate_policy: dict[str, Any] = field(default_factory=dict)
    on_reject: str = "skip"
    canary: dict[str, Any] = field(default_factory=dict)  # CanaryPolicy.to_dict() of gate.canary_batches; {} when off
    serving: bool = False
    schedule: ServingSchedule = MONTHLY  # core/pipeline/schedule.py: the accepted forms, the batch DAG's id
    passthrough_columns: tuple[str, ...] = ()
    shadow: bool = True
    explain_top_k: int = 0
    invalid_values: str = "count"  # ScoringSpec's invalid_values: refuse | count
    on_empty: str = "fail"  # ScoringSpec's on_empty: fail | skip, as ingestion
    monitor_columns: tuple[str, ...] | None = None  # serving log and drift: the non-feature columns watched
    runtime: str = "onnx"  # ScoringSpec's runtime: onnx | compiled
    drift_spec: dict[str, Any] = field(default_factory=dict)
    drift_policy: dict[str, Any] = field(default_factory=dict)
    alerts_conn_id: str = "ml_alerts"
    max_model_age: str | None = None
    max_data_age: str | None = None
    retrain_when_stale: bool = False
    check_reproducibility: bool = False
    feature_requirements: FeatureRequirements = field(default_factory=FeatureRequirements)
    spec_review: ReviewMode = "warn"
    feature_cost: dict[str, Any] = field(default_factory=dict)
    staleness_impact: dict[str, Any] = field(default_factory=dict)  # StalenessImpactPolicy.to_dict()
    business_metric: dict[str, Any] = field(default_factory=dict)  # BusinessMetric.to_dict(); {} when none
    proxy_check: dict[str, Any] = field(default_factory=dict)  # ProxyCheck.to_dict() of business.check
    business_outcome: dict[str, Any] = field(default_factory=dict)  # Outcome.to_dict() of business.outcome; {}

    def landing_uri(self, storage_root: str) -> str:
        """The landing folder: as written when absolute (``/...``, ``s3://...``), else under the pipeline's
        folder of the storage root."""
        if self.landing.startswith(("/", "s3://", "file://")):
            return self.landing.removeprefix("file://")
        return f"{storage_root.rstrip('/')}/{self.name}/{self.landing.strip('/')}"

    @classmethod
    def from_yaml(
        cls, path: str | Path, project: str | Path | None = None, *, record: CheckRecord | None = None
    ) -> PipelineFile:
        """Read and check a pipeline file; ``project`` anchors relative paths (the parent of ``include/``).

        :param record: where files that passed the checks needing the training spec's modules are recorded,
            so an unchanged file skips them (:mod:`~airflow_mlops.core.pipeline.record`); None runs them.
        """
        import yaml

        path = Path(path)
        if not path.is_file():
            raise SourceNotFoundError(f"The pipeline file {str(path)!r} does not exist.")
        # libyaml's loader when PyYAML was built with it: DAG files parse these files at every parse.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        try:
            raw = yaml.load(path.read_text(), Loader=loader)
        except yaml.YAMLError as exc:
            raise SpecError(f"The pipeline file {str(path)!r} is not valid YAML: {exc}") from exc
        anchor = Path(project) if project is not None else project_folder(path.resolve().parent)
        return cls.from_mapping(path.stem, raw, path=path, project=anchor, record=record)

    @classmethod
    def from_mapping(
        cls, name: str, raw: Any, *, path: Path, project: Path, record: CheckRecord | None = None
    ) -> PipelineFile:
        where = str(path)
        if not _NAME.fullmatch(name):
            raise SpecError(f"A pipeline name must be letters, digits, '_', '-' or '.'. Got {name!r} ({where}).")
        top = parse_section(raw, where, _SECTIONS)
        if "training" not in top:
            raise SpecError(f"The pipeline file {where!r} has no 'training' section (the training spec).")
        data = parse_section(top.get("data"), f"{where}: data", _DATA)
        validation = parse_section(top.get("validation"), f"{where}: validation", _VALIDATION)
        gate = parse_section(top.get("gate"), f"{where}: gate", _GATE)
        serving = parse_section(top.get("serving"), f"{where}: serving", _SERVING)
        drift = parse_section(top.get("drift"), f"{where}: drift", _DRIFT)
        monitoring = parse_section(top.get("monitoring"), f"{where}: monitoring", _MONITORING)
        on_reject = str(gate.get("on_reject", "skip"))
        if on_reject not in ("skip", "fail"):
            raise SpecError(f"{where}: gate.on_reject must be 'skip' or 'fail'. Got {on_reject!r} instead.")
        suite = validation.get("suite")
        suite_path = None if suite in (None, "") else _project_path(project, str(suite), path)
        requirements, business_metric, proxy_check, outcome = sections.checked_sections(
            top, where, path, suite_path, record
        )
        schedule = parse_schedule(serving.get("schedule", "@monthly"), f"{where}: serving.schedule")
        batch_pattern = _text(data.get("batch_pattern", "*.parquet"), f"{where}: data.batch_pattern")
        check_batch_pattern(schedule, batch_pattern, where)
        source = parse_source(data, where)
        watermark = None if data.get("watermark_column") is None else str(data["watermark_column"])
        canary = sections.canary(gate, where)
        if canary and not ("serving" in top and serving.get("shadow", True) is True):
            raise SpecError(f"{where}: gate.canary_batches needs a 'serving' section with shadow: true (the "
                            "challenger is judged on the batches it is shadow-scored on).")  # fmt: skip
        return cls(
            name=name,
            path=path,
            model_name=_text(top.get("model_name", name), f"{where}: model_name"),
            landing=_text(data.get("landing", "landing"), f"{where}: data.landing"),
            training_pattern=_text(data.get("training_pattern", "*.parquet"), f"{where}: data.training_pattern"),
            batch_pattern=batch_pattern,
            watermark_column=watermark,
            source=source,
            retrain_on_new_data=parse_retrain_on_new_data(data.get("retrain_on_new_data"), source, watermark, where),
            schema={str(k): str(v) for k, v in parse_section(data.get("schema"), f"{where}: data.schema").items()},
            suite=suite_path,
            gate_policy=dict(parse_section(gate.get("policy"), f"{where}: gate.policy")),
            on_reject=on_reject,
            canary=canary,
            serving="serving" in top,
            schedule=schedule,
            passthrough_columns=tuple(str(c) for c in _list(serving.get("passthrough_columns"), where)),
            shadow=bool(serving.get("shadow", True)),
            explain_top_k=int(serving.get("explain_top_k", 0)),
            invalid_values=_one_of(
                serving.get("invalid_values", "count"), ("refuse", "count"), f"{where}: serving.invalid_values"
            ),
            on_empty=_one_of(serving.get("on_empty", "fail"), ("fail", "skip"), f"{where}: serving.on_empty"),
            monitor_columns=_monitor_columns(serving.get("monitor_columns"), where),
            runtime=_one_of(serving.get("runtime", "onnx"), ("onnx", "compiled"), f"{where}: serving.runtime"),
            drift_spec=dict(parse_section(drift.get("spec"), f"{where}: drift.spec")),
            drift_policy=dict(parse_section(drift.get("policy"), f"{where}: drift.policy")),
            alerts_conn_id=_text(monitoring.get("alerts", "ml_alerts"), f"{where}: monitoring.alerts"),
            max_model_age=_age(monitoring.get("max_model_age"), f"{where}: monitoring.max_model_age"),
            max_data_age=_age(monitoring.get("max_data_age"), f"{where}: monitoring.max_data_age"),
            retrain_when_stale=_flag(monitoring.get("retrain_when_stale"), f"{where}: monitoring.retrain_when_stale"),
            check_reproducibility=_flag(monitoring.get("reproducibility"), f"{where}: monitoring.reproducibility"),
            feature_requirements=requirements,
            spec_review=parse_review(monitoring.get("spec_review", "warn"), f"{where}: monitoring.spec_review"),
            feature_cost=sections.feature_cost(monitoring.get("feature_cost"), where),
            staleness_impact=sections.staleness_impact(monitoring.get("staleness_impact"), where),
            business_metric=business_metric,
            proxy_check=proxy_check,
            business_outcome=outcome,
        )


def project_folder(pipelines_folder: str | Path) -> Path:
    """The folder that relative paths in a pipeline file are under: the pipelines folder's grandparent (the
    project of ``<project>/include/pipelines``), or the folder itself when it has no grandparent (``/pipelines``)."""
    folder = Path(pipelines_folder).resolve()
    return folder.parents[1] if len(folder.parents) > 1 else folder


def discover(
    folder: str | Path, project: str | Path | None = None, *, checked: str | Path | None = None
) -> list[PipelineFile]:
    """Every ``*.yaml`` pipeline file of a folder, sorted by name; relative paths in them are under ``project``
    (:func:`project_folder` of ``folder`` when omitted).

    :param checked: folder of the :class:`~airflow_mlops.core.pipeline.record.CheckRecord` that lets an
        unchanged file skip its costly checks (the reference DAGs pass ``[mlops] checked_pipelines_folder``);
        None checks every file in full.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceNotFoundError(f"The pipeline folder {str(folder)!r} does not exist.")
    anchor = project_folder(folder) if project is None else project
    record = None if checked is None else CheckRecord(checked)
    return [PipelineFile.from_yaml(p, anchor, record=record) for p in sorted(folder.glob("*.yaml"))]


def pipeline_of_asset_uri(uri: str) -> str | None:
    """``x-mlops://<pipeline>/<kind>`` -> ``<pipeline>``; None for any other URI."""
    match = re.fullmatch(r"x-mlops://([^/]+)/[^/]+", uri)
    return match.group(1) if match else None


def _one_of(value: Any, allowed: tuple[str, ...], where: str) -> str:
    """One of ``allowed``; checked here so that a DAG reading a file with a typo does not load."""
    if value not in allowed:
        raise SpecError(f"{where} must be {' or '.join(repr(a) for a in allowed)}. Got {value!r} instead.")
    return str(value)


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError(f"{where} must be a non-empty string. Got {value!r} instead.")
    return value.strip()


def _age(value: Any, where: str) -> str | None:
    """A duration as the monitoring operators read it ("75d", "36h", seconds); parsed when the check runs."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)) or not str(value).strip():
        raise SpecError(f"{where} must be a duration such as '75d', '36h' or seconds. Got {value!r} instead.")
    return str(value).strip()


def _flag(value: Any, where: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise SpecError(f"{where} must be true or false. Got {value!r} instead.")
    return value


def _monitor_columns(value: Any, where: str) -> tuple[str, ...] | None:
    """``serving.monitor_columns``: None (every non-feature column is watched) when absent."""
    return None if value is None else tuple(str(c) for c in _list(value, where))


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise SpecError(f"{where}: serving.passthrough_columns must be a list. Got {value!r} instead.")
    return value


def _project_path(project: Path, value: str, pipeline_file: Path) -> Path:
    """An absolute path as given; ``./x`` or ``../x`` relative to the pipeline file's folder (a suite kept
    beside its pipeline file, wherever the pipelines folder is); any other relative path under ``project``."""
    path = Path(value)
    if path.is_absolute():
        return path
    if value.startswith(("./", "../")):
        return pipeline_file.resolve().parent / path
    return project / path
