"""Report paths: only files of a report type under the storage root, never a way out of it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from airflow_mlops.core.errors import SourceNotFoundError
from airflow_mlops.core.storage import StorageRoot, s3_filesystem
from airflow_mlops.plugins import reports

REPORT = "flights/drift/2013-04-01T00:00:00+00:00/report.html"
CARD = "flights/evidence/p/gate/r1/model_card.html"


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    storage = StorageRoot(str(tmp_path / "storage"))
    storage.write_bytes(storage.join(REPORT), b"<html>drift</html>")
    storage.write_bytes(storage.join("flights/evidence/p/gate/r1/decision.json"), b'{"verdict": "passed"}')
    storage.write_bytes(storage.join("flights/snapshots/p/data.parquet"), b"PAR1")
    return storage


def test_a_report_is_read_with_its_content_type(root: StorageRoot) -> None:
    found = reports.read_report(root, REPORT)
    assert (found.content, found.content_type) == (b"<html>drift</html>", "text/html; charset=utf-8")
    decision = reports.read_report(root, "flights/evidence/p/gate/r1/decision.json")
    assert decision.content_type == "application/json" and decision.uri == root.join(
        "flights/evidence/p/gate/r1/decision.json"
    )


@pytest.mark.parametrize(
    "path",
    ["../secret.html", "flights/../../secret.html", "flights/./drift/x.html", "/etc/passwd.txt",
     "\\\\server\\share.html", "flights//drift.html", "flights/.tmp/x.html", "", "flights/a\x00.html"],
    ids=["dotdot", "nested-dotdot", "dot", "absolute", "backslash", "empty-segment", "hidden", "empty", "nul"],
)  # fmt: skip
def test_paths_that_could_leave_the_root_are_refused(root: StorageRoot, path: str) -> None:
    with pytest.raises(reports.ReportPathRefused, match=r"report path|relative to the storage root"):
        reports.read_report(root, path)


def test_a_symlink_out_of_the_root_is_refused(root: StorageRoot, tmp_path: Path) -> None:
    outside = tmp_path / "outside.html"
    outside.write_text("<html>not a report of ours</html>")
    link = Path(root.fs_path(root.join("flights/drift/leak.html")))
    os.symlink(outside, link)
    with pytest.raises(reports.ReportOutsideRoot, match="resolves outside the storage root"):
        reports.read_report(root, "flights/drift/leak.html")
    folder_link = Path(root.fs_path(root.join("flights/escape")))
    os.symlink(tmp_path, folder_link, target_is_directory=True)
    with pytest.raises(reports.ReportOutsideRoot):
        reports.read_report(root, "flights/escape/outside.html")
    # a symlink that stays inside the root is fine
    os.symlink(Path(root.fs_path(root.join(REPORT))), Path(root.fs_path(root.join("flights/latest.html"))))
    assert reports.read_report(root, "flights/latest.html").content == b"<html>drift</html>"


def test_files_that_are_not_reports_and_missing_ones_are_refused(root: StorageRoot) -> None:
    with pytest.raises(reports.NotAReport, match=r"Only reports are served .*'data.parquet'"):
        reports.read_report(root, "flights/snapshots/p/data.parquet")
    with pytest.raises(SourceNotFoundError, match="No report at"):
        reports.read_report(root, "flights/drift/missing.html")


def test_a_folder_named_like_a_report_is_not_a_report(root: StorageRoot) -> None:
    Path(root.fs_path(root.join("flights/odd.html"))).mkdir(parents=True)
    with pytest.raises(SourceNotFoundError):
        reports.read_report(root, "flights/odd.html")


def test_links_are_made_only_for_uris_under_the_root(root: StorageRoot, tmp_path: Path) -> None:
    link = reports.report_link(root, root.join(REPORT), "/mlops/reports")
    assert link == "/mlops/reports/flights/drift/2013-04-01T00%3A00%3A00%2B00%3A00/report.html"
    assert reports.report_link(root, str(tmp_path / "elsewhere" / "x.html"), "/mlops/reports") is None
    assert reports.report_link(root, "s3://bucket/x.html", "/mlops/reports") is None
    assert reports.report_link(root, None, "/mlops/reports") is None


def test_reports_are_read_from_an_s3_root(s3_server, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    fs = s3_filesystem(
        access_key=s3_server.access_key, secret_key=s3_server.secret_key, region=s3_server.region,
        endpoint_url=s3_server.endpoint_url,
    )  # fmt: skip
    root = StorageRoot(f"s3://{s3_bucket}/prefix", fs)
    root.write_bytes(root.join(REPORT), b"<html>on s3</html>")
    assert reports.read_report(root, REPORT).content == b"<html>on s3</html>"
    assert reports.report_link(root, f"s3://{s3_bucket}/prefix/{CARD}", "/r") == f"/r/{CARD}"
    with pytest.raises(reports.ReportPathRefused):
        reports.read_report(root, "../other-prefix/report.html")
    with pytest.raises(SourceNotFoundError):
        reports.read_report(root, "flights/drift/missing.html")
