"""Scoring inputs: files, folders, globs and partitions."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import SourceNotFoundError, SpecError
from airflow_mlops.core.scoring.inputs import list_partitions, resolve_input
from airflow_mlops.core.scoring.run import score_partition
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.scoring import serving, spec_for


def test_folder_and_glob_inputs_skip_hidden_files_and_keep_order(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    folder = tmp_path / "landing"
    for day, part in february.groupby(february["day"] // 10):
        target = folder / f"decade={day}"
        target.mkdir(parents=True)
        part.to_parquet(target / "part-0.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / "decade=0" / ".part-0.parquet.crc").write_text("checksum")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "junk.parquet").write_text("not parquet")
    trained = models.flights_classifier("sklearn")
    whole = score_partition(root, spec_for(folder, partition="folder"), serving(trained))
    globbed = score_partition(root, spec_for(f"{folder}/decade=*/*.parquet", partition="glob"), serving(trained))
    recursive = score_partition(root, spec_for(f"{folder}/**/*.parquet", partition="rglob"), serving(trained))
    assert whole.input_files == globbed.input_files == recursive.input_files == 3
    frames = [pq.read_table(r.output_uri).to_pandas() for r in (whole, globbed, recursive)]
    assert frames[0]["flight"].tolist() == february.sort_values("day", kind="stable")["flight"].tolist()
    pd.testing.assert_frame_equal(frames[0], frames[1])
    pd.testing.assert_frame_equal(frames[0], frames[2])
    assert [f.uri for f in resolve_input(f"file://{folder}/decade=[12]/*", root.filesystem)] == [
        f"{folder}/decade=1/part-0.parquet", f"{folder}/decade=2/part-0.parquet"
    ]  # fmt: skip


def test_missing_inputs_are_named(root: StorageRoot, tmp_path: Path) -> None:
    model = serving(models.flights_classifier("sklearn"))
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        score_partition(root, spec_for(tmp_path / "nowhere.parquet"), model)
    with pytest.raises(SourceNotFoundError, match="No Parquet file matches"):
        score_partition(root, spec_for(f"{tmp_path}/*.parquet"), model)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFoundError, match="holds no data file"):
        score_partition(root, spec_for(tmp_path / "empty"), model)
    with pytest.raises(SpecError, match=r"storage root .* is local"):
        score_partition(root, spec_for("s3://bucket/key.parquet"), model)


def test_list_partitions(tmp_path: Path) -> None:
    import pyarrow.fs as pafs

    (tmp_path / "month=2013-01").mkdir()
    (tmp_path / "month=2013-02").mkdir()
    (tmp_path / "_staging").mkdir()
    (tmp_path / "2013-03.parquet").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    fs = pafs.LocalFileSystem()
    assert list_partitions(str(tmp_path), fs) == [
        {"input_uri": f"{tmp_path}/2013-03.parquet", "partition": "2013-03"},
        {"input_uri": f"{tmp_path}/month=2013-01", "partition": "month=2013-01"},
        {"input_uri": f"{tmp_path}/month=2013-02", "partition": "month=2013-02"},
    ]
    assert [p["partition"] for p in list_partitions(str(tmp_path), fs, "month=*")] == ["month=2013-01", "month=2013-02"]
    (tmp_path / "bad name").mkdir()
    with pytest.raises(SpecError, match="partition name"):
        list_partitions(str(tmp_path), fs)
    with pytest.raises(SourceNotFoundError, match="not a folder"):
        list_partitions(str(tmp_path / "notes.txt"), fs)
