"""The drift check's HTML pages, drawn from the verdicts the check already computed.

Nothing is tested again here: every score, threshold and verdict comes from the
:class:`~airflow_mlops.core.drift.compare.DriftResult`. What the page adds is what people read to
judge a verdict: one table of every column (drifted first) and, per tested column, the two
distributions side by side as an inline SVG bar chart, computed from a bounded row sample
(``report_sample_size`` per side). The quality page is the measured metrics against the reference's
and the baseline. Pages are self-contained (no script, no external asset) and a few hundred KiB at most.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.drift.tables import categorical_values, numeric_values

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.drift.columns import ColumnDrift
    from airflow_mlops.core.drift.compare import DriftResult
    from airflow_mlops.core.drift.quality import QualityResult
    from airflow_mlops.core.drift.tables import Table

BINS = 20  # numeric columns: equal-width bins over both sides' 0.5 %-99.5 % range
TOP_CATEGORIES = 12  # categorical columns: the most common categories, the rest as "(other)"
_STYLE = (
    "body{font-family:sans-serif;margin:16px;color:#222}table{border-collapse:collapse;font-size:13px}"
    "td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}"
    "tr.drift td{background:#fdecea}details{margin:6px 0}summary{cursor:pointer}.k{color:#777}"
)
_REF, _CUR = "#9e9e9e", "#5e35b1"


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


def _num(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}g}"


def _columns(result: DriftResult) -> list[ColumnDrift]:
    return [*result.features, *result.predictions, *([result.target] if result.target else []), *result.inputs]


def drift_page(
    result: DriftResult,
    reference: Table,
    current: Table,
    ref_rows: np.ndarray | None,
    cur_rows: np.ndarray | None,
    metadata: Mapping[str, Any],
) -> str:
    """The drift page: overview, the verdict table, and one chart per tested column (drifted open)."""
    drifted = result.drifted_columns
    items = sorted(_columns(result), key=lambda c: (not c.drifted, c.role != "feature", c.column))
    overview = (
        f"<p>Verdict <b>{html.escape(result.verdict)}</b>; drift share {_num(result.drift_share, 3)} "
        f"(threshold {_num(result.drift_share_threshold, 3)}), weighted {_num(result.weighted_drift_share, 3)} "
        f"({html.escape(result.weighting)}); drifted features: {html.escape(', '.join(drifted)) or 'none'}."
        f"</p><p class=k>Rows: reference {result.reference_rows:,} ({result.reference_rows_compared:,} compared), "
        f"current {result.current_rows:,} ({result.current_rows_compared:,} compared); charts from at most "
        f"{_sample_size(reference, ref_rows):,} / {_sample_size(current, cur_rows):,} rows. "
        f"{html.escape(_meta_line(metadata))}</p>"
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in result.reasons)
    skew = result.schema_skew.to_dict()
    skew_html = f"<p>Schema skew: <code>{html.escape(str(skew))}</code></p>" if result.schema_skew.any else ""
    charts = "".join(_chart_section(c, reference, current, ref_rows, cur_rows) for c in items if c.status == "tested")
    body = f"{overview}<ul>{reasons}</ul>{skew_html}{_verdict_table(items)}<h2>Distributions</h2>{charts}"
    return _page("Drift report", body)


def _sample_size(table: Table, rows: np.ndarray | None) -> int:
    return table.num_rows if rows is None else len(rows)


def _meta_line(metadata: Mapping[str, Any]) -> str:
    keys = ("pipeline", "current_uri")
    return "; ".join(f"{k}: {metadata[k]}" for k in keys if metadata.get(k))


def _verdict_table(items: Sequence[ColumnDrift]) -> str:
    head = "".join(
        f"<th>{h}</th>"
        for h in ("column", "role", "kind", "status", "method", "score", "threshold", "drifted",
                  "missing ref", "missing cur", "new values")
    )  # fmt: skip
    rows = []
    for c in items:
        new = "" if c.new_values is None else f"{c.new_values} ({_num(c.new_value_share, 3)})"
        cells = (
            c.column, c.role, c.kind, c.status, c.method or "", _num(c.score), _num(c.threshold),
            "yes" if c.drifted else "no", _num(c.reference_missing_share, 3), _num(c.current_missing_share, 3), new,
        )  # fmt: skip
        css = ' class="drift"' if c.drifted else ""
        rows.append(f"<tr{css}>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _chart_section(
    item: ColumnDrift, reference: Table, current: Table, ref_rows: np.ndarray | None, cur_rows: np.ndarray | None
) -> str:
    ref, cur = reference.column(item.column, ref_rows), current.column(item.column, cur_rows)
    labels, ref_share, cur_share = (numeric_bins if item.kind == "numeric" else category_shares)(ref, cur)
    title = f"{item.column}: {item.method} {_num(item.score)} (threshold {_num(item.threshold)})"
    title += ", drifted" if item.drifted else ""
    opened = " open" if item.drifted else ""
    chart = bar_chart(labels, ref_share, cur_share)
    return f"<details{opened}><summary>{html.escape(title)}</summary>{chart}</details>"


def numeric_bins(reference: pd.Series, current: pd.Series) -> tuple[list[str], list[float], list[float]]:
    """Shares of each side in :data:`BINS` equal-width bins over both sides' 0.5 %-99.5 % range (the
    tails fall in the end bins)."""
    import numpy as np

    ref, cur = numeric_values(reference).to_numpy(), numeric_values(current).to_numpy()
    both = np.concatenate([ref, cur])
    if not len(both):
        return [], [], []
    low, high = (float(x) for x in np.quantile(both, [0.005, 0.995]))
    if high <= low:
        low, high = float(both.min()), float(both.max())
    if high <= low:
        return [_num(low)], [1.0 if len(ref) else 0.0], [1.0 if len(cur) else 0.0]
    edges = np.linspace(low, high, BINS + 1)

    def shares(values: np.ndarray) -> list[float]:
        counts = np.bincount(np.clip(np.searchsorted(edges, values, "right") - 1, 0, BINS - 1), minlength=BINS)
        return [float(x) for x in counts / max(len(values), 1)]

    return [_num(float(e), 3) for e in edges[:-1]], shares(ref), shares(cur)


def category_shares(reference: pd.Series, current: pd.Series) -> tuple[list[str], list[float], list[float]]:
    """Shares of each side in the :data:`TOP_CATEGORIES` most common categories, then ``(other)``."""
    ref, cur = categorical_values(reference), categorical_values(current)
    ref_counts, cur_counts = ref.value_counts(), cur.value_counts()
    top = (ref_counts.add(cur_counts, fill_value=0)).sort_values(ascending=False, kind="stable")
    labels = [str(x) for x in top.index[:TOP_CATEGORIES]]
    ref_share = [float(ref_counts.get(x, 0)) / max(len(ref), 1) for x in top.index[:TOP_CATEGORIES]]
    cur_share = [float(cur_counts.get(x, 0)) / max(len(cur), 1) for x in top.index[:TOP_CATEGORIES]]
    if len(top) > TOP_CATEGORIES:
        labels.append("(other)")
        ref_share.append(max(0.0, (1.0 if len(ref) else 0.0) - sum(ref_share)))
        cur_share.append(max(0.0, (1.0 if len(cur) else 0.0) - sum(cur_share)))
    return labels, ref_share, cur_share


def bar_chart(labels: Sequence[str], reference: Sequence[float], current: Sequence[float]) -> str:
    """Paired bars (reference grey, current purple) of shares per label, as inline SVG."""
    width, height, pad = 640, 160, 18
    slot = (width - 2 * pad) / max(len(labels), 1)
    top = max([*reference, *current, 1e-12])
    bars = []
    for i, (label, ref, cur) in enumerate(zip(labels, reference, current, strict=True)):
        x = pad + i * slot
        for offset, share, colour in ((0.1, ref, _REF), (0.5, cur, _CUR)):
            h = (height - 2 * pad) * share / top
            bars.append(
                f'<rect x="{x + offset * slot:.1f}" y="{height - pad - h:.1f}" width="{0.4 * slot:.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{html.escape(label)}: {share:.3f}</title></rect>'
            )
    first, last = (html.escape(labels[0]), html.escape(labels[-1])) if labels else ("", "")
    axis = (
        f'<text x="{pad}" y="{height - 4}" font-size="10">{first}</text>'
        f'<text x="{width - pad}" y="{height - 4}" font-size="10" text-anchor="end">{last}</text>'
        f'<text x="{pad}" y="12" font-size="10"><tspan fill="{_REF}">reference</tspan> '
        f'<tspan fill="{_CUR}">current</tspan> (share of rows; max {top:.3f})</text>'
    )
    return f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{axis}{"".join(bars)}</svg>'


def quality_page(quality: QualityResult, metadata: Mapping[str, Any]) -> str:
    """The quality page: each metric on the batch's labelled rows and on the reference, and the baseline."""
    names = sorted(set(quality.current_metrics) | set(quality.reference_metrics))
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td>{_num(quality.current_metrics.get(n))}</td>"
        f"<td>{_num(quality.reference_metrics.get(n))}</td></tr>"
        for n in names
    )
    lead = (
        f"<p>{html.escape(quality.metric)} ({'higher' if quality.higher_is_better else 'lower'} is better): "
        f"{_num(quality.current)} on {quality.labelled_rows:,} labelled rows, baseline {_num(quality.baseline)} "
        f"({html.escape(str(quality.baseline_source))}), drop {_num(quality.drop)}.</p>"
        f"<p class=k>{html.escape(_meta_line(metadata))}</p>"
    )
    business = ""
    if quality.business:
        business = f"<h2>Business metric</h2><p><code>{html.escape(str(quality.business))}</code></p>"
    table = f"<table><tr><th>metric</th><th>current</th><th>reference</th></tr>{rows}</table>"
    return _page(f"Model quality ({quality.task})", lead + table + business)
