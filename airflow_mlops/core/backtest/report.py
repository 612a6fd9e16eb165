"""The backtest's outputs: a summary per policy, the ``BENCH`` line, and the JSON, Markdown and
self-contained HTML reports (one plot, a PNG embedded in base64, drawn with matplotlib's Agg backend)."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from statistics import fmean
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_mlops.core.backtest.loop import BacktestResult, PolicyRun

LABELS = {
    "drift_policy": "drift policy",
    "never_retrain": "never retrain",
    "retrain_every_batch": "retrain every batch",
}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _metric(result: BacktestResult) -> tuple[str | None, bool]:
    """The primary metric the drift checks measured, and whether higher is better."""
    for run in result.runs.values():
        for record in run.records:
            if record.metric is not None:
                return record.metric, bool(record.higher_is_better)
    return None, True


def advantage(result: BacktestResult, policy: str, baseline: str) -> float | None:
    """Mean over batches where both have a quality of (policy - baseline), signed so positive is better."""
    _, higher = _metric(result)
    sign = 1.0 if higher else -1.0
    pairs = [
        sign * (mine.quality - theirs.quality)
        for mine, theirs in zip(result.runs[policy].records, result.runs[baseline].records, strict=True)
        if mine.quality is not None and theirs.quality is not None
    ]
    return round(fmean(pairs), 6) if pairs else None


def summary(result: BacktestResult) -> dict[str, Any]:
    metric, higher = _metric(result)
    policies = {}
    for name, run in result.runs.items():
        values = [r.quality for r in run.records if r.quality is not None]
        policies[name] = {
            "mean_quality": round(fmean(values), 6) if values else None,
            "batches_with_quality": len(values),
            "retrains": run.retrains,
            "promotions": run.promotions,
            "final_champion": run.registry.champion_version,
        }
    return {
        "metric": metric,
        "higher_is_better": higher,
        "batches": len(result.batches),
        "policies": policies,
        "quality_vs_never": advantage(result, "drift_policy", "never_retrain"),
        "quality_vs_always": advantage(result, "drift_policy", "retrain_every_batch"),
    }


def document(result: BacktestResult) -> dict[str, Any]:
    """The JSON report: the summary, then settings, batches and every policy's records."""
    return {"summary": summary(result), **result.to_dict()}


def bench_line(result: BacktestResult) -> str:
    facts = summary(result)
    return (
        f"BENCH backtest quality_vs_never={_fmt(facts['quality_vs_never'], 6)} "
        f"quality_vs_always={_fmt(facts['quality_vs_always'], 6)} "
        f"retrains={facts['policies']['drift_policy']['retrains']} batches={facts['batches']}"
    )


def summary_table(result: BacktestResult) -> str:
    facts = summary(result)
    lines = [
        f"| policy | mean {facts['metric']} | retrains | promotions | final champion |",
        "|---|---|---|---|---|",
    ]
    for name, row in facts["policies"].items():
        lines.append(
            f"| {LABELS[name]} | {_fmt(row['mean_quality'])} | {row['retrains']} | {row['promotions']} "
            f"| v{row['final_champion']} |"
        )
    return "\n".join(lines)


def batch_table(result: BacktestResult) -> str:
    """One row per batch: the drift policy's champion, figures and decision, beside the baselines' quality."""
    policy, never, always = (result.runs[k].records for k in ("drift_policy", "never_retrain", "retrain_every_batch"))
    metric, _ = _metric(result)
    lines = [
        f"| batch | rows | champion | {metric} (policy) | never | always | drift share | weighted | decision "
        "| gate | reasons |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for mine, n, a in zip(policy, never, always, strict=True):
        gate = f"v{mine.candidate_version} {mine.gate_verdict}" if mine.candidate_version else ""
        reasons = "; ".join(mine.reasons).replace("|", "/")
        lines.append(
            f"| {mine.batch} | {mine.rows} | v{mine.champion_version} | {_fmt(mine.quality)} | {_fmt(n.quality)} "
            f"| {_fmt(a.quality)} | {_fmt(mine.drift_share, 3)} | {_fmt(mine.weighted_drift_share, 3)} "
            f"| {mine.decision} | {gate} | {reasons} |"
        )
    return "\n".join(lines)


def to_markdown(result: BacktestResult) -> str:
    settings = result.settings
    return "\n".join(
        [
            f"# Policy backtest: {settings['pipeline']}",
            "",
            f"{len(result.batches)} batches, first champion trained on {result.initial_rows} rows; "
            f"{result.seconds:.0f} s.",
            "",
            summary_table(result),
            "",
            batch_table(result),
            "",
            bench_line(result),
            "",
        ]
    )


def plot_png(result: BacktestResult) -> bytes:
    """Quality per batch for the three policies; a marker where the drift policy retrained (filled
    when the gate promoted the candidate)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    metric, higher = _metric(result)
    figure, axes = plt.subplots(figsize=(9, 4))
    labels = [b["batch"] for b in result.batches]
    # The policy is drawn last and thickest: where it equals a baseline, it stays visible on top.
    for name, style in (("never_retrain", "--"), ("retrain_every_batch", ":"), ("drift_policy", "-")):
        values = [float("nan") if r.quality is None else r.quality for r in result.runs[name].records]
        width = 2.2 if name == "drift_policy" else 1.4
        axes.plot(range(len(values)), values, style, marker=".", linewidth=width, label=LABELS[name])
    _retrain_markers(axes, result.runs["drift_policy"])
    axes.set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    direction = "higher" if higher else "lower"
    title = f"{result.settings['pipeline']}: served quality per batch"
    axes.set(ylabel=f"served {metric} ({direction} is better)", title=title)
    axes.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    plt.close(figure)
    return buffer.getvalue()


def _retrain_markers(axes: Any, run: PolicyRun) -> None:
    for index, record in enumerate(run.records):
        if record.retrain and record.quality is not None:
            face = "tab:red" if record.promoted else "none"
            axes.scatter([index], [record.quality], s=90, facecolors=face, edgecolors="tab:red", zorder=3)
    for face, outcome in (("tab:red", "promoted"), ("none", "rejected")):
        axes.scatter([], [], s=90, facecolors=face, edgecolors="tab:red", label=f"policy retrained after it, {outcome}")


def _table_html(markdown: str) -> str:
    rows = [line.strip("|").split("|") for line in markdown.splitlines() if not line.startswith("|---")]
    head, body = rows[0], rows[1:]
    cells = "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
    out = [f"<table><tr>{cells}</tr>"]
    out += ["<tr>" + "".join(f"<td>{html.escape(c.strip())}</td>" for c in row) + "</tr>" for row in body]
    return "\n".join([*out, "</table>"])


def to_html(result: BacktestResult, png: bytes) -> str:
    image = base64.b64encode(png).decode("ascii")
    title = html.escape(f"Policy backtest: {result.settings['pipeline']}")
    style = "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:12px}" \
            "td,th{border:1px solid #ccc;padding:2px 6px}"  # fmt: skip
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title><style>{style}</style></head>"
        f"<body><h1>{title}</h1><p>{len(result.batches)} batches, first champion trained on "
        f"{result.initial_rows} rows.</p><img alt='served quality per batch' src='data:image/png;base64,{image}'>"
        f"<h2>Policies</h2>{_table_html(summary_table(result))}<h2>Batches</h2>{_table_html(batch_table(result))}"
        f"<p><code>{html.escape(bench_line(result))}</code></p></body></html>"
    )


def write_reports(result: BacktestResult, folder: str | Path) -> dict[str, str]:
    """Write ``backtest.json``, ``backtest.md``, ``backtest.html`` and ``backtest.png``; return their paths."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "json": out / "backtest.json",
        "markdown": out / "backtest.md",
        "html": out / "backtest.html",
        "png": out / "backtest.png",
    }
    files["json"].write_text(json.dumps(document(result), indent=1, default=str), encoding="utf-8")
    files["markdown"].write_text(to_markdown(result), encoding="utf-8")
    png = plot_png(result)  # after the figures are safe: a plotting failure loses no replay
    files["html"].write_text(to_html(result, png), encoding="utf-8")
    files["png"].write_bytes(png)
    return {kind: str(path) for kind, path in files.items()}
