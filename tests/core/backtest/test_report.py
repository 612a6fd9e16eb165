from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from airflow_mlops.core.backtest import BacktestResult, bench_line, write_reports


def test_bench_line_names_both_comparisons(replayed: BacktestResult) -> None:
    line = bench_line(replayed)
    match = re.fullmatch(
        r"BENCH backtest quality_vs_never=(\S+) quality_vs_always=(\S+) retrains=(\d+) batches=2", line
    )
    assert match is not None
    assert int(match.group(3)) == replayed.runs["drift_policy"].retrains


def test_reports_are_written_and_the_html_embeds_the_plot(replayed: BacktestResult, tmp_path: Path) -> None:
    files = write_reports(replayed, tmp_path / "out")
    document = json.loads(Path(files["json"]).read_text())
    assert document["summary"]["metric"] == "roc_auc"
    markdown = Path(files["markdown"]).read_text()
    assert "| 2013-02 |" in markdown and markdown.rstrip().endswith(bench_line(replayed))
    page = Path(files["html"]).read_text()
    embedded = re.search(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert embedded is not None and base64.b64decode(embedded.group(1)) == Path(files["png"]).read_bytes()
    assert Path(files["png"]).read_bytes().startswith(b"\x89PNG")
