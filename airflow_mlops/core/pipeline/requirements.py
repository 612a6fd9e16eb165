"""Feature requirements: what a use case declares may never be a feature, and why.

Leakage detection (:mod:`~airflow_mlops.core.training.data`) catches a feature that gives the target away
in the data at hand. Some requirements are not visible in the data: a column known only after the event
being predicted (a flight's departure delay), a column from a source being retired, an identifier the
serving side will not have, personal data. The pipeline file declares them in its
``feature_requirements:`` section, each with its reason::

    feature_requirements:
      forbidden:                          # never a feature: column -> why
        dep_delay: known only after departure
        arr_delayed_15: the target itself
      forbidden_patterns:                 # never a feature: regular expression on the name -> why
        "^(dep|arr)_": actual departure and arrival facts are known only after the flight
      serving_columns: suite              # every feature is a column the validation suite checks
      personal_data: true                 # a feature whose values look like personal data is refused

``serving_columns`` is ``suite`` (the columns the pipeline's ``validation.suite`` names: every serving
batch is validated against it, so a column it names is there at serving) or an explicit list.
``personal_data`` (true by default) runs the personal-data detector of
:func:`~airflow_mlops.core.monitoring.data.check_personal_data` on the feature columns of every training
snapshot, with no column allowed: a column reviewed for the snapshot (``allow_columns``) may still not
be a feature.

The requirements are enforced twice: when the pipeline file is read (a DAG whose file breaks them does
not load) and by training itself (``TrainModelOperator(feature_requirements=...)``), so that a spec
edited after the DAG was parsed, or trained by an operator outside the reference DAGs, is refused too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airflow_mlops.core.errors import SourceNotFoundError, SpecError

SECTION = "feature_requirements"
_KEYS = ("forbidden", "forbidden_patterns", "serving_columns", "personal_data")
SUITE = "suite"  # serving_columns: the columns of the pipeline's validation suite
# Expectation arguments that name the columns a batch must carry (table- and column-level).
_SUITE_COLUMN_KEYS = ("column", "column_A", "column_B")
_SUITE_COLUMN_LISTS = ("column_list", "column_set")


@dataclass(frozen=True)
class Violation:
    """One feature breaking one requirement: which feature, which requirement, and the declared reason."""

    feature: str
    requirement: str
    reason: str

    def __str__(self) -> str:
        return f"feature {self.feature!r} breaks {self.requirement}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"feature": self.feature, "requirement": self.requirement, "reason": self.reason}


@dataclass(frozen=True)
class FeatureRequirements:
    """Declared requirements on a pipeline's features (see the module docstring).

    :param forbidden: column -> reason it may never be a feature.
    :param forbidden_patterns: regular expression (searched in the feature's name) -> reason.
    :param serving_columns: the columns available at serving; ``None`` when not declared.
    :param serving_source: where ``serving_columns`` came from, quoted in refusals.
    :param personal_data: refuse a feature whose values or name look like personal data.
    """

    forbidden: dict[str, str] = field(default_factory=dict)
    forbidden_patterns: dict[str, str] = field(default_factory=dict)
    serving_columns: tuple[str, ...] | None = None
    serving_source: str = "the declared list"
    personal_data: bool = True

    @classmethod
    def from_mapping(cls, raw: Any, *, where: str = SECTION, suite: Path | None = None) -> FeatureRequirements:
        """Build from the ``feature_requirements`` section (or :meth:`to_dict`'s output).

        :param suite: the pipeline's validation suite file, read when ``serving_columns: suite``.
        """
        if raw is None:
            return cls()
        if not isinstance(raw, Mapping):
            raise SpecError(f"{where} must be a mapping. Got {type(raw).__name__} {raw!r} instead.")
        allowed = (*_KEYS, "serving_source")
        unknown = sorted(str(k) for k in raw if k not in allowed)
        if unknown:
            raise SpecError(f"{where} has unknown key(s) {unknown}; allowed: {list(_KEYS)}.")
        forbidden = _reasons(raw.get("forbidden"), f"{where}.forbidden", "column")
        patterns = _reasons(raw.get("forbidden_patterns"), f"{where}.forbidden_patterns", "pattern")
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise SpecError(
                    f"{where}.forbidden_patterns: {pattern!r} is not a valid regular expression: {exc}."
                ) from exc
        columns, source = _serving_columns(raw.get("serving_columns"), f"{where}.serving_columns", suite)
        personal = raw.get("personal_data", True)
        if not isinstance(personal, bool):
            raise SpecError(f"{where}.personal_data must be true or false. Got {personal!r} instead.")
        return cls(
            forbidden=forbidden,
            forbidden_patterns=patterns,
            serving_columns=columns,
            serving_source=str(raw.get("serving_source") or source),
            personal_data=personal,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able; ``FeatureRequirements.from_mapping(r.to_dict()) == r`` (the suite already resolved)."""
        return {
            "forbidden": dict(self.forbidden),
            "forbidden_patterns": dict(self.forbidden_patterns),
            "serving_columns": None if self.serving_columns is None else list(self.serving_columns),
            "serving_source": self.serving_source,
            "personal_data": self.personal_data,
        }

    @property
    def declared(self) -> int:
        """How many requirements were declared (personal data counts as one when on)."""
        serving = 0 if self.serving_columns is None else 1
        return len(self.forbidden) + len(self.forbidden_patterns) + serving + int(self.personal_data)

    def violations(
        self, features: Sequence[str], *, produced: Collection[str] = (), read: Mapping[str, str] | None = None
    ) -> list[Violation]:
        """Every (feature, requirement) the feature names break; personal data needs the values (below).

        :param produced: features computed by the model's transforms: not serving columns, so only their
            names are checked.
        :param read: input columns the transforms read -> which transform: checked as features are (a
            column that may not be a feature may not feed one either).
        """
        found: list[Violation] = []
        available = None if self.serving_columns is None else set(self.serving_columns)
        named = [(f, "") for f in features] + [(c, f" ({why})") for c, why in (read or {}).items()]
        for column, use in named:
            if column in self.forbidden:
                found.append(Violation(column, "forbidden", self.forbidden[column] + use))
            for pattern, reason in self.forbidden_patterns.items():
                if re.search(pattern, column):
                    found.append(Violation(column, f"forbidden_patterns {pattern!r}", reason + use))
            if available is not None and column not in available and column not in produced:
                found.append(
                    Violation(
                        column,
                        "serving_columns",
                        f"not a column of {self.serving_source}, which every serving batch is checked "
                        f"against: it may be missing at serving{use}",
                    )
                )
        return list(dict.fromkeys(found))

    def personal_data_violations(
        self, columns: Mapping[str, Sequence[Any]], *, min_share: float = 0.05
    ) -> list[Violation]:
        """Feature columns (name -> sample values; text values are inspected) that look like personal data."""
        if not self.personal_data:
            return []
        from airflow_mlops.core.monitoring import check_personal_data

        finding = check_personal_data(columns, min_share=min_share)
        found = []
        for name, facts in sorted(finding.details["suspect"].items()):
            shares = ", ".join(f"{kind} {share:.0%}" for kind, share in facts["patterns"].items())
            why = f"values look like {shares}" if shares else "its name suggests personal data"
            found.append(Violation(name, "personal_data", f"{why}; personal data is never a feature"))
        return found

    def check(self, features: Sequence[str], *, where: str, transforms: Any = None) -> None:
        """Raise :class:`SpecError` naming every feature, or column a transform reads, that breaks a
        requirement (``transforms``: the spec's :class:`~airflow_mlops.core.features.FeatureTransforms`)."""
        produced = transforms.outputs if transforms else ()
        read = transforms.readers() if transforms else None
        refuse(self.violations(features, produced=produced, read=read), where=where)


def refuse(violations: Collection[Violation], *, where: str) -> None:
    """Raise one :class:`SpecError` listing every violation; return when there is none."""
    if not violations:
        return
    listed = "".join(f"\n- {v}" for v in violations)
    raise SpecError(
        f"{where}: {len(violations)} feature requirement(s) broken:{listed}\nRemove the feature(s) from "
        f"training.features, or change {SECTION} if the requirement no longer holds."
    )


def suite_columns(suite: Path) -> tuple[str, ...]:
    """The columns a validation suite file (GX JSON) names: a batch that passes it carries them all."""
    try:
        data = json.loads(suite.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"The validation suite {str(suite)!r} does not exist.") from exc
    except (OSError, ValueError) as exc:
        raise SpecError(f"The validation suite {str(suite)!r} cannot be read as JSON: {exc}.") from exc
    expectations = data.get("expectations") if isinstance(data, Mapping) else None
    if not isinstance(expectations, list):
        raise SpecError(f"The validation suite {str(suite)!r} has no 'expectations' list.")
    names: dict[str, None] = {}
    for entry in expectations:
        kwargs = entry.get("kwargs") if isinstance(entry, Mapping) else None
        if not isinstance(kwargs, Mapping):
            continue
        for key in _SUITE_COLUMN_KEYS:
            if isinstance(kwargs.get(key), str):
                names[kwargs[key]] = None
        for key in _SUITE_COLUMN_LISTS:
            if isinstance(kwargs.get(key), list):
                names.update((c, None) for c in kwargs[key] if isinstance(c, str))
    return tuple(names)


def _reasons(raw: Any, where: str, what: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where} must map each {what} to the reason it is not a feature. Got {raw!r} instead.")
    reasons = {}
    for key, reason in raw.items():
        if not isinstance(key, str) or not key.strip():
            raise SpecError(f"{where}: every {what} must be a non-empty string. Got {key!r} instead.")
        if not isinstance(reason, str) or not reason.strip():
            raise SpecError(f"{where}: {key!r} needs its reason (a non-empty string). Got {reason!r} instead.")
        reasons[key.strip()] = reason.strip()
    return reasons


def _serving_columns(raw: Any, where: str, suite: Path | None) -> tuple[tuple[str, ...] | None, str]:
    if raw is None:
        return None, "the declared list"
    if raw == SUITE:
        if suite is None:
            raise SpecError(f"{where} is 'suite', but the pipeline file has no validation.suite to read it from.")
        return suite_columns(suite), f"the validation suite {suite.name}"
    if isinstance(raw, str) or not isinstance(raw, Sequence) or not all(isinstance(c, str) for c in raw):
        raise SpecError(f"{where} must be 'suite' or a list of column names. Got {raw!r} instead.")
    return tuple(raw), "the declared list"
