"""SqlSourceHook reads one connection into one engine; source_handles reaches S3 through the aws connection."""

from __future__ import annotations

import json
import os

import pyarrow.fs as pafs
import pytest
import sqlalchemy as sa

from airflow_mlops.core.errors import SpecError
from airflow_mlops.hooks.ingestion import SqlSourceHook, source_handles


def url_of(monkeypatch: pytest.MonkeyPatch, conn: str) -> sa.URL:
    monkeypatch.setenv("AIRFLOW_CONN_SRC", conn)
    return SqlSourceHook("src").sqlalchemy_url


@pytest.mark.parametrize(
    ("conn", "expected"),
    [
        ("postgres://reader:s3cret@db.example.com:5433/analytics", "postgresql+psycopg2://reader:***@db.example.com:5433/analytics"),
        ("postgresql+psycopg2://reader@db/analytics", "postgresql+psycopg2://reader@db/analytics"),
        ("sqlite:////data/flights.db", "sqlite:////data/flights.db"),
        (
            json.dumps({"conn_type": "mlops_sql", "host": "db", "schema": "a", "login": "u", "password": "pw123456"}),
            "postgresql+psycopg2://u:***@db/a",
        ),
        (
            json.dumps({"conn_type": "postgres", "host": "db", "extra": {"sqlalchemy_scheme": "postgresql+psycopg"}}),
            "postgresql+psycopg://db",
        ),
    ],
    ids=["postgres-uri", "sqlalchemy-uri", "sqlite", "mlops_sql", "scheme-extra"],
)  # fmt: skip
def test_connection_to_sqlalchemy_url(monkeypatch: pytest.MonkeyPatch, conn: str, expected: str) -> None:
    assert url_of(monkeypatch, conn).render_as_string(hide_password=True) == expected


def test_only_allowlisted_extras_reach_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {"sslmode": "require", "connect_timeout": 5, "options": "-c statement_timeout=60000",
             "host": "evil.example.com", "sslcompression": "1", "init_command": "DROP TABLE x"}  # fmt: skip
    url = url_of(monkeypatch, json.dumps({"conn_type": "postgres", "host": "db", "schema": "a", "extra": extra}))
    assert dict(url.query) == {"sslmode": "require", "connect_timeout": "5", "options": "-c statement_timeout=60000"}
    assert url.host == "db"


def test_password_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk._shared.secrets_masker.secrets_masker import redact

    hook_url = url_of(monkeypatch, "postgres://reader:Very-Secret-42@db/analytics")
    assert hook_url.password == "Very-Secret-42"
    assert "Very-Secret-42" not in SqlSourceHook("src").masked_url
    assert redact("connecting with Very-Secret-42") == "connecting with ***"


def test_unknown_connection_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SRC", json.dumps({"conn_type": "http", "host": "example.com"}))
    with pytest.raises(SpecError, match=r"connection 'src' has type 'http', which is not a known SQL source"):
        SqlSourceHook("src").get_conn()
    ok, message = SqlSourceHook("src").test_connection()
    assert ok is False and "not a known SQL source" in message


def test_engine_and_test_connection_against_postgres(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SRC", postgres_url)
    hook = SqlSourceHook("src")
    assert hook.get_conn() is hook.get_conn()
    assert isinstance(hook.get_conn().pool, sa.pool.NullPool)
    ok, message = hook.test_connection()
    assert ok is True and message.startswith("Connected to postgresql+psycopg2://postgres@127.0.0.1")


def test_test_connection_reports_wrong_credentials(monkeypatch: pytest.MonkeyPatch, postgres_url: str) -> None:
    wrong = sa.make_url(postgres_url).set(username="nobody_here", password="wrong-password")
    monkeypatch.setenv("AIRFLOW_CONN_SRC", wrong.render_as_string(hide_password=False))
    ok, message = SqlSourceHook("src").test_connection()
    assert ok is False
    assert 'role "nobody_here" does not exist' in message and "wrong-password" not in message


def test_source_handles_reach_s3_through_the_aws_connection(
    monkeypatch: pytest.MonkeyPatch,
    s3_server,  # type: ignore[no-untyped-def]
    s3_bucket: str,
) -> None:
    s3_server.client().put_object(Bucket=s3_bucket, Key="landing/flights_2013-01.csv", Body=b"a\n1\n")
    monkeypatch.setenv("AIRFLOW_CONN_LANDING", s3_server.airflow_conn_uri())
    engine, filesystem = source_handles("s3", f"s3://{s3_bucket}/landing", sql_conn_id="x", aws_conn_id="landing")
    assert engine is None and isinstance(filesystem, pafs.S3FileSystem)
    listed = filesystem.get_file_info(pafs.FileSelector(f"{s3_bucket}/landing"))
    assert [i.base_name for i in listed] == ["flights_2013-01.csv"]
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} & set(os.environ)


def test_source_handles_for_local_and_bad_sources() -> None:
    assert isinstance(source_handles("local", "/tmp", sql_conn_id="x", aws_conn_id=None)[1], pafs.LocalFileSystem)
    with pytest.raises(SpecError, match=r"source must be 'sql', 's3' or 'local'. Got 'ftp'"):
        source_handles("ftp", "/tmp", sql_conn_id="x", aws_conn_id=None)
    with pytest.raises(SpecError, match=r"'s3' source needs an 's3://bucket/prefix' path. Got '/tmp'"):
        source_handles("s3", "/tmp", sql_conn_id="x", aws_conn_id=None)
