"""Training core on real data: contract of the exported model, metrics, determinism, bad input."""

from __future__ import annotations

import tracemalloc

import numpy as np
import onnx
import pandas as pd
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.metrics import Predictions
from airflow_mlops.core.onnx_model import OnnxModel
from airflow_mlops.core.training import TrainingResult, split_frame, train_model
from airflow_mlops.core.training.data import feature_frame
from airflow_mlops.core.training.export import ParityError, check_parity
from airflow_mlops.core.training.spec import TrainingSpec
from tests.core.training.support import BIKE, FLIGHTS, spec_of


# -- the exported model follows the contract --------------------------------------------------------
def test_classifier_graph_follows_the_onnx_contract(trained: TrainingResult) -> None:
    model = onnx.load_from_string(trained.onnx_bytes)
    inputs = {i.name: i.type.tensor_type for i in model.graph.input}
    assert list(inputs) == ["hour", "minute", "distance", "carrier", "origin", "dest"]
    for name, tensor in inputs.items():
        expected = onnx.TensorProto.STRING if name in ("carrier", "origin", "dest") else onnx.TensorProto.FLOAT
        assert tensor.elem_type == expected, name
        assert [d.dim_value for d in tensor.shape.dim][1] == 1
    outputs = {o.name: o.type.tensor_type for o in model.graph.output}
    assert list(outputs) == ["label", "probabilities"]
    assert outputs["label"].elem_type == onnx.TensorProto.INT64
    assert [d.dim_value for d in outputs["probabilities"].shape.dim][1] == 2
    assert {p.key for p in model.metadata_props} >= {"mlops.task", "mlops.classes", "mlops.onnx_inputs"}


def test_metrics_parity_and_rows(trained: TrainingResult, january: pd.DataFrame) -> None:
    missing_target = int(january["arr_delayed_15"].isna().sum())
    assert missing_target > 0  # January has cancellations: the drop is exercised
    assert trained.rows["dropped_missing_target"] == missing_target
    assert trained.rows["used"] == len(january) - missing_target
    assert trained.rows["train"] + trained.rows["validation"] + trained.rows["test"] == trained.rows["used"]
    for split in ("train", "validation", "test"):
        assert set(trained.metrics[split]) >= {"roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1"}
    assert 0.55 < trained.metrics["test"]["roc_auc"] < 0.95  # real signal, no leakage
    assert trained.parity.passed and trained.parity.value <= 1e-5 and trained.parity.rows == trained.rows["test"]
    assert trained.parity.label_agreement == 1.0
    assert trained.best_iteration is not None and trained.best_iteration <= 60


def test_time_split_keeps_the_future_out_of_training(january: pd.DataFrame) -> None:
    parts = split_frame(january, spec_of(FLIGHTS))
    assert parts["train"]["sched_dep_ts"].max() < parts["validation"]["sched_dep_ts"].min()
    assert parts["validation"]["sched_dep_ts"].max() < parts["test"]["sched_dep_ts"].min()
    assert abs(len(parts["test"]) / sum(map(len, parts.values())) - 0.15) < 0.02


def test_test_frame_and_reference(trained: TrainingResult) -> None:
    assert len(trained.test_frame) == trained.rows["test"]
    assert "dep_delay" in trained.test_frame.columns  # all snapshot columns: the gate can slice on any
    reference = trained.reference
    assert len(reference) == 500
    assert {contracts.PREDICTION_COLUMN, "probability_0", "probability_1", "arr_delayed_15"} <= set(reference.columns)
    assert set(reference[contracts.PREDICTION_COLUMN].unique()) <= {0, 1}
    assert "dep_delay" in reference.columns  # columns the model does not read: drift watches them too
    assert set(trained.importance) == set(trained.spec.features)
    assert sum(trained.importance.values()) == pytest.approx(1.0)


def test_same_snapshot_spec_and_seed_give_identical_metrics_and_onnx(
    trained: TrainingResult, january: pd.DataFrame
) -> None:
    again = train_model(january.copy(), spec_of(FLIGHTS))
    assert again.metrics == trained.metrics
    assert again.onnx_sha256 == trained.onnx_sha256
    other_seed = train_model(january, spec_of(FLIGHTS, split={"method": "random"}, seed=4))
    assert other_seed.onnx_sha256 != trained.onnx_sha256


def test_regression_on_bike_sharing(bikes: pd.DataFrame) -> None:
    result = train_model(bikes, spec_of(BIKE))
    model = onnx.load_from_string(result.onnx_bytes)
    (output,) = model.graph.output
    assert output.name == "variable" and [d.dim_value for d in output.type.tensor_type.shape.dim][1] == 1
    assert result.parity.measure == "max_rel_diff" and result.parity.value <= 1e-5
    assert set(result.metrics["test"]) == {"rmse", "mae", "r2", "median_ae"}
    assert result.metrics["validation"]["r2"] > 0.7
    assert result.classes == () and contracts.PREDICTION_COLUMN in result.reference.columns


def test_multiclass_with_string_classes(january: pd.DataFrame) -> None:
    spec = TrainingSpec.from_mapping(
        {
            "task": "multiclass",
            "target": "origin",
            "features": {"numeric": ["distance", "hour"], "categorical": ["carrier"]},
            "estimator": {"params": {"n_estimators": 30}},
            "split": {"method": "random"},
        }
    )
    result = train_model(january, spec)
    assert result.classes == ("EWR", "JFK", "LGA")
    outputs = OnnxModel(result.onnx_bytes, list(result.onnx_inputs)).run(january.head(20))
    assert outputs["label"].dtype.kind in "OU" and set(outputs["label"]) <= set(result.classes)
    assert outputs["probabilities"].shape == (20, 3) and result.parity.passed
    assert {"log_loss", "accuracy", "f1_macro", "roc_auc_ovr"} <= set(result.metrics["test"])


def test_sklearn_estimator_with_class_weights(january: pd.DataFrame) -> None:
    spec = spec_of(
        FLIGHTS,
        estimator={"type": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 300}},
        early_stopping_rounds=None,
        class_weight="balanced",
    )
    result = train_model(january.assign(distance=january["distance"].where(january.index % 7 > 0)), spec)
    assert result.parity.passed and result.best_iteration is None
    # Balanced weights move the decision towards the minority class: far more "late" predictions.
    assert np.mean(result.test_predictions.labels == 1) > 0.2


def test_search_tries_candidates_on_validation_and_keeps_the_best(january: pd.DataFrame) -> None:
    spec = spec_of(FLIGHTS, search={"trials": 3, "metric": "log_loss", "space": {"num_leaves": [4, 8, 16, 32]}})
    result = train_model(january, spec)
    assert len(result.trials) == 4 and result.trials[0].params == {}  # the hand-set parameters, then 3 of the grid
    scores = [t.metrics["log_loss"] for t in result.trials]
    best = result.trials[int(np.argmin(scores))]
    assert result.params["num_leaves"] == spec.estimator_params(best.params)["num_leaves"]
    assert result.metrics["validation"]["log_loss"] == pytest.approx(min(scores))


# -- parity can fail ----------------------------------------------------------------------------------
def test_parity_failure_names_the_figures(trained: TrainingResult) -> None:
    native = trained.test_predictions  # the selection model's (the judged one; the refit is registered)
    judged = trained.fit.selection_onnx_bytes or trained.onnx_bytes
    shifted = Predictions(None, native.probabilities + np.array([1e-3, -1e-3]), native.labels)
    with pytest.raises(ParityError, match=r"max_abs_probability_diff = 0.001 > tolerance 1e-05 over \d+ rows"):
        check_parity(judged, list(trained.onnx_inputs), trained.spec, trained.test_frame, shifted, trained.classes)


def test_training_fails_when_parity_is_out_of_tolerance(january: pd.DataFrame) -> None:
    with pytest.raises(ParityError, match="ONNX parity failed on the test split"):
        train_model(january, spec_of(FLIGHTS, parity_tolerance=1e-12))


# -- bad input ------------------------------------------------------------------------------------------
def test_target_column_missing(january: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"target column 'arr_delayed_15' is not in the data"):
        train_model(january.drop(columns=["arr_delayed_15"]), spec_of(FLIGHTS))


def test_single_class_in_the_target(january: pd.DataFrame) -> None:
    late = january[january["arr_delayed_15"] == 1]
    with pytest.raises(DataError, match=r"single class \(1\).*needs at least two classes"):
        train_model(late, spec_of(FLIGHTS))


def test_a_feature_missing(january: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"missing feature column\(s\) \['dest'\]"):
        train_model(january.drop(columns=["dest"]), spec_of(FLIGHTS))


def test_all_nan_feature(january: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"Numeric feature .distance. has no value .*\(all missing\)"):
        train_model(january.assign(distance=np.nan), spec_of(FLIGHTS))
    with pytest.raises(DataError, match="Categorical feature 'carrier' has no value"):
        train_model(january.assign(carrier=None), spec_of(FLIGHTS))


def test_non_numeric_numeric_feature(january: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="'distance' must be numeric"):
        train_model(january.assign(distance="far"), spec_of(FLIGHTS))


def test_categorical_with_100k_distinct_values_is_bounded() -> None:
    rng = np.random.default_rng(0)
    n = 120_000
    # A Zipf-like id column: 100k distinct values, a few hundred of them frequent.
    frequent = rng.integers(0, 300, n // 6)
    values = np.concatenate([frequent, 300 + rng.permutation(n - len(frequent))])[:n]
    frame = pd.DataFrame(
        {
            "account": pd.Series(values).map(lambda v: f"acct-{v:06d}"),
            "amount": rng.gamma(2.0, 50.0, n),
            "t": np.arange(n),
        }
    )
    assert frame["account"].nunique() > 100_000
    frame["y"] = (frame["amount"] + rng.normal(0, 60, n) > 110).astype(int)
    spec = TrainingSpec.from_mapping(
        {
            "task": "binary",
            "target": "y",
            "features": {"numeric": ["amount"], "categorical": ["account"]},
            "estimator": {"params": {"n_estimators": 20}},
            "categories": {"max": 32, "min_frequency": 20},
        }
    )
    tracemalloc.start()
    try:
        result = train_model(frame, spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    report = result.categories["account"]
    assert report.distinct > 60_000 and len(report.kept) == 32  # the train split holds 70% of the rows
    # A one-hot over every value would be 120k x 100k floats (tens of GB); bounded it is a few MB.
    assert peak < 400 * 2**20
    assert any("kept 32 of" in w for w in result.warnings)
    ids_only = frame.assign(account=[f"id-{i}" for i in range(n)])
    with pytest.raises(DataError, match=r"'account' has .* none appears at least 20 times.*identifier"):
        train_model(ids_only, spec)


def test_feature_equal_to_the_target_is_refused(january: pd.DataFrame) -> None:
    copy = january.assign(late_flag=january["arr_delayed_15"])
    spec = spec_of(FLIGHTS, features={"numeric": ["hour", "late_flag"], "categorical": ["carrier"]})
    with pytest.raises(DataError, match=r"Feature 'late_flag' is equal to the target 'arr_delayed_15'.*leakage"):
        train_model(copy, spec)
    text = january.assign(status=january["arr_delayed_15"].map({1: "late", 0: "on time"}))
    spec = spec_of(FLIGHTS, features={"numeric": ["hour"], "categorical": ["carrier", "status"]})
    with pytest.raises(DataError, match=r"function of feature 'status'.*leakage"):
        train_model(text, spec)


def test_a_post_departure_column_is_refused_as_leakage(january: pd.DataFrame) -> None:
    spec = spec_of(FLIGHTS, features={"numeric": ["hour", "arr_delay"], "categorical": ["carrier"]})
    with pytest.raises(DataError, match=r"Feature 'arr_delay' separates the classes .* perfectly \(AUC 1.0"):
        train_model(january, spec)
    allowed = train_model(
        january,
        spec_of(FLIGHTS, leakage_check=False, features=FLIGHTS["features"] | {"numeric": ["hour", "arr_delay"]}),
    )
    assert allowed.metrics["test"]["roc_auc"] > 0.99  # what leakage looks like when nobody checks


def test_parts_that_sum_to_the_target_are_refused(bikes: pd.DataFrame) -> None:
    spec = spec_of(BIKE, features={"numeric": ["temp", "casual", "registered"]})
    with pytest.raises(DataError, match=r"exact linear combination of feature\(s\) \['casual', 'registered'\]"):
        train_model(bikes, spec)


def test_too_little_data_for_a_split(january: pd.DataFrame) -> None:
    with pytest.raises(DataError, match=r"split has .* row"):
        train_model(january.head(8), spec_of(FLIGHTS))


def test_regression_target_must_be_numeric(bikes: pd.DataFrame) -> None:
    with pytest.raises(DataError, match="target 'cnt' must be numeric"):
        train_model(bikes.assign(cnt="many"), spec_of(BIKE))


def test_estimator_that_cannot_be_exported(bikes: pd.DataFrame) -> None:
    spec = spec_of(BIKE, estimator={"type": "sklearn.kernel_ridge.KernelRidge"})
    with pytest.raises(SpecError, match="cannot be exported to ONNX"):
        train_model(bikes.head(600), spec)


def test_feature_frame_matches_what_onnx_is_fed(january: pd.DataFrame) -> None:
    spec = spec_of(FLIGHTS)
    frame = feature_frame(january.head(5).assign(carrier=[None, "AA", "UA", None, "B6"]), spec)
    assert frame["carrier"].tolist()[0] == "" and frame["distance"].dtype == np.float32


def test_validation_scores_kept_from_the_fit_equal_fresh_predictions(january: pd.DataFrame) -> None:
    from airflow_mlops.core.training.data import prepare, split_rows
    from airflow_mlops.core.training.model import fit_model, predict

    spec = spec_of(FLIGHTS, estimator={"params": {"n_estimators": 200, "learning_rate": 0.3}})
    data = prepare(january, spec)
    splits = split_rows(data, spec)
    x_train, x_val = data.x.iloc[splits.train], data.x.iloc[splits.validation]
    fitted = fit_model(spec, x_train, data.y[splits.train], x_val, data.y[splits.validation], data.classes)
    assert fitted.best_iteration is not None and fitted.best_iteration < 200  # early stopping kicked in
    assert fitted.validation_predictions is not None
    fresh = predict(fitted.pipeline.named_steps["model"], fitted.validation_matrix, spec, data.classes)
    np.testing.assert_allclose(fitted.validation_predictions.probabilities, fresh.probabilities, rtol=0, atol=1e-12)
    assert (fitted.validation_predictions.labels == fresh.labels).all()


_TRAIN_IN_A_FRESH_PROCESS = """
import json, sys
from airflow_mlops.core.training import TrainingSpec, train_model
from tests.support.data import flights
spec = TrainingSpec.from_mapping(json.loads(sys.argv[1]))
result = train_model(flights(months=[1], sample=3000), spec)
print("RESULT " + json.dumps({"sha256": result.onnx_sha256, "metrics": result.metrics}, sort_keys=True))
"""


def test_identical_onnx_across_processes_with_different_hash_seeds() -> None:
    """A retry lands on another worker: string hashing differs per process, the model bytes must not."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    spec = json.dumps({**FLIGHTS, "estimator": {"params": {"n_estimators": 20}}})
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _TRAIN_IN_A_FRESH_PROCESS, spec],
            cwd=repo,
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in ("0", "1")  # these two seeds order skl2onnx's opset set differently
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        results.append(next(line for line in out.splitlines() if line.startswith("RESULT ")))
    assert results[0] == results[1]


def test_export_keeps_double_precision_trees_after_another_converter_registration(bikes: pd.DataFrame) -> None:
    """Other code in the process may register onnxmltools' plain (float32) LightGBM converter."""
    from lightgbm import LGBMRegressor
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_regressor_output_shapes

    update_registered_converter(
        LGBMRegressor, "LightGbmLGBMRegressor", calculate_linear_regressor_output_shapes, convert_lightgbm
    )
    result = train_model(bikes, spec_of(BIKE))
    doubles = [
        node for node in onnx.load_from_string(result.onnx_bytes).graph.node if node.op_type == "TreeEnsembleRegressor"
    ]
    assert doubles and all(any(a.name == "nodes_values_as_tensor" for a in node.attribute) for node in doubles), (
        "the tree ensemble was exported with float32 thresholds"
    )
    assert result.parity.passed and result.parity.value <= 1e-6


def test_a_lightgbm_preprocessor_fitted_on_the_first_rows_is_the_one_fitted_on_all(january: pd.DataFrame) -> None:
    """It learns nothing from the rows, so training fits it on the first ones: same state, same matrix."""
    from airflow_mlops.core.training.data import prepare
    from airflow_mlops.core.training.model import PREPROCESSOR_FIT_ROWS, build_preprocessor, fit_preprocessor

    spec = spec_of(FLIGHTS)
    x = prepare(january, spec).x
    assert len(x) > PREPROCESSOR_FIT_ROWS
    on_all, _ = build_preprocessor(spec, x)
    expected = on_all.fit_transform(x)
    on_first, _ = build_preprocessor(spec, x)
    assert np.array_equal(fit_preprocessor(on_first, spec, x), expected, equal_nan=True)
    for fitted in (on_first, on_all):
        encoder = fitted.named_transformers_["categorical"]
        assert encoder.n_features_in_ == len(spec.categorical_features)
    first, every = (f.named_transformers_["categorical"].categories_ for f in (on_first, on_all))
    assert all(np.array_equal(a, b) for a, b in zip(first, every, strict=True))
    assert list(on_first.get_feature_names_out()) == list(on_all.get_feature_names_out())
