"""Reading scoring input: missing, messy, corrupt and disagreeing files; row counts across files."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.scoring.run import score_partition
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.scoring import serving, spec_for


def test_a_missing_feature_column_is_named_and_nothing_is_written(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    february.drop(columns=["distance"]).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x\.parquet' is missing feature column\(s\) \['distance'\]"):
        score_partition(root, spec_for(tmp_path / "x.parquet"), serving(models.flights_classifier("sklearn")))
    assert root.list_files(root.uri) == []
    february.to_parquet(tmp_path / "y.parquet")
    with pytest.raises(DataError, match=r"y\.parquet' has no passthrough column\(s\) \['id'\]"):
        score_partition(
            root,
            spec_for(tmp_path / "y.parquet", passthrough_columns=("flight", "id")),
            serving(models.flights_classifier("sklearn")),
        )


def test_extra_and_coercible_columns_give_the_same_predictions(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    trained = models.flights_classifier("lightgbm")
    february.to_parquet(tmp_path / "clean.parquet", index=False)
    messy = february.copy()
    messy["distance"] = messy["distance"].astype(str)  # numbers as text
    messy["hour"] = messy["hour"].astype("float64")
    messy["month"] = messy["month"].astype("Int32")
    messy["carrier"] = messy["carrier"].astype("category")  # read back as a dictionary column
    messy["payload"] = [{"a": i, "b": [i, i]} for i in range(len(messy))]  # a nested extra column
    messy.to_parquet(tmp_path / "messy.parquet", index=False)
    clean = score_partition(root, spec_for(tmp_path / "clean.parquet", partition="clean"), serving(trained))
    coerced = score_partition(root, spec_for(tmp_path / "messy.parquet", partition="messy"), serving(trained))
    columns = ["prediction", "probability_0", "probability_1"]
    assert pq.read_table(coerced.output_uri, columns=columns).equals(pq.read_table(clean.output_uri, columns=columns))
    log = pq.read_table(coerced.serving_log_uri)
    assert "payload" not in log.column_names and log.schema.field("distance").type == pa.string()


def test_an_uncoercible_value_is_named(root: StorageRoot, tmp_path: Path, february: pd.DataFrame) -> None:
    bad = february.astype({"distance": str})  # numbers as text are fine...
    bad.loc[17, "distance"] = "far"  # ...this one is not
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(DataError, match="'distance' must be numeric; it holds 'far'"):
        score_partition(root, spec_for(tmp_path / "bad.parquet"), serving(models.flights_classifier("sklearn")))


def test_corrupt_parquet_is_named_and_the_previous_output_survives(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    model = serving(models.flights_classifier("sklearn"))
    path = tmp_path / "in.parquet"
    february.to_parquet(path, index=False, row_group_size=500)
    good = score_partition(root, spec_for(path), model)
    before = Path(good.output_uri).read_bytes()
    data = path.read_bytes()
    for name, content in (
        ("truncated", data[: len(data) // 2]),
        ("not parquet", b"id,distance\n1,200\n"),
        ("damaged page", data[:4] + bytes(b ^ 0xFF for b in data[4:2000]) + data[2000:]),
    ):
        path.write_bytes(content)
        with pytest.raises(DataError, match=r"in\.parquet' is not a readable Parquet file"):
            score_partition(root, spec_for(path), model)
        assert Path(good.output_uri).read_bytes() == before, name
    assert [Path(f).name for f in root.list_files(root.uri)] == ["predictions.parquet", "sample.parquet"]
    assert not [p for p in Path(root.uri).rglob(".tmp-*")]


def test_files_that_disagree_on_a_column_type_are_refused(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    (tmp_path / "p").mkdir()
    february.head(100).to_parquet(tmp_path / "p" / "a.parquet", index=False)
    february.tail(100).astype({"flight": str}).to_parquet(tmp_path / "p" / "b.parquet", index=False)
    with pytest.raises(DataError, match="disagree on column types"):
        score_partition(root, spec_for(tmp_path / "p"), serving(models.flights_classifier("sklearn")))


def test_rows_in_equals_rows_out_across_many_row_groups_and_files(root: StorageRoot, tmp_path: Path) -> None:
    frame = models.flights_frame((3,), None)
    (tmp_path / "p").mkdir()
    third = len(frame) // 3 + 1
    for i, part in enumerate(frame.iloc[k : k + third] for k in range(0, len(frame), third)):
        pq.write_table(pa.Table.from_pandas(part, preserve_index=False), tmp_path / "p" / f"{i}.parquet",
                       row_group_size=4096)  # fmt: skip
    result = score_partition(
        root, spec_for(tmp_path / "p", chunk_rows=10_000), serving(models.flights_classifier("lightgbm"))
    )
    assert result.rows_in == result.rows_out == len(frame) == pq.ParquetFile(result.output_uri).metadata.num_rows
    assert os.path.getsize(result.output_uri) > 0
