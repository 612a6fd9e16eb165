"""Drift and quality per batch for the MLOps view: read from the drift policy's state file and drawn as an
inline SVG (no script, no library).

The state file (:mod:`airflow_mlops.core.drift.state`) keeps the recent observations of one monitored model.
A batch may have two checks, the serving one and the labelled one (``<partition>:labelled``): the batch's
drift share is that of its latest check with a figure (the importance-weighted share when there is one, as
the policy uses it), its quality drop that of the check that had labels. Nothing here imports Airflow.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.drift.policy import batch_key
from airflow_mlops.core.drift.state import load_state, state_uri
from airflow_mlops.core.errors import ArtifactError, SpecError

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot

WIDTH, HEIGHT, PAD = 640, 180, 32


@dataclass(frozen=True)
class BatchPoint:
    batch: str
    as_of: str
    drift_share: float | None
    quality_drop: float | None
    status: str  # the policy's decision for the batch (retrain, ok, cooldown, ...)


@dataclass(frozen=True)
class DriftSeries:
    state_uri: str
    points: list[BatchPoint]
    threshold: float | None  # the policy's drift_share threshold
    error: str = ""


def _figure(observation: dict[str, Any]) -> float | None:
    value = observation.get("weighted_drift_share")
    value = observation.get("drift_share") if value is None else value
    return None if value is None else float(value)


def batch_points(state: dict[str, Any]) -> list[BatchPoint]:
    """One point per batch, oldest first, from a drift policy state."""
    decisions = state.get("decisions") or {}
    grouped: dict[str, dict[str, Any]] = {}
    for obs in sorted(state.get("observations") or [], key=lambda o: (str(o.get("as_of")), str(o.get("batch_id")))):
        key = batch_key(str(obs.get("batch_id")))
        point = grouped.setdefault(key, {"as_of": obs.get("as_of"), "drift": None, "quality": None, "status": ""})
        point["drift"] = _figure(obs) if _figure(obs) is not None else point["drift"]
        if obs.get("quality_drop") is not None:
            point["quality"] = float(obs["quality_drop"])
        status = (decisions.get(str(obs.get("batch_id"))) or {}).get("status")
        if status and point["status"] != "retrain":
            point["status"] = str(status)
    return [
        BatchPoint(key, str(p["as_of"]), p["drift"], p["quality"], p["status"] or "unknown")
        for key, p in grouped.items()
    ]


def drift_series(root: StorageRoot, pipeline: str, model: str) -> DriftSeries:
    """The drift points of ``model`` in ``pipeline``; an unreadable state is reported, not raised."""
    try:
        uri = state_uri(root, pipeline, model)
    except SpecError as exc:
        return DriftSeries("", [], None, str(exc))
    try:
        state = load_state(root, uri)
    except ArtifactError as exc:
        return DriftSeries(uri, [], None, str(exc))
    threshold = (state.get("policy") or {}).get("drift_share")
    return DriftSeries(uri, batch_points(state), None if threshold is None else float(threshold))


def _polyline(values: list[float | None], top: float, color: str) -> str:
    step = (WIDTH - 2 * PAD) / max(1, len(values) - 1)
    points = [
        (PAD + i * step, HEIGHT - PAD - (HEIGHT - 2 * PAD) * min(v, top) / top)
        for i, v in enumerate(values)
        if v is not None
    ]
    if not points:
        return ""
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>' for x, y in points)
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>{dots}'


def render_svg(series: DriftSeries) -> str:
    """The drift share (blue) and quality drop (orange) per batch on one 0..top scale, the threshold dashed."""
    if not series.points:
        return ""
    drift = [p.drift_share for p in series.points]
    quality = [p.quality_drop for p in series.points]
    known = [v for v in (*drift, *quality, series.threshold) if v is not None]
    top = max([0.1, *known]) * 1.1
    threshold = ""
    if series.threshold is not None:
        y = HEIGHT - PAD - (HEIGHT - 2 * PAD) * series.threshold / top
        threshold = (
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="#888" stroke-dasharray="4 3"/>'
        )
    first, last = html.escape(series.points[0].batch), html.escape(series.points[-1].batch)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-label="drift share and quality drop per batch">'
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" fill="none" stroke="#ccc"/>'
        f'<text x="4" y="{PAD}" font-size="11">{top:.2f}</text><text x="4" y="{HEIGHT - PAD}" font-size="11">0</text>'
        f"{threshold}{_polyline(drift, top, '#1f77b4')}{_polyline(quality, top, '#ff7f0e')}"
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{first}</text>'
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">{last}</text></svg>'
    )
