"""The policy's decision at the top of the HTML report and in the summary, escaped."""

from __future__ import annotations

import json

import pandas as pd

from airflow_mlops.core.drift import DriftPolicy, DriftSpec, check_batch, decide, observe, write_decision
from airflow_mlops.core.drift.headline import insert_block
from airflow_mlops.core.storage import StorageRoot
from tests.support import drift as flights_drift


def test_the_decision_and_its_reasons_open_the_report(
    tmp_path: object, scored: tuple[pd.DataFrame, pd.DataFrame]
) -> None:
    reference, december = scored
    root = StorageRoot(str(tmp_path))
    current = december.drop(columns=[flights_drift.TARGET]).assign(visib=december["visib"])
    spec = DriftSpec.from_mapping({"report_sample_size": 800}, flights_drift.training_spec())
    outcome = check_batch(root, reference.assign(visib=10.0), current, spec, pipeline="flights", partition="2013-12")
    decision, _ = decide(DriftPolicy(drift_share=0.2), {}, observe(outcome.result, "2013-12", "2014-01-01", "v1"))
    summary = write_decision(root, outcome.outputs, decision, outcome.result)
    assert outcome.outputs.report_uri is not None
    page = root.read_bytes(outcome.outputs.report_uri).decode()
    block = page.index('<section id="mlops-drift-decision"')
    assert page.index("<body") < block < page.index("</section>") < page.index("<h1")  # before the report
    assert f"Drift policy: {decision.status}" in page and "left out: constant in the reference: visib" in page
    assert "quality unknown (no labels in this batch)" in page
    recorded = json.loads(root.read_bytes(outcome.outputs.summary_uri))
    assert recorded["decision"] == json.loads(json.dumps(summary)) and recorded["decision"]["status"] == decision.status
    assert recorded["result"]["left_out"] == {"constant in the reference": ["visib"]}


def test_the_block_is_escaped_and_goes_after_the_body_tag() -> None:
    page = insert_block("<html><body class='x'><p>report</p></body></html>", "<b>&lt;x&gt;</b>")
    assert page == "<html><body class='x'><b>&lt;x&gt;</b><p>report</p></body></html>"
    assert insert_block("<p>no body</p>", "<i>") == "<i><p>no body</p>"
    from airflow_mlops.core.drift.headline import decision_html

    html = decision_html({
        "status": "ok", "retrain": False, "reasons": ["<script>alert(1)</script>"], "drift_share": None,
        "weighted_drift_share": None, "weighting": "plain", "quality": "measured", "input_drift": [],
        "left_out": {"constant in the reference": []},
    })  # fmt: skip
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
