"""Publishing a validation result for people: the JSON result and a self-contained HTML page under the
storage root, a browser address for the page, and a summary logged to MLflow."""

from __future__ import annotations

import html
import json
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.validation.json_safe import compact, dumps, jsonable
from airflow_mlops.core.validation.results import ValidationResult

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from airflow_mlops.core.storage import StorageRoot

RESULT_FILE = "validation_result.json"
REPORT_FILE = "report.html"


def report_url(root: StorageRoot, uri: str, base_url: str | None = None) -> str:
    """A browser address for an artifact: ``base_url`` + its path under the root when given, a ``file://``
    URL for a local root, the S3 console page of the object otherwise."""
    from urllib.parse import quote

    relative = root.fs_path(uri)[len(root.fs_path(root.uri)) :].lstrip("/")
    if base_url:
        return f"{base_url.rstrip('/')}/{quote(relative)}"
    if not root.is_s3:
        return "file://" + quote(root.fs_path(uri))
    bucket, _, key = root.fs_path(uri).partition("/")
    return f"https://s3.console.aws.amazon.com/s3/object/{quote(bucket)}?prefix={quote(key)}"


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1f2328;max-width:1200px}
h1{font-size:1.4rem;margin:0 0 .3rem}h2{font-size:1.1rem;margin-top:2rem}
.badge{display:inline-block;padding:.1rem .55rem;border-radius:1rem;font-weight:600;font-size:.85rem;color:#fff}
.ok{background:#1a7f37}.warn{background:#bf8700}.error{background:#cf222e}
.schema,.empty{background:#cf222e}.value{background:#bf8700}.kind-error{background:#8250df}.pass{background:#1a7f37}
table{border-collapse:collapse;width:100%;margin-top:.5rem}th,td{border:1px solid #d0d7de;padding:.35rem .5rem;
text-align:left;vertical-align:top}th{background:#f6f8fa}code,pre{font:12px ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0;max-height:12rem;overflow:auto}
dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dt{font-weight:600}dd{margin:0}
"""


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(jsonable(value), ensure_ascii=False)
    return f"<pre>{html.escape(text)}</pre>"


def render_html(result: ValidationResult, title: str | None = None) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external resources) for people."""
    esc = html.escape
    heading = title or f"Validation of {result.snapshot_uri or 'a snapshot'}"
    meta = [
        ("Severity", f'<span class="badge {result.severity}">{esc(result.severity)}</span>'),
        ("Passed", "yes" if result.passed else "no (blocking failures)"),
        ("Snapshot", esc(str(result.snapshot_uri))),
        ("Suite", esc(result.suite_name) + (f" ({esc(result.suite_uri)})" if result.suite_uri else "")),
        ("Rows x columns", f"{result.rows:,} x {result.columns}"),
        ("Expectations", f"{result.evaluated} evaluated, {result.succeeded} met, {result.failed} failed"),
        ("Failures by kind", esc(", ".join(f"{k}: {v}" for k, v in result.counts.items()))),
        ("Great Expectations", esc(result.gx_version)),
    ]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(heading)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(heading)}</h1>",
        "<dl>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in meta) + "</dl>",
        "<h2>Failed expectations</h2>",
    ]
    if result.failures:
        parts.append(
            "<table><tr><th>Kind</th><th>Column</th><th>Expectation</th><th>Why it failed</th>"
            "<th>Observed</th><th>Expected</th></tr>"
        )
        for f in result.failures:
            css = "kind-error" if f.kind == "error" else f.kind
            parts.append(
                f'<tr><td><span class="badge {css}">{esc(f.kind)}</span></td><td>{esc(str(f.column or ""))}</td>'
                f"<td><code>{esc(f.expectation_type)}</code></td><td>{esc(f.reason)}</td>"
                f"<td>{_cell(f.observed)}</td><td>{_cell(f.expected)}</td></tr>"
            )
        parts.append("</table>")
        if result.failures_omitted:
            parts.append(f"<p>{result.failures_omitted} more failures are in the JSON result.</p>")
    else:
        parts.append("<p>None: every expectation was met.</p>")
    parts.append("<h2>All expectations</h2><table><tr><th>Result</th><th>Expectation</th><th>Arguments</th></tr>")
    for item in result.gx_result.get("results", []):
        config = item.get("expectation_config") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        ok = bool(item.get("success"))
        badge = '<span class="badge pass">met</span>' if ok else '<span class="badge error">failed</span>'
        parts.append(
            f"<tr><td>{badge}</td><td><code>{esc(str(config.get('type')))}</code></td>"
            f"<td>{_cell(compact(kwargs))}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_reports(
    root: StorageRoot, result: ValidationResult, pipeline: str, partition: str
) -> tuple[ValidationResult, str]:
    """Write the GX result JSON (with our receipt under ``meta.mlops``) and the HTML page, each atomically.

    Returns the result with ``result_uri``/``report_uri`` set, and the HTML text.
    """
    result_uri = root.layout(pipeline, contracts.KIND_VALIDATION, partition, RESULT_FILE)
    report_uri = root.layout(pipeline, contracts.KIND_VALIDATION, partition, REPORT_FILE)
    result = replace(result, result_uri=result_uri, report_uri=report_uri)
    document = dict(result.gx_result)
    document["meta"] = {**dict(document.get("meta") or {}), "mlops": result.to_dict()}
    root.write_bytes(result_uri, dumps(document))
    page = render_html(result)
    root.write_bytes(report_uri, page.encode())
    return result, page


def log_validation(client: MlflowClient, run_id: str, result: ValidationResult, report_html: str | None) -> None:
    """Log a validation summary to an MLflow run: tags, counts as metrics, the receipt and the HTML page."""
    from mlflow.entities import Metric, RunTag

    now = int(datetime.now().timestamp() * 1000)
    metrics = [Metric(f"validation_{k}", float(v), now, 0) for k, v in result.to_dict()["counts"].items()]
    tags = [RunTag(contracts.TAG_VALIDATION_SEVERITY, result.severity)]
    if result.report_uri:
        tags.append(RunTag(contracts.TAG_VALIDATION_REPORT_URI, result.report_uri))
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.log_text(run_id, dumps(result.to_dict()).decode(), contracts.ARTIFACT_VALIDATION_SUMMARY)
    if report_html is not None:
        client.log_text(run_id, report_html, contracts.ARTIFACT_VALIDATION_REPORT)
