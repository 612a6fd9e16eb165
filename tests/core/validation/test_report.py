"""Reports: browser addresses, the JSON result and HTML page written under a local or an S3 root."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from airflow_mlops.core import validation as v
from airflow_mlops.core.storage import StorageRoot, s3_filesystem
from tests.core.validation.support import TEMPERATURE


def test_report_url_for_local_s3_and_published_roots(tmp_path: Path) -> None:
    local = StorageRoot(str(tmp_path))
    uri = local.layout("p", "validation", "2013-04-01", "report.html")
    assert v.report_url(local, uri) == f"file://{tmp_path}/p/validation/2013-04-01/report.html"
    assert v.report_url(local, uri, "https://reports.example.com/ml/") == (
        "https://reports.example.com/ml/p/validation/2013-04-01/report.html"
    )
    s3 = StorageRoot("s3://bucket/prefix", s3_filesystem(endpoint_url="http://127.0.0.1:1"))
    s3_uri = s3.layout("p", "validation", "2013-04-01T00:00:00+00:00", "report.html")
    assert v.report_url(s3, s3_uri) == (
        "https://s3.console.aws.amazon.com/s3/object/bucket"
        "?prefix=prefix/p/validation/2013-04-01T00%3A00%3A00%2B00%3A00/report.html"
    )


def _write_parquet(root: StorageRoot, uri: str, frame: pd.DataFrame) -> None:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    root.write_bytes(uri, buffer.getvalue())


def _check_reports(root: StorageRoot, result: v.ValidationResult, page: str) -> None:
    def no_constants(name: str) -> None:
        raise AssertionError(f"non-standard JSON constant {name}")

    document = json.loads(root.read_bytes(str(result.result_uri)), parse_constant=no_constants)
    assert document["meta"]["mlops"]["severity"] == result.severity
    assert document["meta"]["mlops"]["report_uri"] == result.report_uri
    assert len(document["results"]) == result.evaluated
    html = root.read_bytes(str(result.report_uri)).decode()
    assert html == page and html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "http" not in html.split("</style>")[0]  # self-contained


def test_snapshot_validation_writes_json_and_html_reports(tmp_path: Path, reference: pd.DataFrame, suite: Any) -> None:
    root = StorageRoot(str(tmp_path / "storage"))
    reference_uri = root.layout("flights", "snapshots", "2013-01-01", "data.parquet")
    current_uri = root.layout("flights", "snapshots", "2013-04-01", "data.parquet")
    _write_parquet(root, reference_uri, reference)
    current = reference.copy()
    current.loc[current.index[:4], "carrier"] = "<b>ZZ</b>"
    _write_parquet(root, current_uri, current)

    inferred, suite_uri = v.prepare_suite(root, pipeline="flights", partition="2013-04-01", reference_uri=reference_uri)
    assert suite_uri == root.layout("flights", "validation", "2013-04-01", "expectation_suite.json")
    assert v.suite_to_dict(v.load_suite(suite_uri, root)) == v.suite_to_dict(inferred)

    result, page = v.validate_snapshot(
        root, current_uri, inferred, pipeline="flights", partition="2013-04-01", suite_uri=suite_uri
    )
    assert result.severity == "warn" and result.snapshot_uri == current_uri and result.suite_uri == suite_uri
    _check_reports(root, result, page)
    assert "&lt;b&gt;ZZ&lt;/b&gt;" in page and "<b>ZZ</b>" not in page  # data is escaped
    assert TEMPERATURE in page
    folder = root.layout("flights", "validation", "2013-04-01")
    assert root.list_files(folder) == [suite_uri, result.report_uri, result.result_uri]
    assert not [p for p in (tmp_path / "storage").rglob("*") if ".tmp" in p.name]


def test_reports_on_an_s3_root(s3_server: Any, s3_bucket: str, reference: pd.DataFrame, suite: Any) -> None:
    fs = s3_filesystem(
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        endpoint_url=s3_server.endpoint_url,
    )
    root = StorageRoot(f"s3://{s3_bucket}/ml", fs)
    uri = root.layout("flights", "snapshots", "2013-04-01", "data.parquet")
    _write_parquet(root, uri, reference.drop(columns=["flag"]))
    result, page = v.validate_snapshot(root, uri, suite, pipeline="flights", partition="2013-04-01")
    assert (
        result.severity == "error"
        and result.report_uri == f"s3://{s3_bucket}/ml/flights/validation/2013-04-01/report.html"
    )
    _check_reports(root, result, page)
    keys = sorted(o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"])
    assert [k for k in keys if "/validation/" in k] == [
        "ml/flights/validation/2013-04-01/report.html",
        "ml/flights/validation/2013-04-01/validation_result.json",
    ]
