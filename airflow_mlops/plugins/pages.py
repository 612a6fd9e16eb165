"""Server-rendered HTML of the MLOps view: the model list, a model's page, the rollback confirmation.

Every value from MLflow or the storage root is escaped. Links are built from ``base`` (the path the plugin
app is mounted at) so the pages work under any ``[api] base_url``. Nothing here imports Airflow.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from urllib.parse import quote

from airflow_mlops.plugins.drift_chart import DriftSeries, render_svg
from airflow_mlops.plugins.history import ModelHistory, VersionRow
from airflow_mlops.plugins.reports import TablePreview

ReportLink = Callable[[str | None], str | None]  # a storage URI -> the plugin's report URL, or None

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}table{border-collapse:collapse;margin:.5rem 0 1.5rem}
th,td{border-bottom:1px solid #ddd;padding:.3rem .7rem;text-align:left;font-size:.9rem}th{background:#f4f4f4}
.champion{font-weight:bold}.muted{color:#777}.warn{color:#a40}button{padding:.3rem .8rem}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value))


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{_e(title)}</h1>{body}</body></html>"
    )


def _table(headers: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def model_url(base: str, name: str) -> str:
    return f"{base}/models/{quote(name, safe='')}"


def _evidence(uri: str, report_link: ReportLink) -> str:
    if not uri:
        return '<span class="muted">none</span>'
    decision = report_link(uri)
    if decision is None:
        return _e(uri)
    card = report_link(uri.rpartition("/")[0] + "/model_card.html")
    links = f'<a href="{_e(decision)}">decision</a>'
    return links + (f' · <a href="{_e(card)}">model card</a>' if card else "")


def index_page(base: str, models: list[tuple[str, str | None]]) -> str:
    """The list of registered models with their champion version."""
    if not models:
        return page("MLOps models", "<p>No registered model yet: a promotion registers the first one.</p>")
    rows = [(f'<a href="{_e(model_url(base, n))}">{_e(n)}</a>', _e(c or "none")) for n, c in models]
    return page("MLOps models", _table(["model", "champion"], rows))


def canary_text(row: VersionRow) -> str:
    """A version's canary in one line: status, then the last verdict's batches, agreement and quality."""
    if not row.canary_status:
        return ""
    verdict = row.canary
    if not verdict:
        return row.canary_status
    agreement = verdict.get("agreement")
    drop = verdict.get("quality_drop")
    quality = "no labels yet" if drop is None else f"{verdict.get('metric')} {-float(drop):+.4f} vs champion"
    figures = f"{verdict.get('batches', 0)} shadow batch(es), agreement "
    figures += "unknown" if agreement is None else f"{float(agreement):.3f}"
    return f"{row.canary_status} ({verdict.get('decision')}): {figures}, {quality}"


def _challenger(history: ModelHistory) -> str:
    row = history.challenger
    if row is None:
        return ""
    return f"<p>Challenger in shadow: <b>version {_e(row.version)}</b>, {_e(canary_text(row))}.</p>"


def _versions_table(history: ModelHistory, report_link: ReportLink) -> str:
    rows = [
        (
            f'<span class="{"champion" if v.version == history.champion else ""}">{_e(v.version)}</span>',
            _e(", ".join(v.aliases)),
            _e(v.created),
            _e(v.gate_verdict or "unknown"),
            _e(" -> ".join(v.gate_decisions)),
            _evidence(v.evidence_uri, report_link),
            _e(canary_text(v)),
            f"<code>{_e(v.run_id)}</code>",
        )
        for v in history.versions
    ]
    headers = ["version", "aliases", "registered (UTC)", "gate", "gate decisions", "evidence", "canary", "run"]
    return _table(headers, rows)


def _moves_table(history: ModelHistory, report_link: ReportLink) -> str:
    if not history.moves:
        return '<p class="muted">No alias move recorded.</p>'
    rows = [
        (_e(m.at), _e(m.by), _e(m.mode), f"{_e(m.source or 'none')} -> {_e(m.target)}", _e(m.gate_verdict or "unknown"),
         _evidence(m.evidence_uri, report_link))
        for m in history.moves
    ]  # fmt: skip
    return _table(["when (UTC)", "who", "move", "from -> to", "gate verdict", "evidence"], rows)


def _drift_section(series: DriftSeries) -> str:
    if series.error:
        return f'<p class="warn">Drift state unreadable: {_e(series.error)}</p>'
    if not series.points:
        return f'<p class="muted">No drift check recorded yet ({_e(series.state_uri)}).</p>'
    rows = [
        (_e(p.batch), _e(p.as_of), _e("" if p.drift_share is None else f"{p.drift_share:.3f}"),
         _e("unknown" if p.quality_drop is None else f"{p.quality_drop:.4f}"), _e(p.status))
        for p in reversed(series.points)
    ]  # fmt: skip
    legend = (
        '<p class="muted">Blue: drift share (importance-weighted when available); orange: quality drop; dashed: '
        "the policy's drift share threshold.</p>"
    )
    return render_svg(series) + legend + _table(["batch", "as of", "drift share", "quality drop", "decision"], rows)


def model_page(base: str, history: ModelHistory, series: DriftSeries, report_link: ReportLink) -> str:
    """A model's champion, its versions, every alias move, drift and quality per batch, and the rollback button."""
    champion = history.champion or "none"
    summary = (
        f"<p>Pipeline <b>{_e(history.pipeline or 'unknown')}</b>. Champion: <b>version {_e(champion)}</b>; "
        f"previous champion: version {_e(history.previous or 'none')}.</p>"
    )
    rollback = ""
    if history.previous:
        rollback = (
            f'<p><a href="{_e(model_url(base, history.name))}/rollback">Roll back to version {_e(history.previous)}'
            "...</a> (asks for confirmation)</p>"
        )
    body = (
        f'<p><a href="{_e(base)}/">All models</a></p>{summary}{_challenger(history)}{rollback}'
        f"<h2>Alias moves</h2>{_moves_table(history, report_link)}"
        f"<h2>Versions</h2>{_versions_table(history, report_link)}"
        f"<h2>Drift and quality per batch</h2>{_drift_section(series)}"
    )
    return page(f"Model {history.name}", body)


def rollback_page(base: str, history: ModelHistory, user: str) -> str:
    """The confirmation form: it names both versions and posts the champion the user saw (compare-and-set)."""
    if not history.previous:
        return page(f"Roll back {history.name}", "<p>There is no previous champion to roll back to.</p>")
    action = f"{model_url(base, history.name)}/rollback"
    body = (
        f"<p>Move the <b>champion</b> alias of <b>{_e(history.name)}</b> from version {_e(history.champion)} "
        f"back to version {_e(history.previous)}. Batch scoring uses the new champion from its next run.</p>"
        f"<p>The move is recorded in the model's promotion history as decided by <b>{_e(user)}</b>.</p>"
        f'<form method="post" action="{_e(action)}">'
        f'<input type="hidden" name="expected" value="{_e(history.champion)}">'
        f'<input type="hidden" name="target" value="{_e(history.previous)}">'
        '<label><input type="checkbox" name="confirm" value="yes" required> I confirm this rollback</label> '
        '<button type="submit">Roll back</button></form>'
        f'<p><a href="{_e(model_url(base, history.name))}">Cancel</a></p>'
    )
    return page(f"Roll back {history.name}", body)


def table_page(preview: TablePreview) -> str:
    """The first rows of a stored table, with its URI and row count."""
    shown = len(preview.rows)
    intro = f"<p><code>{_e(preview.uri)}</code>: {preview.total_rows} rows; the first {shown} are shown.</p>"
    rows = [[_e(value) for value in row] for row in preview.rows]
    return page(preview.uri.rpartition("/")[2], intro + _table(preview.columns, rows))


def message_page(title: str, text: str, back: str) -> str:
    return page(title, f'<p>{_e(text)}</p><p><a href="{_e(back)}">Back</a></p>')
