from __future__ import annotations

from pathlib import Path

import pytest

from airflow_mlops.core.errors import ArtifactError, IntegrityError, SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot, s3_filesystem, validate_segment


@pytest.mark.parametrize(
    "segment",
    ["2013-04-01T00:00:00+00:00", "flights_delay", "month=2013-04", "v1.2"],
    ids=["iso-datetime", "snake", "hive-style", "dotted"],
)
def test_safe_segments_pass(segment: str) -> None:
    assert validate_segment(segment) == segment


@pytest.mark.parametrize(
    "segment",
    ["..", ".", "a/b", "..%2f", "", ".hidden", "a\\b", "x y", "../../etc"],
    ids=["dotdot", "dot", "slash", "encoded", "empty", "hidden", "backslash", "space", "climb"],
)
def test_unsafe_segments_are_refused(segment: str) -> None:
    with pytest.raises(SpecError, match="single path segment"):
        validate_segment(segment, "partition key")


def test_layout_names_pipeline_kind_partition(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path))
    uri = root.layout("flights", "snapshots", "2013-04-01", "data.parquet")
    assert uri == f"{tmp_path}/flights/snapshots/2013-04-01/data.parquet"
    with pytest.raises(SpecError, match="partition key"):
        root.layout("flights", "snapshots", "../../escape", "data.parquet")
    with pytest.raises(SpecError, match="outside the storage root"):
        root.fs_path(str(tmp_path.parent / "elsewhere"))
    assert not root.contains(f"{tmp_path}/../x")


def test_atomic_write_replaces_whole_or_not_at_all(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path))
    uri = root.join("p/kind/part/data.bin")
    digest = root.write_bytes(uri, b"first")
    assert root.read_bytes(uri) == b"first"
    root.verify_sha256(uri, digest)

    with pytest.raises(RuntimeError), root.atomic_output(uri) as stream:
        stream.write(b"half of the second")
        raise RuntimeError("task killed mid-write")
    assert root.read_bytes(uri) == b"first"
    assert root.list_files(root.join("p")) == [uri]  # no temporary left behind
    assert sorted(p.name for p in (tmp_path / "p/kind/part").iterdir()) == ["data.bin"]

    root.write_bytes(uri, b"second")
    with pytest.raises(IntegrityError, match="changed after it was written"):
        root.verify_sha256(uri, digest)


def test_missing_artifact_is_named(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path))
    with pytest.raises(SourceNotFoundError, match=r"nothing\.bin"):
        root.read_bytes(root.join("nothing.bin"))


def test_unwritable_root_is_an_artifact_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    root = StorageRoot(str(blocker))
    with pytest.raises(ArtifactError, match="Could not"):
        root.write_bytes(root.join("a/b.bin"), b"x")


def test_unknown_scheme_is_refused() -> None:
    with pytest.raises(SpecError, match="gs"):
        StorageRoot("gs://bucket/prefix")


def test_s3_root_round_trip(s3_server, s3_bucket: str) -> None:  # type: ignore[no-untyped-def]
    fs = s3_filesystem(
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        region=s3_server.region,
        endpoint_url=s3_server.endpoint_url,
    )
    root = StorageRoot(f"s3://{s3_bucket}/prefix/", fs)
    assert root.uri == f"s3://{s3_bucket}/prefix"
    uri = root.layout("flights", "snapshots", "2013-04-01", "data.bin")
    digest = root.write_bytes(uri, b"payload")
    assert root.exists(uri) and root.sha256(uri) == digest
    with pytest.raises(RuntimeError), root.atomic_output(uri) as stream:
        stream.write(b"partial")
        raise RuntimeError("boom")
    assert root.read_bytes(uri) == b"payload"
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert [k for k in keys if not k.startswith("prefix/.tmp/")] == ["prefix/flights/snapshots/2013-04-01/data.bin"]
    assert root.list_files(root.join("flights")) == [uri]
