from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.hooks.storage import StorageHook


def test_local_root_from_settings(mlops_env: Path) -> None:
    hook = StorageHook()
    root = hook.get_conn()
    assert root.uri == str(mlops_env / "storage")
    assert hook.test_connection()[0] is True


def test_s3_root_through_an_aws_connection(s3_server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("AIRFLOW_CONN_S3_TEST", s3_server.airflow_conn_uri())
    hook = StorageHook(storage_root=f"s3://{s3_bucket}/root", aws_conn_id="s3_test")
    root = hook.get_conn()
    uri = root.join("a/b.txt")
    root.write_bytes(uri, b"hello")
    body = s3_server.client().get_object(Bucket=s3_bucket, Key="root/a/b.txt")["Body"].read()
    assert body == b"hello"
    assert hook.test_connection() == (True, f"Storage root 's3://{s3_bucket}/root' is reachable.")
    credentials = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"}
    assert not credentials & set(__import__("os").environ)


def test_unreachable_s3_reports_instead_of_raising(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support.services import free_port

    monkeypatch.setenv(
        "AIRFLOW_CONN_S3_DOWN",
        '{"conn_type": "aws", "login": "k", "password": "s", '
        f'"extra": {{"endpoint_url": "http://127.0.0.1:{free_port()}", "region_name": "us-east-1"}}}}',
    )
    ok, message = StorageHook(storage_root="s3://nowhere/x", aws_conn_id="s3_down").test_connection()
    assert ok is False and "not reachable" in message
