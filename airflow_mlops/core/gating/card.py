"""The model card of a gate decision, as Markdown and as one self-contained HTML page.

The card is the page people look at before a version is promoted: the verdict, the gate's metric
table and checks first, then the candidate run's training plots (ROC / PR / confusion matrix or
residuals, feature importance), then the details. Both are rendered from the decision and the plots'
bytes alone (no template files, no external stylesheet, script or font; the HTML embeds the plots as
``data:`` URIs), so the evidence folder can be copied anywhere and still reads the same. The Markdown
links the plots relative to its place in the run's artifacts (``gate/`` beside ``plots/``). Every
value is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.gating import metrics as gm

if TYPE_CHECKING:
    from airflow_mlops.core.gating.decision import GateDecision

Table = tuple[list[str], list[list[str]]]
PLOTS_FOLDER = "plots"  # the training run's plot artifacts, beside the card's folder in the run


@dataclass(frozen=True)
class Plot:
    """One training plot (PNG) shown on the card."""

    name: str
    png: bytes


Block = str | Table | Plot


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _sections(decision: GateDecision, plots: Mapping[str, bytes]) -> list[tuple[str, Sequence[Block]]]:
    """The card's content once, as (heading, [paragraph | table | plot]) for both renderers."""
    check_rows = [[c.name, c.status.upper(), _fmt(c.observed), _fmt(c.threshold), c.message] for c in decision.reasons]
    provenance = [
        f"Decided at {decision.created_at}. Evidence: {decision.evidence_uri or 'not written'}.",
        "Policy: " + json.dumps(decision.policy, sort_keys=True),
    ]
    figures: list[Block] = [Plot(name, png) for name, png in sorted(plots.items())]
    return [
        ("Summary", _summary(decision)),
        ("Metrics", [(_metric_header(decision), _metric_rows(decision))]),
        ("Checks", [(["check", "status", "observed", "threshold", "detail"], check_rows)]),
        ("Training plots", figures or ["The candidate run logged no plots."]),
        ("Comparison with the champion and calibration", _comparison(decision)),
        ("Models", list(_models(decision))),
        ("Evaluation data", [(["", "value"], _data_rows(decision))]),
        ("Slices", _slice_blocks(decision)),
        ("Parity, latency and size", _runtime(decision)),
        ("Provenance", list(provenance)),
    ]


def _summary(decision: GateDecision) -> list[str | Table]:
    name = decision.candidate.get("run_id") or "candidate"
    verdict = {"passed": "PASSED", "rejected": "REJECTED", "forced": "FORCED THROUGH"}[decision.verdict]
    summary: list[str | Table] = [
        f"Verdict: {verdict}. Candidate run {name} ({decision.task} model of {decision.candidate.get('target')!r}).",
        (
            "No champion: first-run policy, only absolute checks apply."
            if decision.first_run
            else f"Compared with champion version {decision.champion and decision.champion.get('version')} "
            f"(run {decision.champion and decision.champion.get('run_id')}) on the same rows."
        ),
    ]
    if decision.forced:
        summary.append(f"The gate was forced: {decision.force_reason}. The failed checks below were overridden.")
    baseline = decision.baseline
    if baseline is not None and baseline.get("primary") in baseline["metrics"]:
        primary = baseline["primary"]
        summary.append(
            f"Simpler model: {baseline['kind']} baseline on the candidate's features ({baseline['fit_rows']} rows, "
            f"{baseline['fit_on']}), {primary} {_fmt(baseline['metrics'][primary])}; the candidate "
            f"({_fmt(decision.candidate_metrics.get(primary))}) must beat it by {_fmt(baseline.get('min_gain'))} "
            f"(min_gain {baseline.get('min_gain_setting')})."
        )
    failed = [c.name for c in decision.failed_checks]
    summary.append("Failed checks: " + (", ".join(failed) if failed else "none") + ".")
    return summary


def _data_rows(decision: GateDecision) -> list[list[str]]:
    data = decision.data
    data_rows = [[k, _fmt(v)] for k, v in data.items() if not isinstance(v, dict)]
    for label, counts in (("class counts", data.get("class_counts")),):
        if counts:
            data_rows.append([label, ", ".join(f"{k}: {v}" for k, v in counts.items())])
    return data_rows


def _metric_header(decision: GateDecision) -> list[str]:
    """The metric table's columns: the baselines named by kind (the simpler model, then the constant)."""
    baseline = decision.baseline or {}
    constant = baseline.get("constant") or {}
    names = [f"baseline ({baseline.get('kind', 'none')})"] + ([f"baseline ({constant['kind']})"] if constant else [])
    return ["metric", "candidate", "champion", *names, "better"]


def _metric_rows(decision: GateDecision) -> list[list[str]]:
    metric_rows = []
    baseline = decision.baseline or {}
    baseline_metrics = baseline.get("metrics") or {}
    constant = baseline.get("constant") or {}
    for metric_name, value in decision.candidate_metrics.items():
        spec = gm.METRICS[metric_name]
        champion = (decision.champion_metrics or {}).get(metric_name)
        metric_rows.append(
            [
                metric_name + (" (primary)" if metric_name == decision.primary_metric else ""),
                _fmt(value),
                _fmt(champion),
                _fmt(baseline_metrics.get(metric_name)),
                *([_fmt(constant["metrics"].get(metric_name))] if constant else []),
                "higher" if spec.higher_is_better else "lower",
            ]
        )
    return metric_rows


def _comparison(decision: GateDecision) -> list[str | Table]:
    """The comparison rule's verdict and figures, then both classifiers' calibration."""
    blocks: list[str | Table] = []
    comparison = decision.comparison
    if comparison is None:
        blocks.append("No comparable champion: the candidate was not compared.")
    else:
        names = [comparison["primary"]] + ([comparison["scoring_rule"]] if comparison["scoring_rule"] else [])
        rule = " with the proper scoring rule " + names[1] if len(names) > 1 else " alone"
        verdict = "preferred" if comparison["preferred"] else "not preferred (the champion is kept)"
        blocks.append(f"Judged on {names[0]}{rule}: the candidate is {verdict}: {comparison['reason']}.")
        header = ["metric", "candidate", "champion", "gain", "tolerance"]
        rows = [
            [
                name,
                _fmt(comparison["candidate"][name]),
                _fmt(comparison["champion"][name]),
                _fmt(comparison["gain"][name]),
                _fmt(comparison["tolerance"][name]),
            ]
            for name in names
        ]
        blocks.append((header, rows))
    calibration = decision.calibration
    if calibration is None:
        blocks.append("Calibration: not applicable (a regressor states no probabilities).")
        return blocks
    champion = calibration.get("champion") or {}
    blocks.append(
        (
            ["calibration", "candidate", "champion"],
            [
                [
                    f"Brier score ({calibration['brier']})",
                    _fmt(calibration["candidate"]["brier"]),
                    _fmt(champion.get("brier")),
                ],
                [
                    f"expected calibration error ({calibration['bins']} bins)",
                    _fmt(calibration["candidate"]["ece"]),
                    _fmt(champion.get("ece")),
                ],
            ],
        )
    )
    return blocks


def _slice_blocks(decision: GateDecision) -> list[str | Table]:
    slice_blocks: list[str | Table] = []
    for table in decision.slices:
        slice_blocks.append(f"By {table['column']} ({table['metric']}; {table['slices_total']} distinct values):")
        slice_blocks.append(
            (
                ["slice", "rows", "candidate", "champion", "judged"],
                [
                    [s["value"], _fmt(s["rows"]), _fmt(s["candidate"]), _fmt(s["champion"]), _fmt(s["judged"])]
                    for s in table["slices"]
                ],
            )
        )
    if not slice_blocks:
        slice_blocks.append("No slices configured.")
    return slice_blocks


def _runtime(decision: GateDecision) -> list[str | Table]:
    parity = decision.parity
    latency = decision.latency
    return [
        (
            ["measure", "candidate", "champion", "budget"],
            [
                [f"ONNX parity, {parity.get('measure')}", _fmt(parity.get("value")), "", _fmt(parity.get("threshold"))],
                [
                    "latency, ms per 1,000 rows",
                    _fmt(latency.get("candidate_ms_per_1k")),
                    _fmt(latency.get("champion_ms_per_1k")),
                    _fmt(decision.policy.get("max_latency_ms_per_1k")),
                ],
                [
                    "model size, bytes",
                    _fmt(decision.candidate.get("size_bytes")),
                    _fmt((decision.champion or {}).get("size_bytes")),
                    _fmt(decision.policy.get("max_model_bytes")),
                ],
            ],
        ),
        f"Parity source: {parity.get('source')} ({parity.get('rows')} rows). Latency: median of "
        f"{latency.get('repeats')} runs of {latency.get('rows')} rows, ONNX Runtime, {latency.get('threads')} thread.",
    ]


def _models(decision: GateDecision) -> list[Table]:
    return [
        (
            ["", "candidate", "champion"],
            [
                [key, _fmt(decision.candidate.get(key)), _fmt((decision.champion or {}).get(key))]
                for key in ("run_id", "version", "sha256", "estimator")
            ]
            + [
                [
                    "features",
                    ", ".join(decision.candidate.get("features") or []),
                    ", ".join((decision.champion or {}).get("features") or []),
                ]
            ],
        ),
    ]


def _title(decision: GateDecision) -> str:
    return f"Model card: gate decision {decision.verdict} for run {decision.candidate.get('run_id')}"


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(decision: GateDecision, plots: Mapping[str, bytes] | None = None) -> str:
    """The card as Markdown; plots are linked as ``../plots/<name>`` (where they are in the run)."""
    lines = [f"# {_title(decision)}", ""]
    for heading, blocks in _sections(decision, plots or {}):
        lines += [f"## {heading}", ""]
        for block in blocks:
            if isinstance(block, str):
                lines += [block, ""]
                continue
            if isinstance(block, Plot):
                lines += [f"![{_md_cell(block.name)}](../{PLOTS_FOLDER}/{block.name})", ""]
                continue
            header, rows = block
            lines.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
            lines.append("|" + "---|" * len(header))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
    return "\n".join(lines)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:72rem;color:#1b1f24;
padding:0 1rem;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.8rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}.passed{color:#1a7f37;font-weight:600}.failed{color:#cf222e;font-weight:600}
.skipped{color:#6e7781}.verdict{display:inline-block;padding:.2rem .6rem;border-radius:.3rem;color:#fff}
.v-passed{background:#1a7f37}.v-rejected{background:#cf222e}.v-forced{background:#9a6700}
figure{display:inline-block;margin:.5rem 1rem .5rem 0;vertical-align:top}figure img{max-width:34rem;width:100%}
figcaption{font-size:.85rem;color:#57606a}
"""


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            css = cell.lower() if cell in ("PASSED", "FAILED", "SKIPPED") else ""
            cells.append(f'<td class="{css}">{html.escape(cell)}</td>' if css else f"<td>{html.escape(cell)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _html_plot(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    name = html.escape(plot.name)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _html_block(block: Block) -> str:
    if isinstance(block, str):
        return f"<p>{html.escape(block)}</p>"
    if isinstance(block, Plot):
        return _html_plot(block)
    return _html_table(*block)


def render_html(decision: GateDecision, plots: Mapping[str, bytes] | None = None) -> str:
    """The card as one self-contained HTML page (``plots``: PNG bytes by file name, embedded)."""
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(_title(decision))}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(_title(decision))}</h1>",
        f'<p><span class="verdict v-{decision.verdict}">{html.escape(decision.verdict.upper())}</span></p>',
    ]
    for heading, blocks in _sections(decision, plots or {}):
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        parts += [_html_block(block) for block in blocks]
    parts.append("</body></html>")
    return "\n".join(parts)
