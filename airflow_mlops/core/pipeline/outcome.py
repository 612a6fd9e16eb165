"""A business outcome measured after serving, for the proxy correlation check to run on instead of the
business metric's assumed cost table.

The cost table (:class:`~airflow_mlops.core.pipeline.business.BusinessMetric`) prices the four outcomes of
a decision with assumed unit costs, computed from the same labels as the proxy. An outcome is measured:
a number per served row that became known after serving (for flights, the realised arrival delay in
minutes), read from the labelled batch or joined from a file that arrives later, like delayed labels.
The pipeline file declares it inside ``business``::

    business:
      threshold: 0.25                 # the decision: act on rows with P(positive) >= 0.25
      ...
      outcome:
        name: delay_minutes_caught    # logged as outcome.<name> per labelled batch
        column: arr_delay             # the measured value per row
        source: outcomes/             # optional: a Parquet file or folder joined on ``keys`` after serving
        keys: [flight, sched_dep_ts]
        floor: 0                      # values below count as this (an early arrival is no delay)
        unit: minutes
        per_rows: 1000

What is measured at the business metric's decision threshold: the outcome on the rows the business acted
on, beyond what acting on as many rows at random would have caught, per ``per_rows`` rows::

    caught = (sum of the outcome over acted rows - acted share * sum over all rows) / rows * per_rows

Zero for a model that acts on nothing, on everything, or at random; higher when the acted rows carry more
of the outcome; acting on more rows pays only when they carry more than the average. Higher is better.
What stays assumed: the threshold (which rows the business acts on), and that the outcome on the acted
rows is what acting is worth (for flights, that a warned operations desk turns a delay minute into a
handled one); no unit cost is assumed.

Pure: parsing uses the standard library (pipeline files are read at every DAG parse), :meth:`Outcome.evaluate`
numpy.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.params import parse_number, parse_section
from airflow_mlops.core.pipeline.business import BusinessMetric, BusinessValue, ProxyCheck

if TYPE_CHECKING:
    import numpy as np

SERIES_PREFIX = "outcome."  # on the monitoring run of a served version, per labelled batch
_KEYS = ("name", "column", "source", "keys", "floor", "unit", "per_rows")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Outcome:
    """A measured business outcome and the decision it is judged at.

    :param name: logged as ``outcome.<name>`` on the serving version's monitoring run per labelled batch.
    :param column: the measured value per row (numeric), in the served output or in ``source``.
    :param threshold: the business metric's decision: act on rows with P(positive) >= threshold.
    :param source: a Parquet file or folder holding ``column`` and ``keys``, joined to the served output
        on ``keys`` (an outcome that arrives after serving); None when the output carries ``column``.
    :param keys: the columns identifying a served row in both (passed through by scoring).
    :param floor: values below it count as it (``0``: an early arrival is no delay); None keeps them.
    """

    name: str
    column: str
    threshold: float
    source: str | None = None
    keys: tuple[str, ...] = ()
    floor: float | None = None
    unit: str = ""
    per_rows: int = 1

    @classmethod
    def from_mapping(cls, raw: Any, business: BusinessMetric) -> Outcome:
        """Validate the ``business.outcome`` section; ``business`` gives the decision threshold.

        :raises SpecError: naming the key that is wrong and what was expected.
        """
        if not isinstance(raw, Mapping):
            raise SpecError(f"The outcome must be a mapping with {list(_KEYS)}. Got {raw!r} instead.")
        unknown = sorted(str(k) for k in raw if k not in _KEYS)
        if unknown:
            raise SpecError(f"The outcome has unknown key(s) {unknown}; allowed: {list(_KEYS)}.")
        if business.threshold is None:
            raise SpecError(
                "An outcome is judged at the business metric's decision threshold: binary models only. "
                f"{business.name!r} is a {business.task} cost."
            )
        name = str(raw.get("name", "")).strip()
        if not _NAME.fullmatch(name) or name == business.name:
            raise SpecError(
                "The outcome's 'name' must be lower-case letters, digits and '_', starting with a letter, and not "
                f"the business metric's name {business.name!r}. Got {raw.get('name')!r} instead."
            )
        column = raw.get("column")
        if not isinstance(column, str) or not column.strip():
            raise SpecError(f"The outcome {name!r} needs 'column', the measured value per row. Got {column!r}.")
        source, keys = _source(raw, name)
        floor = None if raw.get("floor") is None else parse_number(raw["floor"], "floor", low=-math.inf)
        per_rows = int(parse_number(raw.get("per_rows", 1), "per_rows", low=1, integer=True))
        unit = str(raw.get("unit") or "").strip()
        return cls(name, column.strip(), business.threshold, source, keys, floor, unit, per_rows)

    def to_dict(self) -> dict[str, Any]:
        """The mapping :meth:`from_mapping` reads back (without the threshold, which the business metric gives)."""
        out: dict[str, Any] = {"name": self.name, "column": self.column, "per_rows": self.per_rows}
        if self.source is not None:
            out.update(source=self.source, keys=list(self.keys))
        if self.floor is not None:
            out["floor"] = self.floor
        if self.unit:
            out["unit"] = self.unit
        return out

    @property
    def series_key(self) -> str:
        return f"{SERIES_PREFIX}{self.name}"

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        floor = f", values below {self.floor:g} counted as {self.floor:g}" if self.floor is not None else ""
        return (
            f"{self.name}: {self.column}{unit} on the rows acted on at probability >= {self.threshold:g}, beyond "
            f"acting on as many rows at random, per {self.per_rows:,} rows{floor}"
        )

    def evaluate(self, outcome: np.ndarray, probability: np.ndarray) -> BusinessValue:
        """The outcome caught beyond chance (module docstring); rows where either value is missing are left out."""
        import numpy as np

        values = np.asarray(outcome, dtype="float64")
        scores = np.asarray(probability, dtype="float64")
        if values.shape != scores.shape:
            raise SpecError(f"{self.name}: {values.shape[0]} outcomes for {scores.shape[0]} predictions.")
        keep = np.isfinite(values) & np.isfinite(scores)
        values, scores = values[keep], scores[keep]
        if self.floor is not None:
            values = np.maximum(values, self.floor)
        rows = int(values.size)
        if rows == 0:
            return BusinessValue(self.name, None, 0, {})
        acted = scores >= self.threshold
        share = float(acted.mean())
        total, on_acted = float(values.sum()), float(values[acted].sum())
        counts = {
            "acted_rows": float(acted.sum()),
            "outcome_total": total,
            "outcome_on_acted": on_acted,
            "mean_on_acted": float(values[acted].mean()) if acted.any() else math.nan,
            "mean_on_others": float(values[~acted].mean()) if (~acted).any() else math.nan,
        }
        value = (on_acted - share * total) / rows * self.per_rows
        return BusinessValue(self.name, float(value), rows, {k: v for k, v in counts.items() if math.isfinite(v)})


def _source(raw: Mapping[str, Any], name: str) -> tuple[str | None, tuple[str, ...]]:
    """``source`` and ``keys``: both or neither."""
    source, keys = raw.get("source"), raw.get("keys")
    if source in (None, ""):
        if keys:
            raise SpecError(f"The outcome {name!r} has 'keys' but no 'source' to join on them.")
        return None, ()
    if not isinstance(source, str):
        raise SpecError(f"The outcome {name!r}: 'source' must be a Parquet file or folder. Got {source!r}.")
    if isinstance(keys, str):
        keys = [k.strip() for k in keys.split(",") if k.strip()]
    if not isinstance(keys, Sequence) or not keys or not all(isinstance(k, str) and k for k in keys):
        raise SpecError(
            f"The outcome {name!r} is joined from {source!r}: 'keys' must list the columns that identify a "
            f"served row. Got {keys!r} instead."
        )
    return source, tuple(keys)


def business_section(raw: Any, training: Any, where: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The ``business`` section as the operators take it: the metric's mapping, its check's settings and
    the measured outcome's mapping ({} when none)."""
    section = parse_section(raw, f"{where}: business")
    if not section:
        return {}, {}, {}
    task = str(training.get("task", "")).strip().lower() if isinstance(training, Mapping) else ""
    try:
        metric = BusinessMetric.from_mapping({k: v for k, v in section.items() if k not in ("check", "outcome")}, task)
        check = ProxyCheck.from_mapping(parse_section(section.get("check"), "check")).to_dict()
        outcome = {} if section.get("outcome") is None else Outcome.from_mapping(section["outcome"], metric).to_dict()
        return metric.to_dict(), check, outcome
    except SpecError as exc:
        raise SpecError(f"{where}: business: {exc}") from exc
