"""Frames in and out of the storage root: a snapshot is read back as written and held to its sha256."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError, IntegrityError, SourceNotFoundError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import feature_samples, read_snapshot, write_frame


def test_a_written_frame_is_read_back_and_held_to_its_sha256(tmp_path: Path) -> None:
    root = StorageRoot(str(tmp_path / "root"))
    frame = pd.DataFrame({"distance": [100.0, 250.5, None], "carrier": ["AA", None, "UA"]})
    uri = root.join("flights", "snapshots", "data.parquet")
    sha256 = write_frame(root, uri, frame)
    back, digest = read_snapshot(root, uri, sha256.upper())
    pd.testing.assert_frame_equal(back, frame)
    assert digest == sha256
    with pytest.raises(IntegrityError, match=r"it changed since\. Refusing to train on it"):
        read_snapshot(root, uri, "0" * 64)
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        read_snapshot(root, root.join("flights", "nope.parquet"))
    outside = tmp_path / "elsewhere.parquet"  # a local file outside the root is read too
    outside.write_bytes(Path(uri).read_bytes())
    assert read_snapshot(root, str(outside))[1] == sha256
    outside.write_bytes(b"not parquet")
    with pytest.raises(DataError, match="is not a readable Parquet file"):
        read_snapshot(root, str(outside))


def test_feature_samples_read_text_features_only() -> None:
    frame = pd.DataFrame({"distance": [1.0, 2.0, 3.0], "email": ["a@x.org", "b@y.org", "c@z.org"]})
    assert feature_samples(frame, ("distance", "email"), rows=2) == {"distance": [], "email": ["a@x.org", "b@y.org"]}
