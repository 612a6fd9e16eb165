"""Evaluation rows: read from the storage root, labelled, sampled with a seed, problems named."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from airflow_mlops.core.errors import DataError, SourceNotFoundError
from airflow_mlops.core.gating import evaluate, prepare_data, read_evaluation_frame
from airflow_mlops.core.storage import StorageRoot
from tests.core.gating.support import Exported, candidate, labelled, policy


def test_evaluation_data_problems_are_named(good: Exported, evaluation: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="no target column 'arr_delayed_15'"):
        evaluate(candidate(good), None, evaluation.drop(columns=["arr_delayed_15"]), policy())
    with pytest.raises(DataError, match="no row with a value in the target column"):
        evaluate(candidate(good), None, evaluation.assign(arr_delayed_15=pd.NA), policy())
    odd = evaluation.astype({"arr_delayed_15": "object"})
    odd.loc[0, "arr_delayed_15"] = "late"
    with pytest.raises(DataError, match=r"label\(s\) \['late'\] that are not among the model's classes \['0', '1'\]"):
        evaluate(candidate(good), None, odd, policy())


def test_large_evaluation_sets_are_sampled_with_a_seed(good: Exported, evaluation: pd.DataFrame) -> None:
    first = prepare_data(evaluation, good.spec, max_rows=1000, seed=3)
    again = prepare_data(evaluation, good.spec, max_rows=1000, seed=3)
    assert first.info["sampled"] and first.info["rows"] == 1000
    assert first.info["rows_without_label"] == len(evaluation) - len(labelled(evaluation))
    pd.testing.assert_frame_equal(first.frame, again.frame)


def test_read_evaluation_frame_reads_parquet_csv_and_folders(tmp_path: Path, evaluation: pd.DataFrame) -> None:
    storage = StorageRoot(str(tmp_path))
    small = evaluation.head(50)[["distance", "carrier", "arr_delayed_15"]]
    small.to_parquet(tmp_path / "one.parquet")
    small.to_csv(tmp_path / "one.csv", index=False)
    (tmp_path / "parts").mkdir()
    small.head(20).to_parquet(tmp_path / "parts" / "a.parquet")
    small.tail(30).to_parquet(tmp_path / "parts" / "b.parquet")
    frame, sha = read_evaluation_frame(storage, storage.join("one.parquet"))
    assert len(frame) == 50 and sha == storage.sha256(storage.join("one.parquet"))
    assert len(read_evaluation_frame(storage, storage.join("one.csv"))[0]) == 50
    parts, parts_sha = read_evaluation_frame(storage, storage.join("parts"))
    assert len(parts) == 50 and parts_sha == read_evaluation_frame(storage, storage.join("parts"))[1]
    with pytest.raises(SourceNotFoundError, match="No evaluation data"):
        read_evaluation_frame(storage, storage.join("nope.parquet"))
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="could not be read as Parquet or CSV"):
        read_evaluation_frame(storage, storage.join("bad.parquet"))
