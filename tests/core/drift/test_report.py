"""Drift reports: the HTML pages and the JSON summary written under the storage root."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from airflow_mlops.core import drift
from airflow_mlops.core.drift import DriftSpec
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.storage import StorageRoot
from tests.support import drift as flights_drift


# -- reports and outputs ---------------------------------------------------------------------------
def test_reports_and_summary_are_written_under_the_root(
    tmp_path: Path, scored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, labelled = scored
    labelled = labelled.assign(visib=np.nan)  # an empty column gets no chart
    root = StorageRoot(str(tmp_path))
    spec = DriftSpec.from_mapping({"report_sample_size": 2000}, flights_drift.training_spec())
    outcome = drift.check_batch(root, reference, labelled, spec, pipeline="flights", partition="2013-12-01")
    outputs = outcome.outputs
    assert outputs.summary_uri == f"{tmp_path}/flights/drift/2013-12-01/labelled/summary.json"
    assert outputs.report_uri and outputs.quality_report_uri
    for uri in (outputs.report_uri, outputs.quality_report_uri):
        html = Path(uri).read_text(encoding="utf-8")
        assert html.lstrip().lower().startswith("<!doctype html") or "<html" in html[:500].lower()
    assert "sched_dep_time" in Path(outputs.report_uri).read_text(encoding="utf-8")
    summary = json.loads(Path(outputs.summary_uri).read_text())
    assert summary["result"] == json.loads(json.dumps(outcome.result.to_dict()))
    assert summary["report_uri"] == outputs.report_uri and summary["spec"]["report_sample_size"] == 2000
    assert [p.name for p in Path(outputs.summary_uri).parent.iterdir() if p.name.startswith(".tmp")] == []


# -- when the pages are rendered, and what they show -----------------------------------------------
def test_html_report_modes_parse_and_default_to_on_alert() -> None:
    assert DriftSpec.from_mapping({}).html_report == "on_alert"
    assert [DriftSpec.from_mapping({"html_report": v}).html_report for v in ("always", " NEVER ", True, "false")] == [
        "always", "never", "always", "never",
    ]  # fmt: skip
    with pytest.raises(SpecError, match=r"'html_report'.*\['always', 'on_alert', 'never'\].*'sometimes'"):
        DriftSpec.from_mapping({"html_report": "sometimes"})


@pytest.mark.parametrize(
    ("mode", "shifted", "written"),
    [("on_alert", False, False), ("on_alert", True, True), ("always", False, True), ("never", True, False)],
)
def test_pages_are_rendered_per_html_report(
    tmp_path: Path, scored: tuple[pd.DataFrame, pd.DataFrame], mode: str, shifted: bool, written: bool
) -> None:
    reference, _ = scored
    features = flights_drift.training_spec()
    current = reference.sample(frac=1.0, random_state=1)  # the same rows: nothing drifts
    if shifted:
        current = current.assign(temp=current["temp"] + 30)
    spec = DriftSpec.from_mapping({"html_report": mode}, features)
    outcome = drift.check_batch(StorageRoot(str(tmp_path)), reference, current, spec, pipeline="p", partition="x")
    assert bool(outcome.result.drifted_columns) is shifted
    assert (outcome.outputs.report_uri is not None) is written
    summary = json.loads(Path(outcome.outputs.summary_uri).read_text())
    assert summary["report_uri"] == outcome.outputs.report_uri and summary["spec"]["html_report"] == mode


def test_the_page_shows_the_checks_own_figures_from_a_bounded_sample(
    tmp_path: Path, scored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, labelled = scored
    spec = DriftSpec.from_mapping({"html_report": "always", "report_sample_size": 500}, flights_drift.training_spec())
    result = drift.compute_drift(reference, labelled, spec)
    reports = drift.render_reports(reference, labelled, result, spec)
    page = reports["drift"]
    for item in (*result.features, *result.predictions):
        assert f"<td>{item.column}</td>" in page
        if item.status == "tested":  # the verdict's own score, not a recomputed one
            assert f"{item.method} {item.score:.4g} (threshold {item.threshold:.4g})" in page
    assert "charts from at most 500 / 500 rows" in page and page.count("<svg") == sum(
        c.status == "tested"
        for c in (*result.features, *result.predictions, result.target)  # type: ignore[union-attr]
    )
    assert result.quality is not None and f"{result.quality.current:.4g}" in reports["quality"]
    assert "<script" not in page and len(page) < 400_000
