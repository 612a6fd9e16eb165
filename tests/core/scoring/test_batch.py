"""Core batch scoring on real flights and bike-sharing data: output contract, bad input, reliability."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import DataError, IntegrityError, SourceNotFoundError, SpecError
from airflow_mlops.core.onnx_model import OnnxModel
from airflow_mlops.core.scoring.batch import (
    CONTRIBUTION_FEATURE,
    CONTRIBUTION_VALUE,
    ScoringSpec,
    ServingModel,
    _Reservoir,
    baseline_from_reference,
    list_partitions,
    resolve_input,
    score_partition,
)
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.data import bike_sharing

SCORED_AT = datetime(2013, 3, 1, tzinfo=UTC)
PASSTHROUGH = ("flight", "tailnum", "sched_dep_ts")
REPO = Path(__file__).resolve().parents[3]


def serving(trained: models.TrainedModel, version: str = "1", **kwargs: Any) -> ServingModel:
    return ServingModel.from_bytes(
        trained.onnx_bytes, trained.spec, name="flights", version=version, expected_sha256=trained.sha256, **kwargs
    )


def spec_for(input_uri: Path | str, partition: str = "2013-02", **kwargs: Any) -> ScoringSpec:
    values: dict[str, Any] = {
        "pipeline": "flights",
        "partition": partition,
        "input_uri": str(input_uri),
        "scored_at": SCORED_AT,
        "passthrough_columns": PASSTHROUGH,
        "chunk_rows": 700,
    }
    values.update(kwargs)
    return ScoringSpec(**values)


@pytest.fixture(scope="module")
def february() -> pd.DataFrame:
    return models.flights_frame((2,), 3000)


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    return StorageRoot(str(tmp_path / "storage"))


@pytest.fixture
def february_file(tmp_path: Path, february: pd.DataFrame) -> Path:
    path = tmp_path / "in" / "february.parquet"
    path.parent.mkdir()
    february.to_parquet(path, index=False)
    return path


# -- the output contract ---------------------------------------------------------------------------
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


# -- inputs: files, folders, globs ---------------------------------------------------------------
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


# -- bad input -------------------------------------------------------------------------------------
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


def test_an_empty_partition_gives_an_empty_output_with_the_same_schema(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    model = serving(models.flights_classifier("sklearn"))
    february.to_parquet(tmp_path / "full.parquet", index=False)
    pq.write_table(pa.Table.from_pandas(february, preserve_index=False).slice(0, 0), tmp_path / "empty.parquet")
    full = score_partition(root, spec_for(tmp_path / "full.parquet", partition="full"), model)
    empty = score_partition(root, spec_for(tmp_path / "empty.parquet", partition="empty"), model)
    assert empty.rows_in == empty.rows_out == 0
    full_table, empty_table = pq.read_table(full.output_uri), pq.read_table(empty.output_uri)
    assert empty_table.num_rows == 0
    assert empty_table.schema.remove_metadata() == full_table.schema.remove_metadata()
    log = pq.read_table(empty.serving_log_uri)
    assert (
        log.num_rows == 0
        and log.schema.remove_metadata() == pq.read_table(full.serving_log_uri).schema.remove_metadata()
    )


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


def test_passthrough_columns_must_not_clash_with_outputs(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    february.assign(prediction=1).to_parquet(tmp_path / "x.parquet", index=False)
    with pytest.raises(SpecError, match=r"\['prediction'\] clash"):
        score_partition(
            root,
            spec_for(tmp_path / "x.parquet", passthrough_columns=("prediction",)),
            serving(models.flights_classifier("sklearn")),
        )


def test_model_integrity_and_contract_are_checked_before_scoring() -> None:
    trained = models.flights_classifier("sklearn")
    with pytest.raises(IntegrityError, match="was changed"):
        ServingModel.from_bytes(trained.onnx_bytes, trained.spec, name="m", version="1", expected_sha256="0" * 64)
    with pytest.raises(SpecError, match=r"lacks output\(s\) \['variable'\]"):
        ServingModel.from_bytes(
            trained.onnx_bytes, {**trained.spec, "task": "regression"}, name="m", version="1", expected_sha256=None
        )
    with pytest.raises(SpecError, match="exactly two 'classes'"):
        ServingModel.from_bytes(
            trained.onnx_bytes, {**trained.spec, "classes": [0, 1, 2]}, name="m", version="1", expected_sha256=None
        )


# -- reliability ----------------------------------------------------------------------------------
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
    assert log_small.column_names == [
        *PASSTHROUGH, "month", "day", "hour", "minute", "sched_dep_time", "sched_arr_time", "distance",
        "carrier", "origin", "dest", "prediction", "probability_0", "probability_1", "model_name",
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


def test_the_reservoir_is_uniform_and_independent_of_batching() -> None:
    def sample(cuts: list[int]) -> list[int]:
        reservoir = _Reservoir(50, seed=3)
        start = 0
        for size in cuts:
            chosen = reservoir.select(size)
            reservoir.add(pa.table({"i": np.arange(start, start + size)[chosen]}))
            start += size
        return reservoir.result().column("i").to_pylist()

    one = sample([10_000])
    assert one == sample([1] * 100 + [9_900]) == sample([3_333, 3_333, 3_334])
    assert len(one) == 50 and one == sorted(one) and len(set(one)) == 50
    hits = np.zeros(10, int)
    for seed in range(200):
        reservoir = _Reservoir(10, seed=seed)
        chosen = reservoir.select(100)
        reservoir.add(pa.table({"i": np.arange(100)[chosen]}))
        np.add.at(hits, np.asarray(reservoir.result().column("i")) // 10, 1)
    assert hits.min() > 150 and hits.max() < 250  # each decile gets ~200 of 2000 draws


_KILL_SCRIPT = textwrap.dedent(
    """
    import json, os, signal, sys
    from datetime import datetime, timezone
    from airflow_mlops.core.scoring.batch import ScoringSpec, ServingModel, score_partition
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


# -- shadow and explanations -----------------------------------------------------------------------
def test_shadow_report_compares_without_touching_the_served_output(
    root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    champion_model = models.flights_classifier("sklearn")
    challenger_model = models.flights_classifier("lightgbm")
    champion, challenger = serving(champion_model, "3"), serving(challenger_model, "4", alias="challenger")
    alone = score_partition(root, spec_for(february_file, partition="alone"), champion)
    shadowed = score_partition(root, spec_for(february_file, partition="shadowed"), champion, shadow=challenger)
    served = pq.read_table(shadowed.output_uri)
    assert served.replace_schema_metadata(None).equals(pq.read_table(alone.output_uri).replace_schema_metadata(None))
    assert shadowed.shadow_report_uri == root.layout("flights", "shadow", "shadowed", "report.json")
    report = json.loads(root.read_bytes(shadowed.shadow_report_uri))
    native = champion_model.native_frame(february)
    a = champion_model.native.predict_proba(native)[:, 1]
    b = challenger_model.native.predict_proba(native)[:, 1]
    assert report["status"] == "ok" and report["rows"] == len(february)
    assert report["champion"]["version"] == "3" and report["challenger"]["version"] == "4"
    assert report["challenger"]["onnx_sha256"] == challenger_model.sha256
    assert report["agreement_rate"] == pytest.approx(np.mean((a >= 0.5) == (b >= 0.5)), abs=2e-3)
    assert report["score"]["champion"]["mean"] == pytest.approx(a.mean(), abs=1e-5)
    assert report["score"]["challenger"]["quantiles"]["p50"] == pytest.approx(np.median(b), abs=1e-4)
    assert report["score"]["mean_abs_difference"] == pytest.approx(np.abs(a - b).mean(), abs=1e-5)
    assert 0 < report["score"]["ks_statistic"] < 1 and report["score"]["psi"] >= 0
    assert sum(report["label_share"]["champion"].values()) == pytest.approx(1.0)
    assert shadowed.shadow == {
        "status": "ok", "challenger_version": "4", "agreement_rate": report["agreement_rate"], "reason": None
    }  # fmt: skip


def test_a_broken_or_missing_challenger_only_shows_in_the_report(
    root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    champion = serving(models.flights_classifier("sklearn"))
    origin = serving(models.flights_origin_classifier(), "9")  # needs no column the input lacks...
    bike = serving(models.bike_regressor(), "10")  # ...this one needs columns flights do not have
    failed = score_partition(root, spec_for(february_file, partition="a"), champion, shadow=bike)
    report = json.loads(root.read_bytes(failed.shadow_report_uri))
    assert report["status"] == "failed" and "lacks column(s)" in report["error"] and "'hum'" in report["error"]
    assert failed.rows_out == len(february)
    skipped = score_partition(root, spec_for(february_file, partition="b"), champion, shadow_skipped="no alias")
    assert json.loads(root.read_bytes(skipped.shadow_report_uri))["status"] == "skipped"
    assert skipped.shadow == {
        "status": "skipped",
        "challenger_version": None,
        "agreement_rate": None,
        "reason": "no alias",
    }
    other_task = score_partition(root, spec_for(february_file, partition="c"), champion, shadow=origin)
    assert json.loads(root.read_bytes(other_task.shadow_report_uri))["status"] == "ok"


def test_top_k_contributions_by_occlusion(root: StorageRoot, february_file: Path, february: pd.DataFrame) -> None:
    trained = models.flights_classifier("lightgbm")
    inputs = serving(trained).spec.inputs
    baseline = baseline_from_reference(pa.Table.from_pandas(trained.reference), inputs)
    assert baseline["distance"] == float(np.median(trained.reference["distance"]))
    assert baseline["carrier"] == trained.reference["carrier"].value_counts().idxmax()
    model = serving(trained, baseline=baseline)
    result = score_partition(root, spec_for(february_file, explain_top_k=3), model)
    out = pq.read_table(result.output_uri).to_pandas()
    names = [CONTRIBUTION_FEATURE.format(rank=r) for r in (1, 2, 3)]
    values = [CONTRIBUTION_VALUE.format(rank=r) for r in (1, 2, 3)]
    assert out.columns.tolist()[6:12] == [c for pair in zip(names, values, strict=True) for c in pair]
    magnitudes = out[values].abs().to_numpy()
    assert (magnitudes[:, :-1] >= magnitudes[:, 1:]).all()
    # Check row 5 by hand: occlude its top feature with the baseline and rescore.
    onnx = OnnxModel(trained.onnx_bytes, inputs)
    row = february.iloc[[5]].copy()
    top = out.loc[5, names[0]]
    occluded = row.assign(**{top: baseline[top]})
    expected = onnx.run(row)["probabilities"][0, 1] - onnx.run(occluded)["probabilities"][0, 1]
    assert out.loc[5, values[0]] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(SpecError, match="only 10 features"):
        score_partition(root, spec_for(february_file, explain_top_k=11), model)
    with pytest.raises(SpecError, match="without one"):
        score_partition(root, spec_for(february_file, explain_top_k=1), serving(trained))


# -- the request ----------------------------------------------------------------------------------
def test_scoring_spec_from_rendered_templates() -> None:
    spec = ScoringSpec.from_mapping(
        {
            "pipeline": "flights", "partition": "2013-02-01T00:00:00+00:00", "input_uri": "s3://b/k/",
            "scored_at": "2013-02-01T00:00:00", "passthrough_columns": "flight, tailnum", "chunk_rows": "1000",
            "threads": "2", "serving_log_rows": "0", "explain_top_k": "2",
        }
    )  # fmt: skip
    assert spec.scored_at == datetime(2013, 2, 1, tzinfo=UTC)
    assert spec.passthrough_columns == ("flight", "tailnum")
    assert (spec.chunk_rows, spec.threads, spec.serving_log_rows, spec.explain_top_k) == (1000, 2, 0, 2)
    base = {"pipeline": "p", "partition": "x", "input_uri": "/d", "scored_at": "2013-02-01T00:00:00Z"}
    assert ScoringSpec.from_mapping({**base, "passthrough_columns": '["a", "b"]'}).passthrough_columns == ("a", "b")
    for bad, message in [
        ({"chunk_rows": "lots"}, "'chunk_rows' parameter must be an integer in \\[1, 4194304\\]. Got 'lots'"),
        ({"chunk_rows": 0}, "'chunk_rows'"),
        ({"threads": True}, "'threads'"),
        ({"partition": "../up"}, "partition key"),
        ({"input_uri": "ftp://x"}, "local paths, file:// or s3://"),
        ({"scored_at": "yesterday"}, "ISO 8601"),
        ({"passthrough_columns": "a,a"}, "twice"),
        ({"pipeline": ""}, "'pipeline' parameter of the scoring spec is required"),
    ]:
        with pytest.raises(SpecError, match=message):
            ScoringSpec.from_mapping({**base, **bad})


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
