"""A pipeline file's ``serving.schedule``: when its batches are served, and by which batch DAG.

Accepted forms (checked when the pipeline file is read):

- a preset: ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@quarterly``, ``@yearly``;
- a five-field cron expression, e.g. ``"0 6 * * 1"`` (Mondays at 06:00 UTC);
- an ISO-8601 duration of weeks, days, hours, minutes and seconds, e.g. ``P7D``, ``P1W``, ``PT6H``,
  ``P1DT12H`` (months and years have no fixed length: use a preset or a cron expression for them);
- an asset URI, e.g. ``x-mlops://flights_delay/dataset``: served when the asset is updated.

Presets and cron expressions become data intervals between two cron ticks, durations data intervals of
that length; an asset-triggered run has no data interval in Airflow 3, so its ``data.batch_pattern``
may not name one. Every distinct schedule is served by one batch DAG, named by :attr:`dag_id`:
``batch_serving`` for ``@monthly`` (and its cron expression ``0 0 1 * *``), ``batch_serving_<preset>``
for the other presets, ``batch_serving_cron_<fields>``, ``batch_serving_every_<7d|6h|...>`` and
``batch_serving_on_<uri>`` for the other forms.

Pure Python (the cron syntax is checked with croniter when it is installed, as it is beside Airflow):
DAG files read every pipeline file when they are parsed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol, TypeVar

from airflow_mlops.core.errors import SpecError

DAG_ID_PREFIX = "batch_serving"
PRESETS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@quarterly": "0 0 1 */3 *",
    "@yearly": "0 0 1 1 *",
}  # Airflow's cron presets (airflow.utils.dates.cron_presets), the same expressions
ACCEPTED = (
    f"a preset ({', '.join(PRESETS)}), a five-field cron expression such as '0 6 * * 1', an ISO-8601 "
    "duration of weeks, days, hours, minutes or seconds such as 'P7D' or 'PT6H', or an asset URI such as "
    "'x-mlops://<pipeline>/dataset'"
)
# The template names an asset-triggered run lacks: Airflow 3 gives it no logical date and no data interval.
INTERVAL_NAMES = frozenset((
    "data_interval_start", "data_interval_end", "logical_date", "ds", "ds_nodash", "ts", "ts_nodash",
    "ts_nodash_with_tz",
))  # fmt: skip

# A schedule is an ISO 8601 duration (``PT6H``), as Airflow accepts for ``schedule``; the pipeline file's
# other durations (``7d``, ``36h``) are read by :func:`airflow_mlops.core.params.parse_duration`.
_DURATION = re.compile(r"P(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", re.IGNORECASE)
_CALENDAR_DURATION = re.compile(r"P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T.*)?", re.IGNORECASE)
_ASSET_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_CRON_FIELD = re.compile(r"[0-9A-Za-z*/,?#-]+")
_CRON_SLUG = str.maketrans({"*": "x", "/": "s", ",": ".", "?": "q", "#": "h"})
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


@dataclass(frozen=True)
class ServingSchedule:
    """A parsed ``serving.schedule``.

    :param kind: ``cron`` (presets too), ``delta`` or ``asset``.
    :param value: what the timetable is built from: the five cron fields, the duration in whole seconds
        (as text), or the asset URI. Two pipeline files with the same kind and value share a batch DAG.
    :param text: the schedule as written in the pipeline file.
    """

    kind: Literal["cron", "delta", "asset"]
    value: str
    text: str

    @property
    def interval(self) -> timedelta:
        """The length of a ``delta`` schedule's data interval."""
        if self.kind != "delta":
            raise SpecError(f"The serving schedule {self.text!r} is a {self.kind} schedule, not a duration.")
        return timedelta(seconds=int(self.value))

    @property
    def has_data_interval(self) -> bool:
        """Whether a run of this schedule has a data interval (asset-triggered runs have none)."""
        return self.kind != "asset"

    @property
    def dag_id(self) -> str:
        """The id of the batch DAG that serves this schedule."""
        if self.kind == "cron":
            preset = next((name for name, cron in PRESETS.items() if cron == self.value), None)
            if preset == "@monthly":
                return DAG_ID_PREFIX  # the id the batch DAG had when it served only monthly pipelines
            if preset is not None:
                return f"{DAG_ID_PREFIX}_{preset[1:]}"
            return f"{DAG_ID_PREFIX}_cron_" + "_".join(self.value.lower().translate(_CRON_SLUG).split())
        if self.kind == "delta":
            seconds, parts = int(self.value), []
            for unit, size in _UNITS:
                count, seconds = divmod(seconds, size)
                parts += [f"{count}{unit}"] if count else []
            return f"{DAG_ID_PREFIX}_every_{''.join(parts)}"
        return f"{DAG_ID_PREFIX}_on_" + re.sub(r"[^A-Za-z0-9.-]+", "_", self.value).strip("_")


MONTHLY = ServingSchedule("cron", PRESETS["@monthly"], "@monthly")


def parse_schedule(raw: Any, where: str) -> ServingSchedule:
    """A ``serving.schedule`` value as a :class:`ServingSchedule`.

    :param where: how the message names the setting, e.g. ``"include/pipelines/x.yaml: serving.schedule"``.
    :raises SpecError: the value is none of the accepted forms; the message names it and lists them.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise _refused(raw, where)
    if text.lower() in PRESETS:
        return ServingSchedule("cron", PRESETS[text.lower()], text)
    if _ASSET_URI.fullmatch(text):
        return ServingSchedule("asset", text, text)
    if text[:1] in "Pp":
        return ServingSchedule("delta", str(_duration_seconds(text, where)), text)
    fields = text.split()
    if len(fields) == 5 and all(_CRON_FIELD.fullmatch(f) for f in fields) and _cron_is_valid(" ".join(fields)):
        return ServingSchedule("cron", " ".join(fields), text)
    raise _refused(raw, where)


class _Served(Protocol):
    """What :func:`batch_dags` reads of a pipeline file."""

    @property
    def path(self) -> Any: ...

    @property
    def schedule(self) -> ServingSchedule: ...


_P = TypeVar("_P", bound=_Served)


def batch_dags(pipelines: Iterable[_P]) -> dict[str, tuple[ServingSchedule, list[_P]]]:
    """The served pipelines grouped by batch DAG: ``{dag_id: (schedule, pipelines)}``, in file order.

    :raises SpecError: two different schedules would get the same DAG id (say, two asset URIs that differ
        only in characters a DAG id cannot hold).
    """
    found: dict[str, tuple[ServingSchedule, list[_P]]] = {}
    for pipeline in pipelines:
        schedule = pipeline.schedule
        first, served = found.setdefault(schedule.dag_id, (schedule, []))
        if (first.kind, first.value) != (schedule.kind, schedule.value):
            raise SpecError(
                f"The serving schedules {first.text!r} ({served[0].path}) and {schedule.text!r} "
                f"({pipeline.path}) would both be served by the DAG {schedule.dag_id!r}; write one of them "
                "the way the other is written."
            )
        served.append(pipeline)
    return found


def check_batch_pattern(schedule: ServingSchedule, pattern: str, where: str) -> None:
    """Refuse a batch pattern that names the data interval of a schedule whose runs have none.

    :raises SpecError: an asset schedule with a pattern that templates ``data_interval_start`` and the like.
    """
    if schedule.has_data_interval:
        return
    names = {name for block in re.findall(r"{{(.*?)}}", pattern) for name in re.findall(r"[A-Za-z_]\w*", block)}
    if names & INTERVAL_NAMES:
        raise SpecError(
            f"{where}: data.batch_pattern {pattern!r} names {sorted(names & INTERVAL_NAMES)}, but a run triggered "
            f"by the asset {schedule.value!r} has no logical date or data interval in Airflow 3; name the files "
            "by something else (a fixed glob, {{ dag_run.run_after }}, the triggering asset event's extra)."
        )


def _duration_seconds(text: str, where: str) -> int:
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()) or text.upper().endswith("T"):
        calendar = _CALENDAR_DURATION.fullmatch(text)
        if calendar is not None and (calendar.group(1) or calendar.group(2)):
            raise SpecError(
                f"{where}: {text!r} has years or months, which have no fixed length; use @monthly, @quarterly, "
                f"@yearly or a cron expression instead. Accepted: {ACCEPTED}."
            )
        raise _refused(text, where)
    weeks, days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    total = int(timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds).total_seconds())
    if total <= 0:
        raise SpecError(f"{where}: the duration {text!r} is zero. Accepted: {ACCEPTED}.")
    return total


def _cron_is_valid(expression: str) -> bool:
    """croniter's check (field ranges, names, steps), as Airflow's timetables run it; the field syntax
    alone without croniter."""
    try:
        from croniter import croniter
    except ImportError:  # pragma: no cover - croniter comes with Airflow
        return True
    return bool(croniter.is_valid(expression))


def _refused(raw: Any, where: str) -> SpecError:
    return SpecError(f"{where} must be {ACCEPTED}. Got {raw!r} instead.")
