"""The gate's evidence: decision record and model card, written atomically and self-contained."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from airflow_mlops.core.gating import evaluate, evidence_location, write_evidence
from airflow_mlops.core.storage import StorageRoot
from tests.core.gating.support import Exported, candidate, champion, policy


def test_evidence_is_written_atomically_and_is_self_contained(
    tmp_path: Path, good: Exported, weak: Exported, evaluation: pd.DataFrame
) -> None:
    storage = StorageRoot(str(tmp_path / "root"))
    frame = evaluation.copy()
    frame["origin"] = frame["origin"].replace({"EWR": "<script>alert(1)</script>"})
    decision = evaluate(candidate(good), champion(weak), frame, policy(slices={"columns": ["origin"], "floor": 0.5}))
    folder = evidence_location(storage, "flights", "2013-05-01", "cand")
    decision, evidence = write_evidence(storage, decision, folder)
    assert decision.evidence_uri == evidence.decision_uri == f"{folder}/decision.json"
    names = sorted(Path(p).name for p in storage.list_files(folder))
    assert names == ["decision.json", "model_card.html", "model_card.md"]
    record = json.loads(storage.read_bytes(evidence.decision_uri))
    assert record == json.loads(json.dumps(decision.to_dict()))
    assert record["passed"] is True and record["reasons"][0].keys() >= {"name", "passed", "observed", "threshold"}
    page = storage.read_bytes(evidence.html_uri).decode()
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "<link" not in page  # nothing fetched from outside
    card = storage.read_bytes(evidence.markdown_uri).decode()
    for section in ("## Evaluation data", "## Metrics", "## Checks", "## Slices", "## Parity, latency and size"):
        assert section in card
    # the comparison with the champion and both models' calibration are on record, and on the card
    assert record["comparison"]["preferred"] is True and record["comparison"]["scoring_rule"] == "log_loss"
    assert set(record["calibration"]["candidate"]) == set(record["calibration"]["champion"]) == {"brier", "ece"}
    assert "## Comparison with the champion and calibration" in card
    assert f"{decision.calibration['candidate']['ece']:.4g}" in card  # type: ignore[index]
    assert f"{decision.candidate_metrics['roc_auc']:.4g}" in card
    # rerun of the same partition replaces the files in place, leaving no temporary names behind
    write_evidence(storage, decision, folder)
    assert len(storage.list_files(folder)) == 3
    assert not [p for p in (tmp_path / "root").rglob("*") if p.name.startswith(".tmp")]


def _png(title: str) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 2))
    axes.plot([0, 1], [0, 1])
    axes.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def test_the_card_leads_with_the_gate_metrics_and_shows_the_training_plots(
    tmp_path: Path, good: Exported, weak: Exported, evaluation: pd.DataFrame
) -> None:
    import base64

    storage = StorageRoot(str(tmp_path / "root"))
    decision = evaluate(candidate(good), champion(weak), evaluation, policy())
    plots = {"roc_curve.png": _png("roc"), "feature_importance.png": _png("importance")}
    folder = evidence_location(storage, "flights", "2013-05-01", "cand")
    _, evidence = write_evidence(storage, decision, folder, plots)
    page = storage.read_bytes(evidence.html_uri).decode()
    for name, png in plots.items():  # embedded, so the page needs nothing beside it
        assert f'<img alt="{name}" src="data:image/png;base64,{base64.b64encode(png).decode()}">' in page
    headings = [line for line in page.splitlines() if line.startswith("<h2>")]
    assert headings[:4] == ["<h2>Summary</h2>", "<h2>Metrics</h2>", "<h2>Checks</h2>", "<h2>Training plots</h2>"]
    assert "http://" not in page and "https://" not in page
    card = storage.read_bytes(evidence.markdown_uri).decode()  # beside plots/ in the run's artifacts
    assert "![roc_curve.png](../plots/roc_curve.png)" in card
    assert card.index("## Metrics") < card.index("## Training plots") < card.index("## Models")
    _, bare = write_evidence(storage, decision, folder)
    assert "The candidate run logged no plots." in storage.read_bytes(bare.html_uri).decode()
