"""Drift reports: Evidently HTML reports and the JSON summary written under the storage root."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from airflow_mlops.core import drift
from airflow_mlops.core.drift import DriftSpec
from airflow_mlops.core.storage import StorageRoot
from tests.support import drift as flights_drift


# -- reports and outputs ---------------------------------------------------------------------------
def test_reports_and_summary_are_written_under_the_root(
    tmp_path: Path, scored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, labelled = scored
    labelled = labelled.assign(visib=np.nan)  # an empty column must not reach Evidently (it would refuse it)
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
