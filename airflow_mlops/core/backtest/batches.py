"""A labelled history cut into the batches a backtest replays: by calendar period of a time column
(``monthly``, ``weekly``, ``daily``) or by a fixed number of rows (``rows=N``).

Rows before the first batch are the history the first champion trains on. Without ``start`` that
history is the first period (or the first ``N`` rows), so the replay starts with the second batch.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError

if TYPE_CHECKING:
    import pandas as pd

Period = Literal["monthly", "weekly", "daily"]
_PERIODS = {"monthly": "M", "weekly": "W-SUN", "daily": "D"}  # pandas periods; a week runs Monday to Sunday
_ROWS = re.compile(r"^rows=(\d+)$")


@dataclass(frozen=True)
class BatchRule:
    """How to cut the history: a calendar ``period`` of the time column, or ``rows`` per batch."""

    period: Period | None = None
    rows: int | None = None

    @classmethod
    def parse(cls, raw: str) -> BatchRule:
        text = str(raw).strip().lower()
        if text in _PERIODS:
            return cls(period=text)  # type: ignore[arg-type]
        match = _ROWS.match(text)
        if match and int(match.group(1)) > 0:
            return cls(rows=int(match.group(1)))
        raise SpecError(f"The batch rule must be monthly, weekly, daily or rows=N (N > 0). Got {raw!r} instead.")

    def describe(self) -> str:
        return str(self.period) if self.period else f"rows={self.rows}"


@dataclass(frozen=True)
class Batch:
    """One replayed batch: its label, the time it stands for (``as_of``: its end) and its rows."""

    label: str
    start: str
    end: str
    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)


@dataclass(frozen=True)
class History:
    """The rows the first champion trains on, then the batches in time order."""

    initial: pd.DataFrame
    batches: tuple[Batch, ...]


def read_history(location: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file, or every such file of a folder (in name order), as one frame.

    :raises SourceNotFoundError: nothing readable is there.
    """
    import pandas as pd

    path = Path(location)
    files = sorted(p for p in path.iterdir() if p.suffix in (".parquet", ".csv")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise SourceNotFoundError(f"No Parquet or CSV history at {str(path)!r}.")
    frames = [pd.read_parquet(f) if f.suffix == ".parquet" else pd.read_csv(f) for f in files]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _moment(raw: str | None, name: str) -> datetime | None:
    if raw is None or raw == "":
        return None
    try:
        return datetime.fromisoformat(str(raw))
    except ValueError as exc:
        raise SpecError(f"The {name!r} date must be ISO 8601, e.g. 2011-04-01. Got {raw!r} instead.") from exc


def _times(frame: pd.DataFrame, column: str) -> pd.Series:
    import pandas as pd

    if column not in frame.columns:
        raise DataError(f"The time column {column!r} is not in the history (columns: {sorted(frame.columns)}).")
    times = pd.to_datetime(frame[column])
    if getattr(times.dt, "tz", None) is not None:  # batches are cut in UTC wall time
        times = times.dt.tz_convert("UTC").dt.tz_localize(None)
    return times


def split_batches(
    frame: pd.DataFrame,
    rule: BatchRule,
    time_column: str | None,
    *,
    start: str | None = None,
    end: str | None = None,
) -> History:
    """Sort ``frame`` by ``time_column`` and cut it into the initial history and the batches.

    ``start`` is where the first batch begins (earlier rows are the initial history); ``end`` is
    where the last one ends (later rows are left out).

    :raises SpecError: a calendar rule without a time column, or dates that are not ISO 8601.
    :raises DataError: the time column is missing, or the cut leaves no history or no batch.
    """
    begin, stop = _moment(start, "from"), _moment(end, "to")
    ordered = frame
    times = None
    if time_column:
        times = _times(frame, time_column)
        order = times.sort_values(kind="stable").index
        ordered, times = frame.loc[order].reset_index(drop=True), times.loc[order].reset_index(drop=True)
        if stop is not None:
            ordered, times = ordered[times < stop].reset_index(drop=True), times[times < stop].reset_index(drop=True)
    if rule.rows:
        keys = _row_keys(len(ordered), rule.rows, times, begin)
    elif times is None:
        raise SpecError(f"The {rule.period} batch rule needs a time column; none is given or found in the pipeline.")
    else:
        keys = times.dt.to_period(_PERIODS[str(rule.period)]).dt.start_time
    return _cut(ordered, keys, times, begin, rule)


def _row_keys(n: int, size: int, times: pd.Series | None, begin: datetime | None) -> pd.Series:
    """Batch numbers for ``rows=N``: rows before ``begin`` are batch -1, the rest counted in N."""
    import numpy as np
    import pandas as pd

    position = np.arange(n)
    first = int((times < begin).sum()) if times is not None and begin is not None else size
    return pd.Series(np.where(position < first, -1, (position - first) // size))


def _cut(
    ordered: pd.DataFrame, keys: pd.Series, times: pd.Series | None, begin: datetime | None, rule: BatchRule
) -> History:
    """Group rows by batch key; keys before ``begin`` (or the first key) form the initial history."""
    distinct = list(dict.fromkeys(keys.tolist()))
    if rule.rows:
        initial_keys: Sequence[object] = [-1]
    elif begin is not None:
        initial_keys = [k for k in distinct if k < begin]
    else:
        initial_keys = distinct[:1]
    initial_mask = keys.isin(list(initial_keys))
    batches = []
    for key in distinct:
        if key in initial_keys:
            continue
        mask = (keys == key).to_numpy()
        rows = ordered[mask].reset_index(drop=True)
        first, last = (times[mask].min(), times[mask].max()) if times is not None else (None, None)
        label = key.strftime(_LABELS[str(rule.period)]) if rule.period else f"batch-{int(key) + 1:04d}"
        batches.append(Batch(label, _iso(first), _iso(last), rows))
    initial = ordered[initial_mask.to_numpy()].reset_index(drop=True)
    if initial.empty or not batches:
        raise DataError(
            f"Cutting the history {rule.describe()} from {begin or 'its first batch'} leaves "
            f"{len(initial)} rows to train the first champion on and {len(batches)} batch(es) to replay: "
            "both must be non-empty (move --from)."
        )
    return History(initial, tuple(batches))


_LABELS = {"monthly": "%Y-%m", "weekly": "%Y-%m-%d", "daily": "%Y-%m-%d"}


def _iso(moment: object) -> str:
    return "" if moment is None else str(getattr(moment, "isoformat", lambda: moment)())
