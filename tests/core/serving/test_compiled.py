"""serving.runtime 'compiled': LightGBM trees compiled on the worker, behind the ONNX path's guarantees.

The model is small (20 trees, one-hot categories as the training stem encodes them) so compiling takes
seconds. Skipped only when the ``compiled`` extra is not installed.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError, IntegrityError, SpecError
from airflow_mlops.core.onnx_model import feed
from airflow_mlops.core.scoring import ScoringSpec, score_partition
from airflow_mlops.core.serving import load_serving_model, resolve_model_version
from airflow_mlops.core.serving.compiled import CompiledForest, FeatureLayout, check_parity
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.scoring import serving, spec_for

pytest.importorskip("lleaves", reason="the 'compiled' extra (lleaves) is not installed")


def forest(trained: models.TrainedModel, cache: Path, text: bytes | None = None) -> CompiledForest:
    model = serving(trained)
    text = trained.extra["lightgbm_text"] if text is None else text
    return CompiledForest(
        text,
        hashlib.sha256(text).hexdigest(),
        FeatureLayout.of(model.spec.inputs, trained.spec["vocabulary"]),
        task=model.spec.task,
        classes=model.spec.classes,
        label_type="int64",
        cache_dir=cache,
    )


def awkward_rows(february: pd.DataFrame) -> pd.DataFrame:
    """February rows with missing numbers and categories, and categories training never kept."""
    rows = february.head(3000).reset_index(drop=True)
    rows.loc[0:40, "distance"] = np.nan
    rows.loc[41:80, "carrier"] = None
    rows.loc[81:120, "dest"] = "ZZZ"  # never seen
    rows.loc[121:160, "origin"] = ""
    return rows


def test_compiled_trees_compute_what_the_onnx_graph_computes(february: pd.DataFrame, tmp_path: Path) -> None:
    trained = models.flights_onehot_lightgbm()
    compiled = forest(trained, tmp_path)
    assert not compiled.cached and compiled.compile_seconds > 0
    model = serving(trained)
    fed = feed(awkward_rows(february), model.spec.inputs)
    parity = check_parity(model.onnx, compiled, fed)
    assert parity.passed and parity.label_agreement == 1.0 and parity.max_difference < 1e-6, parity
    native = trained.native.predict_proba(trained.native_frame(awkward_rows(february)))
    np.testing.assert_allclose(compiled.run_feed(fed)["probabilities"], native, atol=1e-6)


def test_the_cache_serves_a_second_worker_start_and_keys_by_the_text(tmp_path: Path) -> None:
    trained = models.flights_onehot_lightgbm()
    first = forest(trained, tmp_path)
    again = forest(trained, tmp_path)
    assert (first.cached, again.cached) == (False, True)
    other = models.flights_onehot_lightgbm(n_estimators=5)
    assert not forest(other, tmp_path).cached  # another text model is another entry
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    assert not list(tmp_path.glob("*/.compiling-*"))  # nothing half-written left behind


def test_a_changed_text_model_is_refused_before_compiling(tmp_path: Path) -> None:
    trained = models.flights_onehot_lightgbm()
    model = serving(trained)
    with pytest.raises(IntegrityError, match="was recorded at training"):
        CompiledForest(
            trained.extra["lightgbm_text"] + b"\n",
            hashlib.sha256(trained.extra["lightgbm_text"]).hexdigest(),
            FeatureLayout.of(model.spec.inputs, trained.spec["vocabulary"]),
            task="binary",
            classes=(0, 1),
            label_type="int64",
            cache_dir=tmp_path,
        )
    assert not list(tmp_path.iterdir())


def test_trees_that_disagree_with_the_graph_are_refused(february: pd.DataFrame, tmp_path: Path) -> None:
    trained, other = models.flights_onehot_lightgbm(), models.flights_onehot_lightgbm(n_estimators=5)
    wrong = forest(trained, tmp_path, text=other.extra["lightgbm_text"])  # same layout, other trees
    model = serving(trained)
    with pytest.raises(IntegrityError, match="does not compute what the registered ONNX graph computes"):
        check_parity(model.onnx, wrong, feed(february.head(500), model.spec.inputs))


def test_a_text_model_of_another_layout_is_refused(tmp_path: Path) -> None:
    trained = models.flights_onehot_lightgbm()
    model = serving(trained)
    narrower = {c: values[:-1] for c, values in trained.spec["vocabulary"].items()}
    with pytest.raises(ArtifactError, match="does not belong to this spec"):
        CompiledForest(
            trained.extra["lightgbm_text"],
            hashlib.sha256(trained.extra["lightgbm_text"]).hexdigest(),
            FeatureLayout.of(model.spec.inputs, narrower),
            task="binary",
            classes=(0, 1),
            label_type="int64",
            cache_dir=tmp_path,
        )


def test_without_the_extra_the_error_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "lleaves", None)
    with pytest.raises(SpecError, match=r"pip install 'airflow-mlops\[compiled\]'"):
        forest(models.flights_onehot_lightgbm(), tmp_path)


def test_scoring_with_the_compiled_runtime_writes_what_onnx_writes(
    registry: tuple[Any, str], root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    client, experiment_id = registry
    models.register(client, models.flights_onehot_lightgbm(), "flights_compiled", experiment_id=experiment_id)
    ref = resolve_model_version(client, "flights_compiled", alias=contracts.ALIAS_CHAMPION)
    rows = awkward_rows(february)
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    results = {}
    for runtime in ("onnx", "compiled"):
        model = load_serving_model(client, ref, runtime=runtime, cache_dir=str(tmp_path / "cache"))
        assert model.runtime == runtime
        spec = spec_for(tmp_path / "rows.parquet", partition=runtime, runtime=runtime)
        results[runtime] = score_partition(root, spec, model)
    onnx, compiled = (pq.read_table(results[r].output_uri).to_pandas() for r in ("onnx", "compiled"))
    assert onnx["prediction"].tolist() == compiled["prediction"].tolist()
    np.testing.assert_allclose(onnx["probability_1"], compiled["probability_1"], atol=1e-6)
    assert results["onnx"].input_checks == results["compiled"].input_checks
    assert results["compiled"].input_checks["unseen_categories"]["dest"] >= 40


def test_a_run_without_a_text_model_cannot_be_served_compiled(registry: tuple[Any, str], tmp_path: Path) -> None:
    client, experiment_id = registry
    models.register(client, models.flights_classifier("lightgbm"), "flights_no_text", experiment_id=experiment_id)
    ref = resolve_model_version(client, "flights_no_text", alias=contracts.ALIAS_CHAMPION)
    with pytest.raises(ArtifactError, match="has no LightGBM text model"):
        load_serving_model(client, ref, runtime="compiled", cache_dir=str(tmp_path))
    with pytest.raises(SpecError, match="'runtime' must be one of"):
        load_serving_model(client, ref, runtime="jit")
    with pytest.raises(SpecError, match="runtime"):
        ScoringSpec.from_mapping(
            {"pipeline": "p", "partition": "x", "input_uri": "/tmp/x.parquet", "scored_at": "2013-02-01T00:00:00Z"}
            | {"runtime": "fast"}
        )
