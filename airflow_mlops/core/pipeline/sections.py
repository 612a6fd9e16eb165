"""The sections of a pipeline file that other packages define, read and checked when the file is read.

Each is checked by its own package's class (the feature requirements, the business metric and its
outcome, the canary policy, the feature cost policy, the staleness impact policy), imported only when
the section is read, so that parsing a DAG file pays for the sections its pipeline files use. A bad value
is refused here, with the section named, not at the first task that reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_section
from airflow_mlops.core.pipeline.record import CheckRecord
from airflow_mlops.core.pipeline.requirements import FeatureRequirements

FEATURE_COST_KEYS = (
    "max_cost_ratio", "min_cost_share", "max_serving_ms_per_1k", "max_model_bytes", "max_dimension_lag",
    "max_unmatched_share", "rows", "repeats",
)  # fmt: skip


def checked_sections(
    top: Mapping[str, Any], where: str, path: Path, suite: Path | None, record: CheckRecord | None
) -> tuple[FeatureRequirements, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The feature requirements (checked against the file's own training features) and the business section
    (its metric, its check's settings and its measured outcome); a file that breaks them is refused here, so
    a DAG reading it does not load. Their checks import the training spec's and the business metric's
    modules, so a file that passed them unchanged (``record``) is not checked again."""
    requirements = FeatureRequirements.from_mapping(
        top.get("feature_requirements"), where=f"{where}: feature_requirements", suite=suite
    )
    key = None if record is None else record.key(top, requirements.to_dict())
    known = {} if record is None or key is None else (record.get(path, key) or {})
    business_metric, proxy_check, outcome = (known.get(k) for k in ("business_metric", "proxy_check", "outcome"))
    if isinstance(business_metric, dict) and isinstance(proxy_check, dict) and isinstance(outcome, dict):
        return requirements, business_metric, proxy_check, outcome
    from airflow_mlops.core.pipeline.outcome import business_section

    _check_features(requirements, top, where)
    business_metric, proxy_check, outcome = business_section(top.get("business"), top["training"], where)
    if record is not None and key is not None:
        record.put(path, key, {"business_metric": business_metric, "proxy_check": proxy_check, "outcome": outcome})
    return requirements, business_metric, proxy_check, outcome


def _check_features(requirements: FeatureRequirements, top: Mapping[str, Any], where: str) -> None:
    """The file's training features, and the columns its transforms read, against its requirements."""
    from airflow_mlops.core.training.spec_fields import declared_features
    from airflow_mlops.core.training.spec_sections import declared_transforms

    training = top.get("training")
    if isinstance(training, Mapping):
        requirements.check(declared_features(training), where=where, transforms=declared_transforms(training))


def canary(gate: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``gate.canary_batches`` and ``gate.canary`` as the canary tasks take them; ``{}`` when not set."""
    from airflow_mlops.core.canary.policy import CanaryPolicy

    policy = CanaryPolicy.from_mapping(
        gate.get("canary_batches"),
        parse_section(gate.get("canary"), f"{where}: gate.canary"),
        where=f"{where}: gate",
    )
    return policy.to_dict() if policy.enabled else {}


def feature_cost(raw: Any, where: str) -> dict[str, Any]:
    """``monitoring.feature_cost`` checked now (a bad value is refused when this file is read, not at the
    first training), and handed to check_feature_cost as written: an omitted setting keeps its default."""
    from airflow_mlops.core.feature_cost.verdict import CostPolicy
    from airflow_mlops.core.params import parse_number

    section = dict(parse_section(raw, f"{where}: monitoring.feature_cost", FEATURE_COST_KEYS))
    try:
        CostPolicy.from_mapping({k: v for k, v in section.items() if k in CostPolicy.SETTINGS})
        if "rows" in section:
            parse_number(section["rows"], "rows", low=1, integer=True)
        if "repeats" in section:
            parse_number(section["repeats"], "repeats", low=1, high=50, integer=True)
    except SpecError as exc:
        raise SpecError(f"{where}: monitoring.feature_cost: {exc}") from exc
    return section


def staleness_impact(raw: Any, where: str) -> dict[str, Any]:
    """``monitoring.staleness_impact`` checked and completed with its defaults."""
    from airflow_mlops.core.monitoring.staleness import StalenessImpactPolicy

    try:
        return StalenessImpactPolicy.from_mapping(raw).to_dict()
    except SpecError as exc:
        raise SpecError(f"{where}: monitoring.staleness_impact: {exc}") from exc
