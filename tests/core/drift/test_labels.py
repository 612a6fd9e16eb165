"""Delayed labels: joining ground truth to past predictions by id columns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from airflow_mlops.core.drift.labels import LabelSpec, join_label_files, join_labels
from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.storage import StorageRoot
from tests.support import drift as flights_drift
from tests.support.data import flights

# The shipped target is 1 when the arrival delay is over 15 minutes (arr_delay > 15).
RULE = {"id_columns": flights_drift.IDS, "target": "arr_delayed_15", "source": "arr_delay", "op": ">", "value": "15"}


@pytest.fixture(scope="module")
def april() -> tuple[pd.DataFrame, pd.DataFrame]:
    model, _ = flights_drift.model_and_reference()
    return flights_drift.serving_log(model, 4, sample=3000), flights_drift.ground_truth(4)


def test_arrival_delay_becomes_the_label_of_past_predictions(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    predictions, truth = april
    labelled, result = join_labels(predictions, truth, LabelSpec.from_mapping(RULE))
    shipped = flights([4])[[*flights_drift.IDS, "arr_delayed_15"]].rename(columns={"arr_delayed_15": "shipped"})
    check = labelled.merge(shipped, on=flights_drift.IDS)
    assert len(check) == len(labelled) > 2500
    assert (check["arr_delayed_15"].astype(int) == check["shipped"].astype(int)).all()
    cancelled = int(predictions.merge(truth, on=flights_drift.IDS)["arr_delay"].isna().sum())
    assert result.rows_pending == cancelled > 0  # cancelled or diverted flights never get a label
    assert result.rows_labelled + result.rows_pending == result.rows_predicted == 3000
    assert result.labels_unmatched == int(truth["arr_delay"].notna().sum()) - result.rows_labelled
    assert result.label_mean == pytest.approx(labelled["arr_delayed_15"].astype(float).mean())
    assert result.rule == "arr_delayed_15 = arr_delay > 15.0"
    assert list(labelled.columns) == [*predictions.columns, "arr_delayed_15"]


def test_labels_not_known_yet_are_pending(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    predictions, truth = april
    first_half = truth[truth["sched_dep_ts"] < "2013-04-16"]
    _, early = join_labels(predictions, first_half, LabelSpec.from_mapping(RULE))
    _, later = join_labels(predictions, truth, LabelSpec.from_mapping(RULE))
    assert early.rows_labelled < later.rows_labelled and early.rows_pending > later.rows_pending


def test_an_existing_target_column_is_replaced(april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    predictions, truth = april
    labelled, result = join_labels(predictions.assign(arr_delayed_15=-1), truth, LabelSpec.from_mapping(RULE))
    assert result.replaced_target and set(labelled["arr_delayed_15"].unique()) <= {0, 1}


def test_label_column_taken_as_it_is() -> None:
    predictions = pd.DataFrame({"id": [1, 2, 3], "prediction": [0, 1, 1]})
    truth = pd.DataFrame({"id": [3, 2, 9], "y": [1, None, 0]})
    labelled, result = join_labels(predictions, truth, LabelSpec.from_mapping({"id_columns": "id", "target": "y"}))
    assert labelled.to_dict("records") == [{"id": 3, "prediction": 1, "y": 1.0}]
    assert (result.rows_labelled, result.rows_pending, result.labels_unmatched) == (1, 2, 1)


def test_id_types_are_aligned() -> None:
    predictions = pd.DataFrame({"id": pd.Series([1, 2], dtype="int64"), "prediction": [0, 1]})
    truth = pd.DataFrame({"id": pd.Series([1, 2], dtype="int32"), "delay": [30.0, 0.0]})
    spec = LabelSpec.from_mapping({"id_columns": ["id"], "target": "late", "source": "delay", "op": ">=", "value": 15})
    labelled, _ = join_labels(predictions, truth, spec)
    assert labelled["late"].tolist() == [1, 0]


@pytest.mark.parametrize(
    ("predictions", "truth", "message"),
    [
        ({"id": [1, 1], "p": [0, 1]}, {"id": [1], "y": [1]}, "predictions has 2 rows sharing an id"),
        ({"id": [1, 2], "p": [0, 1]}, {"id": [1, 1], "y": [1, 0]}, "ground truth has 2 rows sharing an id"),
        ({"key": [1], "p": [0]}, {"id": [1], "y": [1]}, "predictions lack the column\\(s\\) \\['id'\\]"),
        ({"id": [1], "p": [0]}, {"id": [1], "z": [1]}, "ground truth lack the column\\(s\\) \\['y'\\]"),
        ({"id": [1], "p": [0]}, {"id": ["x"], "y": [1]}, "id column 'id' is int64 in the predictions but object"),
    ],
    ids=["duplicate-prediction", "duplicate-label", "missing-id", "missing-source", "id-types"],
)
def test_bad_joins_are_refused(predictions: dict[str, Any], truth: dict[str, Any], message: str) -> None:
    with pytest.raises(DataError, match=message):
        join_labels(
            pd.DataFrame(predictions),
            pd.DataFrame(truth),
            LabelSpec.from_mapping({"id_columns": ["id"], "target": "y"}),
        )


def test_numeric_rule_on_text_is_refused() -> None:
    spec = LabelSpec.from_mapping({"id_columns": ["id"], "target": "y", "source": "s", "op": ">", "value": 1})
    with pytest.raises(DataError, match=r"The label source 's' is object; y = s > 1.0 needs numbers"):
        join_labels(pd.DataFrame({"id": [1]}), pd.DataFrame({"id": [1], "s": ["late"]}), spec)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"target": "y"}, "'id_columns' must be a non-empty list"),
        ({"id_columns": ["id"]}, "'target' must name the label column"),
        ({"id_columns": ["id"], "target": "y", "op": "~"}, "'op' must be one of"),
        ({"id_columns": ["id"], "target": "y", "op": ">"}, "needs a 'value'"),
    ],
    ids=["ids", "target", "op", "value"],
)
def test_bad_label_spec_is_refused(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        LabelSpec.from_mapping(raw)


def test_files_are_joined_and_written_atomically(tmp_path: Path, april: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    predictions, _truth = april
    root = StorageRoot(str(tmp_path / "storage"))
    predictions_uri = root.layout("flights", "serving_log", "2013-04-01", "sample.parquet")
    root.write_bytes(predictions_uri, predictions.to_parquet(index=False))
    truth_path = tmp_path / "landed.parquet"  # ground truth from outside the storage root
    flights([4]).to_parquet(truth_path, index=False)
    output = root.layout("flights", "labels", "2013-04-01", "labelled.parquet")
    result = join_label_files(root, predictions_uri, str(truth_path), LabelSpec.from_mapping(RULE), output)
    written = pd.read_parquet(output)
    assert len(written) == result.rows_labelled and result.uri == output and root.sha256(output) == result.sha256
    assert written["arr_delayed_15"].isna().sum() == 0
    with pytest.raises(DataError, match=r"The ground truth .* lacks the column\(s\) \['arr_delay'\]"):
        join_label_files(root, predictions_uri, predictions_uri, LabelSpec.from_mapping(RULE), output)
    assert pd.read_parquet(output).equals(written)  # the failed rerun left the earlier batch intact
