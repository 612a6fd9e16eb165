"""Drift and quality per batch from the drift policy's state file, drawn as an inline SVG."""

from __future__ import annotations

from pathlib import Path

from airflow_mlops.core.drift.state import state_uri
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.plugins.drift_chart import drift_series, render_svg
from tests.plugins.support import PIPELINE, drift_state


def test_one_point_per_batch_with_the_labelled_checks_quality(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path))
    drift_state(root)
    series = drift_series(root, PIPELINE, "flights_delay")
    assert [(p.batch, p.drift_share, p.quality_drop, p.status) for p in series.points] == [
        ("2013-04-01", 0.1, None, "ok"),
        ("2013-04-08", 0.2, None, "ok"),
        ("2013-04-15", 0.5, 0.08, "retrain"),  # the serving check and the labelled one are one batch
    ]
    svg = render_svg(series)
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "stroke-dasharray" in svg  # threshold 0.3
    assert "<script" not in svg


def test_no_state_yet_and_an_unreadable_state_are_shown_not_raised(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path))
    empty = drift_series(root, PIPELINE, "flights_delay")
    assert (empty.points, empty.error, render_svg(empty)) == ([], "", "")
    root.write_bytes(state_uri(root, PIPELINE, "flights_delay"), b"{not json")
    broken = drift_series(root, PIPELINE, "flights_delay")
    assert broken.points == [] and "not valid JSON" in broken.error
