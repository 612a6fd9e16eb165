"""Batch scoring end to end on real flights and bike-sharing data: the output contract, NaN handling, reruns,
the serving log and a killed task."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import DataError
from airflow_mlops.core.scoring.run import score_partition
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.data import bike_sharing
from tests.support.scoring import PASSTHROUGH, REPO, SCORED_AT, serving, spec_for


@pytest.mark.parametrize("kind", ["sklearn", "lightgbm"])
def test_binary_predictions_follow_the_contract_and_match_the_native_model(
    kind: str, root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    trained = models.flights_classifier(kind)
    result = score_partition(root, spec_for(february_file), serving(trained, version="7"))

    assert result.output_uri == root.layout("flights", "predictions", "2013-02", "predictions.parquet")
    assert result.rows_in == result.rows_out == len(february)
    assert (result.model_name, result.model_version, result.onnx_sha256) == ("flights", "7", trained.sha256)
    table = pq.read_table(result.output_uri)
    assert table.column_names == [
        *PASSTHROUGH, "prediction", "probability_0", "probability_1", "model_name", "model_version", "scored_at"
    ]  # fmt: skip
    assert table.schema.field("prediction").type == pa.int64()
    assert table.schema.field("probability_1").type == pa.float32()
    assert table.schema.field("scored_at").type == pa.timestamp("us", tz="UTC")
    out = table.to_pandas()
    native = trained.native_frame(february)
    np.testing.assert_allclose(out[["probability_0", "probability_1"]], trained.native.predict_proba(native), atol=1e-5)
    assert (out["prediction"].to_numpy() == trained.native.predict(native)).all()
    assert out["flight"].tolist() == february["flight"].tolist()  # input order is kept
    assert out["tailnum"].tolist() == february["tailnum"].tolist()
    assert set(out["model_version"]) == {"7"} and set(out["model_name"]) == {"flights"}
    assert set(out["scored_at"]) == {pd.Timestamp(SCORED_AT)}
    metadata = table.schema.metadata
    assert metadata[b"mlops.onnx_sha256"].decode() == trained.sha256
    assert json.loads(metadata[b"mlops.classes"]) == ["0", "1"]
    receipt = result.to_dict()
    assert receipt["throughput_rows_per_s"] > 0 and receipt["serving_log_rows"] == len(february)
    json.dumps(receipt)  # JSON-able, for XCom


def test_multiclass_with_string_labels(root: StorageRoot, february_file: Path, february: pd.DataFrame) -> None:
    trained = models.flights_origin_classifier()
    result = score_partition(root, spec_for(february_file, passthrough_columns=("flight",)), serving(trained))
    out = pq.read_table(result.output_uri)
    assert out.column_names[:5] == ["flight", "prediction", "probability_EWR", "probability_JFK", "probability_LGA"]
    assert out.schema.field("prediction").type == pa.string()
    frame = out.to_pandas()
    native = trained.native_frame(february)
    np.testing.assert_allclose(frame[["probability_EWR", "probability_JFK", "probability_LGA"]],
                               trained.native.predict_proba(native), atol=1e-5)  # fmt: skip
    assert (frame["prediction"] == trained.native.predict(native)).all()


def test_regression_with_an_integer_column_declared_categorical(root: StorageRoot, tmp_path: Path) -> None:
    trained = models.bike_regressor()
    bikes = bike_sharing().tail(2500).reset_index(drop=True)
    bikes.to_parquet(tmp_path / "bikes.parquet", index=False)
    spec = ScoringSpec(
        pipeline="bikes", partition="2012-12", input_uri=str(tmp_path / "bikes.parquet"), scored_at=SCORED_AT,
        passthrough_columns=("instant",),
    )  # fmt: skip
    result = score_partition(root, spec, serving(trained))
    out = pq.read_table(result.output_uri)
    assert out.column_names == ["instant", "prediction", "model_name", "model_version", "scored_at"]
    assert out.schema.field("prediction").type == pa.float32()
    expected = trained.native.predict(trained.native_frame(bikes))
    np.testing.assert_allclose(out.column("prediction").to_numpy(), expected, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("kind", ["lightgbm", "sklearn"])
def test_nan_where_the_model_accepts_it(kind: str, root: StorageRoot, tmp_path: Path, february: pd.DataFrame) -> None:
    trained = models.flights_classifier(kind)  # LightGBM handles NaN natively; the sklearn pipeline imputes
    holes = february.copy()
    holes.loc[holes.index % 7 == 0, "distance"] = np.nan
    holes.loc[holes.index % 5 == 0, "carrier"] = None
    holes.to_parquet(tmp_path / "holes.parquet", index=False)
    result = score_partition(root, spec_for(tmp_path / "holes.parquet"), serving(trained))
    out = pq.read_table(result.output_uri).to_pandas()
    assert not out[["probability_0", "probability_1"]].isna().any().any()
    expected = trained.native.predict_proba(trained.native_frame(holes))
    np.testing.assert_allclose(out[["probability_0", "probability_1"]], expected, atol=1e-5)


def test_nan_where_the_model_cannot_take_it_is_refused(root: StorageRoot, tmp_path: Path) -> None:
    trained = models.bike_regressor()  # no imputer: NaN would become a NaN prediction
    bikes = bike_sharing().head(2000).copy()
    bikes.loc[1234, "hum"] = np.nan
    bikes.to_parquet(tmp_path / "bikes.parquet", index=False)
    spec = ScoringSpec(
        pipeline="bikes", partition="p", input_uri=str(tmp_path / "bikes.parquet"), scored_at=SCORED_AT,
        chunk_rows=500,
    )  # fmt: skip
    with pytest.raises(DataError, match=r"NaN\) for 1 row\(s\), the first at row 1234 .*\['hum'\]"):
        score_partition(root, spec, serving(trained))
    assert root.list_files(root.uri) == []


def test_a_rerun_writes_the_same_bytes_in_the_same_place(root: StorageRoot, february_file: Path) -> None:
    trained = models.flights_classifier("lightgbm")
    first = score_partition(root, spec_for(february_file), serving(trained))
    outputs = {uri: Path(uri).read_bytes() for uri in (first.output_uri, first.serving_log_uri)}
    second = score_partition(root, spec_for(february_file), serving(trained))
    assert second.output_uri == first.output_uri
    assert {uri: Path(uri).read_bytes() for uri in outputs} == outputs
    assert [Path(f).name for f in root.list_files(root.uri)] == ["predictions.parquet", "sample.parquet"]
    assert len(pq.read_table(second.output_uri)) == second.rows_in  # replaced, not appended
    # Same bytes for the same thread count; another count may round the last float32 bit differently.
    two = score_partition(root, spec_for(february_file, partition="two"), serving(trained, threads=2))
    again = score_partition(root, spec_for(february_file, partition="two"), serving(trained, threads=2))
    assert Path(two.output_uri).read_bytes() == Path(again.output_uri).read_bytes()
    one, other = pq.read_table(first.output_uri).to_pandas(), pq.read_table(two.output_uri).to_pandas()
    assert (one["prediction"] == other["prediction"]).all()
    np.testing.assert_allclose(one["probability_1"], other["probability_1"], atol=1e-6)


def test_floating_point_columns_are_written_without_a_dictionary(root: StorageRoot, february_file: Path) -> None:
    """Probabilities and numeric features take nearly as many values as rows: a dictionary for them would be
    built only to be dropped. Every other column keeps Parquet's dictionary encoding."""
    result = score_partition(root, spec_for(february_file), serving(models.flights_classifier("lightgbm")))
    for uri in (result.output_uri, result.serving_log_uri):
        columns = pq.ParquetFile(uri).metadata.row_group(0)
        for index, field in enumerate(pq.read_schema(uri)):
            encodings = columns.column(index).encodings
            dictionary = any("DICTIONARY" in encoding for encoding in encodings)
            assert dictionary is not pa.types.is_floating(field.type), (uri, field.name, encodings)


def test_the_serving_log_is_a_bounded_seeded_sample_whatever_the_chunk_size(
    root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    model = serving(models.flights_classifier("sklearn"))
    small = score_partition(root, spec_for(february_file, partition="a", chunk_rows=97, serving_log_rows=200), model)
    large = score_partition(root, spec_for(february_file, partition="b", chunk_rows=5000, serving_log_rows=200), model)
    other = score_partition(root, spec_for(february_file, partition="c", serving_log_rows=200, seed=1), model)
    log_small, log_large = pq.read_table(small.serving_log_uri), pq.read_table(large.serving_log_uri)
    assert small.serving_log_rows == log_small.num_rows == 200
    assert log_small.equals(log_large)
    assert pq.read_table(other.serving_log_uri).column("flight") != log_small.column("flight")
    features = ["month", "day", "hour", "minute", "sched_dep_time", "sched_arr_time", "distance", "carrier",
                "origin", "dest"]  # fmt: skip
    # The input's other columns (not the label) are kept too, so drift can watch what the model does not read.
    flat = [c for c in february.columns if not pd.api.types.is_datetime64_any_dtype(february[c])]
    others = [c for c in flat if c not in (*PASSTHROUGH, *features, "arr_delayed_15")]
    assert log_small.column_names == [
        *PASSTHROUGH, *features, *others, "prediction", "probability_0", "probability_1", "model_name",
        "model_version", "scored_at",
    ]  # fmt: skip
    named = score_partition(
        root, spec_for(february_file, partition="e", serving_log_rows=50, monitor_columns=("dep_delay",)), model
    )
    assert pq.read_table(named.serving_log_uri).column_names == [
        *PASSTHROUGH, *features, "dep_delay", "prediction", "probability_0", "probability_1", "model_name",
        "model_version", "scored_at",
    ]  # fmt: skip
    # The sampled rows are real rows with their own predictions.
    sample = log_small.to_pandas()
    predictions = pq.read_table(small.output_uri).to_pandas()
    joined = sample.merge(predictions, on=list(PASSTHROUGH), suffixes=("", "_served"))
    assert len(joined) == 200
    assert np.allclose(joined["probability_1"], joined["probability_1_served"])
    source = february.merge(sample, on=list(PASSTHROUGH), suffixes=("", "_logged"))
    assert (source["distance"] == source["distance_logged"]).all()
    off = score_partition(root, spec_for(february_file, partition="d", serving_log_rows=0), model)
    assert off.serving_log_uri is None and not root.exists(root.layout("flights", "serving_log", "d", "sample.parquet"))


_KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from datetime import datetime, timezone
    from airflow_mlops.core.scoring import ScoringSpec, score_partition
    from airflow_mlops.core.serving import ServingModel
    from airflow_mlops.core.storage import StorageRoot

    args = json.loads(sys.argv[1])
    model = ServingModel.from_bytes(
        open(args["model"], "rb").read(), json.load(open(args["spec"])), name="flights", version="1",
        expected_sha256=None,
    )
    spec = ScoringSpec(
        pipeline="flights", partition="2013-02", input_uri=args["input"], scored_at=datetime(2013, 3, 1,
        tzinfo=timezone.utc), passthrough_columns=("flight",), chunk_rows=300,
    )

    def progress(done, total):
        print(done, flush=True)
        if done >= 900:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no finally: as when a worker dies

    score_partition(StorageRoot(args["root"]), spec, model, progress=progress)
    """
)


def test_a_task_killed_mid_write_leaves_no_partial_output(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    trained = models.flights_classifier("sklearn")
    (tmp_path / "model.onnx").write_bytes(trained.onnx_bytes)
    (tmp_path / "spec.json").write_text(json.dumps(trained.spec))
    february.to_parquet(tmp_path / "in.parquet", index=False)
    args = {
        "model": str(tmp_path / "model.onnx"), "spec": str(tmp_path / "spec.json"),
        "input": str(tmp_path / "in.parquet"), "root": root.uri,
    }  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", _KILL_SCRIPT, json.dumps(args)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert proc.stdout.split() == ["300", "600", "900"]  # it was killed mid-stream, after writing batches
    output = root.layout("flights", "predictions", "2013-02", "predictions.parquet")
    assert not root.exists(output)
    assert root.list_files(root.uri) == []  # nothing visible
    leftovers = list(Path(root.uri).rglob(".tmp-predictions.parquet-*"))
    assert len(leftovers) == 1 and leftovers[0].stat().st_size > 0  # the partial bytes stayed hidden

    model = serving(trained)
    result = score_partition(root, spec_for(tmp_path / "in.parquet", passthrough_columns=("flight",)), model)
    assert result.rows_out == len(february) == pq.read_table(output).num_rows
    assert not list(Path(root.uri).rglob(".tmp-*"))  # the rerun removed what the killed attempt left
