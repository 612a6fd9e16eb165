"""Bad inputs of scoring, explanation and drift, called the way a DAG calls the operators.

Each input is either refused with an error that names what was wrong and what was expected, leaving the
storage root exactly as it was (files and folders, temporaries included), or accepted with what it
changed counted in the receipt (and, for what a user must look at, a warning in the receipt and the log).
docs/reliability.md says which and why.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from airflow.sdk.exceptions import AirflowSkipException

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import IntegrityError, SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.errors import EmptySourceError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import parquet_bytes
from airflow_mlops.exceptions import DataValidationFailed, MlopsVerdictFailure, ModelIntegrityFailure
from tests.reliability.test_bad_inputs import FLIGHTS_SPEC, context
from tests.support import models

SERVED = "reliability_lightgbm"  # handles NaN and infinities, knows its vocabulary
NO_NAN = "reliability_no_nan"  # cannot score a missing value: its refusals come from the model
DELETED = "reliability_deleted"  # its ONNX file is deleted after registration


@dataclass
class Deployment:
    home: Path
    root: StorageRoot
    batch: str  # a good scoring batch, outside the storage root
    reference: str  # a training snapshot inside the root (drift reference)
    current: str  # a serving log inside the root (drift current)

    def entries(self) -> list[str]:
        """Every file and folder under the storage root, temporaries and hidden ones included."""
        base = Path(self.root.uri)
        return sorted(f"{p.relative_to(base)}{'/' if p.is_dir() else ''}" for p in base.rglob("*"))

    def write(self, name: str, frame: pd.DataFrame) -> str:
        """``frame`` as a Parquet batch outside the storage root."""
        path = self.home / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        return str(path)

    def frame(self) -> pd.DataFrame:
        return pd.read_parquet(self.batch)


def _with_vocabulary(trained: models.TrainedModel) -> models.TrainedModel:
    """The model with the training spec's ``vocabulary``, as training writes it (the kept categories)."""
    encoder = trained.native.named_steps["features"].named_transformers_["cat"]
    vocabulary = {
        column: [str(v) for v in values]
        for column, values in zip(models.FLIGHT_CATEGORICAL, encoder.categories_, strict=True)
    }
    return dataclasses.replace(trained, spec={**trained.spec, "vocabulary": vocabulary})


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    from airflow_mlops.hooks.mlflow import MlflowHook
    from tests.core.registry.support import fresh_store

    home = tmp_path_factory.mktemp("scoring-catalogue")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(home / "storage"))
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", fresh_store(home / "mlflow.db"))
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(home / "mlartifacts"))
        root = StorageRoot(str(home / "storage"))
        reference = root.layout("flights", contracts.KIND_SNAPSHOT, "2013-01", "data.parquet")
        root.write_bytes(reference, parquet_bytes(models.flights_frame((1,), 3000)))
        february = models.flights_frame((2,), 1500)
        current = root.layout("flights", contracts.KIND_SERVING_LOG, "2013-02", "sample.parquet")
        root.write_bytes(current, parquet_bytes(february))
        batch = home / "batch.parquet"
        february.to_parquet(batch, index=False)
        hook = MlflowHook()
        client, experiment = hook.get_conn(), hook.ensure_experiment("flights")
        served = _with_vocabulary(models.flights_classifier("lightgbm"))
        models.register(client, served, SERVED, experiment_id=experiment)
        models.register(client, models.flights_classifier("sklearn", impute=False), NO_NAN, experiment_id=experiment)
        deleted = models.register(client, served, DELETED, experiment_id=experiment)
        for onnx in (home / "mlartifacts").rglob(Path(contracts.ARTIFACT_ONNX).name):
            if deleted.run_id in str(onnx):
                onnx.unlink()
        yield Deployment(home, root, str(batch), reference, current)


def score(d: Deployment, **changes: Any) -> dict[str, Any]:
    from airflow_mlops.operators.scoring import ScoreBatchOperator

    arguments: dict[str, Any] = {
        "input_uri": d.batch, "model_name": SERVED, "pipeline": "flights", "partition": "2013-02",
        "storage_root": d.root.uri, "passthrough_columns": "flight",
    }  # fmt: skip
    result: dict[str, Any] = ScoreBatchOperator(task_id="score", **{**arguments, **changes}).execute(context())
    return result


def explain(d: Deployment, **changes: Any) -> dict[str, Any]:
    from airflow_mlops.operators.explain import ExplainPredictionOperator

    arguments: dict[str, Any] = {
        "model_name": SERVED, "pipeline": "flights", "input_uri": d.batch, "row_index": "0",
        "partition": "2013-02", "storage_root": d.root.uri,
    }  # fmt: skip
    result: dict[str, Any] = ExplainPredictionOperator(task_id="explain", **{**arguments, **changes}).execute(context())
    return result


def drift(d: Deployment, **changes: Any) -> dict[str, Any]:
    from airflow_mlops.operators.drift import CheckDriftOperator

    arguments: dict[str, Any] = {
        "pipeline": "flights", "current_uri": d.current, "reference_uri": d.reference, "partition": "2013-02",
        "storage_root": d.root.uri, "log_to_mlflow": False,
    }  # fmt: skip
    result: dict[str, Any] = CheckDriftOperator(task_id="drift", **{**arguments, **changes}).execute(context())
    return result


def _edited(d: Deployment, name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> str:
    return d.write(name, edit(d.frame()))


def _set(column: str, rows: dict[int, Any]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        if any(isinstance(v, str) for v in rows.values()):
            frame[column] = frame[column].astype(str)  # numbers stored as text, as a CSV export gives them
        for row, value in rows.items():
            frame.loc[row, column] = value
        return frame

    return edit


# -- 6. NaN, +inf, -inf and float32 overflow in numeric features --------------------------------------------
NON_FINITE = {0: np.nan, 1: np.inf, 2: -np.inf, 3: 1e40, 4: -1e40, 5: np.inf}


def test_non_finite_numbers_are_scored_and_counted_per_column_with_a_warning(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    batch = _edited(deployment, "non-finite", _set("distance", NON_FINITE))
    with caplog.at_level(logging.WARNING, logger="airflow_mlops.core.scoring"):
        receipt = score(deployment, input_uri=batch, partition="non-finite")
    checks = receipt["input_checks"]
    assert checks["invalid_values_policy"] == "count"
    assert checks["non_finite_values"] == {
        "distance": {"positive_infinity": 2, "negative_infinity": 1, "float32_overflow": 2}
    }
    assert checks["missing_values"]["distance"] == 1 + int(deployment.frame()["distance"].isna().sum())
    assert receipt["rows_out"] == receipt["rows_in"] == len(deployment.frame())
    warning = next(w for w in receipt["warnings"] if "infinite" in w)
    assert "'distance'" in warning and "float32" in warning
    assert any("'distance'" in r.getMessage() and "infinite" in r.getMessage() for r in caplog.records)


def test_refuse_fails_the_batch_naming_the_columns_and_counts_and_writes_nothing(deployment: Deployment) -> None:
    batch = _edited(deployment, "non-finite-refused", _set("distance", NON_FINITE))
    before = deployment.entries()
    with pytest.raises(DataValidationFailed) as raised:
        score(deployment, input_uri=batch, partition="refused-non-finite", invalid_values="refuse", shadow="true")
    message = str(raised.value)
    assert "'distance': {'positive_infinity': 2, 'negative_infinity': 1, 'float32_overflow': 2}" in message
    assert "expected finite numbers" in message and "'refuse'" in message
    assert deployment.entries() == before


def test_the_invalid_values_policy_is_checked_where_it_is_declared(deployment: Deployment) -> None:
    from airflow_mlops.core.pipeline.file import PipelineFile

    with pytest.raises(SpecError, match=r"'invalid_values' .* 'refuse' or 'count'. Got 'drop'"):
        score(deployment, invalid_values="drop")
    raw = yaml.safe_load(FLIGHTS_SPEC.read_text())
    project = FLIGHTS_SPEC.parents[2]
    declared = PipelineFile.from_mapping(
        "flights", {**raw, "serving": {**raw["serving"], "invalid_values": "refuse"}}, path=FLIGHTS_SPEC,
        project=project,
    )  # fmt: skip
    assert (declared.invalid_values, declared.on_empty) == ("refuse", "fail")
    with pytest.raises(SpecError, match=r"serving.invalid_values must be 'refuse' or 'count'. Got 'ignore'"):
        PipelineFile.from_mapping(
            "flights", {**raw, "serving": {**raw["serving"], "invalid_values": "ignore"}}, path=FLIGHTS_SPEC,
            project=project,
        )  # fmt: skip


# -- 7. integers and unseen values in categorical columns --------------------------------------------------
def test_unseen_categories_are_counted_and_an_integer_column_is_said_to_be_cast(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        frame["carrier"] = np.arange(len(frame)) % 7  # integers: never in the vocabulary of carrier codes
        frame.loc[:2, "origin"] = "XXX"
        return frame

    with caplog.at_level(logging.WARNING, logger="airflow_mlops.core.scoring"):
        receipt = score(deployment, input_uri=_edited(deployment, "integer-category", edit), partition="categories")
    checks = receipt["input_checks"]
    assert checks["cast_to_string"] == {"carrier": "int64"}
    vocabulary = _with_vocabulary(models.flights_classifier("lightgbm")).spec["vocabulary"]
    february = deployment.frame()
    already = {c: int((february[c].notna() & ~february[c].isin(vocabulary[c])).sum()) for c in ("origin", "dest")}
    expected = {"carrier": len(february), "origin": 3 + already["origin"], "dest": already["dest"]}
    assert checks["unseen_categories"] == {c: n for c, n in expected.items() if n}
    assert any("'carrier' is int64" in w for w in receipt["warnings"])
    assert any("unseen category" in w and f"'origin': {expected['origin']}" in w for w in receipt["warnings"])
    assert any("'carrier' is int64" in r.getMessage() for r in caplog.records)


# -- 8. an empty batch: ingestion's on_empty ----------------------------------------------------------------
def test_an_empty_batch_fails_by_default_and_writes_nothing(deployment: Deployment) -> None:
    empty = deployment.write("empty", deployment.frame().iloc[:0])
    before = deployment.entries()
    with pytest.raises(DataValidationFailed, match=r"empty\.parquet.* has no rows.*on_empty='skip'") as raised:
        score(deployment, input_uri=empty, partition="empty")
    assert isinstance(raised.value.__cause__, EmptySourceError)
    assert deployment.entries() == before


def test_an_empty_batch_with_on_empty_skip_skips_with_a_receipt_and_writes_nothing(deployment: Deployment) -> None:
    empty = deployment.write("empty-skipped", deployment.frame().iloc[:0])
    before = deployment.entries()
    pushed: dict[str, Any] = {}
    ctx = context()
    ctx["ti"].xcom_push = lambda key, value: pushed.update({key: value})
    from airflow_mlops.operators.scoring import ScoreBatchOperator

    operator = ScoreBatchOperator(
        task_id="score", input_uri=empty, model_name=SERVED, pipeline="flights", partition="empty",
        storage_root=deployment.root.uri, on_empty="skip",
    )  # fmt: skip
    with pytest.raises(AirflowSkipException, match="has no rows"):
        operator.execute(ctx)
    receipt = pushed["receipt"]
    assert receipt["on_empty"] == "skip" and receipt["output_uri"] is None and receipt["rows_in"] == 0
    assert "nothing was written" in receipt["skipped"]
    assert deployment.entries() == before


# -- 10. no refusal leaves anything behind (predictions, serving log, shadow report, folders) --------------
REFUSALS: dict[str, tuple[Callable[[Deployment], Any], str]] = {
    "text-in-a-numeric-column": (
        lambda d: score(d, input_uri=_edited(d, "text", _set("distance", {3: "far"})), partition="refused-text"),
        "'far'",
    ),
    "the-model-cannot-score-a-missing-value": (
        lambda d: score(
            d, model_name=NO_NAN, input_uri=_edited(d, "nan", _set("hour", {7: np.nan})), partition="refused-nan"
        ),
        "['hour']",
    ),
    "text-in-a-numeric-column-mid-stream": (
        lambda d: score(
            d,
            input_uri=_edited(d, "text-late", _set("distance", {1300: "far"})),
            partition="refused-text-late",
            chunk_rows="200",
            shadow="true",
        ),
        "'far'",
    ),
    "an-infinity-refused-mid-stream": (
        lambda d: score(
            d,
            input_uri=_edited(d, "inf-late", _set("minute", {1300: np.inf})),
            partition="refused-inf-late",
            chunk_rows="200",
            shadow="true",
            invalid_values="refuse",
        ),
        "'minute': {'positive_infinity': 1",
    ),
    "not-parquet": (
        lambda d: score(d, input_uri=str(_not_parquet(d)), partition="refused-not-parquet"),
        "not-parquet.csv",
    ),
    "files-disagree-on-a-type": (
        lambda d: score(d, input_uri=str(_two_files(d)), partition="refused-types"),
        "distance",
    ),
}


def _not_parquet(d: Deployment) -> Path:
    path = d.home / "not-parquet.csv"
    d.frame().to_csv(path, index=False)
    return path


def _two_files(d: Deployment) -> Path:
    folder = d.home / "two-files"
    folder.mkdir(exist_ok=True)
    frame = d.frame()
    frame.iloc[:700].to_parquet(folder / "a.parquet", index=False)
    frame.iloc[700:].assign(distance=lambda f: f["distance"].astype(str)).to_parquet(folder / "b.parquet", index=False)
    return folder


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_a_refused_batch_leaves_no_file_and_no_folder_behind(deployment: Deployment, case: str) -> None:
    run, names = REFUSALS[case]
    before = deployment.entries()
    with pytest.raises(DataValidationFailed) as raised:
        run(deployment)
    assert names in str(raised.value), str(raised.value)
    assert deployment.entries() == before


# -- new cases: scoring -------------------------------------------------------------------------------------
def test_feature_columns_in_another_order_score_the_same(deployment: Deployment) -> None:
    frame = deployment.frame()
    shuffled = deployment.write("reordered", frame[list(reversed(frame.columns))])
    first = score(deployment, partition="order-a")
    second = score(deployment, input_uri=shuffled, partition="order-b")
    columns = ["flight", "prediction", "probability_0", "probability_1"]
    assert pq.read_table(first["output_uri"], columns=columns).equals(
        pq.read_table(second["output_uri"], columns=columns)
    )


def test_duplicated_ids_in_passthrough_columns_are_kept_row_for_row(deployment: Deployment) -> None:
    frame = deployment.frame().assign(flight=7)  # every row has the same id
    receipt = score(deployment, input_uri=deployment.write("same-id", frame), partition="duplicated-ids")
    out = pq.read_table(receipt["output_uri"]).to_pandas()
    assert receipt["rows_out"] == len(frame) and out["flight"].tolist() == [7] * len(frame)


def test_a_batch_that_is_not_parquet_is_refused_by_name(deployment: Deployment) -> None:
    before = deployment.entries()
    with pytest.raises(DataValidationFailed, match=r"not-parquet\.csv.* is not a readable Parquet file"):
        score(deployment, input_uri=str(_not_parquet(deployment)), partition="not-parquet")
    assert deployment.entries() == before


def test_a_model_whose_onnx_file_was_deleted_after_registration_is_refused_without_retry(
    deployment: Deployment,
) -> None:
    before = deployment.entries()
    with pytest.raises(ModelIntegrityFailure, match=r"onnx/model\.onnx.* deleted after registration") as raised:
        score(deployment, model_name=DELETED, partition="deleted")
    assert isinstance(raised.value.__cause__, IntegrityError)
    assert deployment.entries() == before


def test_explain_top_k_of_minus_one_through_a_template_string_is_refused(deployment: Deployment) -> None:
    before = deployment.entries()
    with pytest.raises(SpecError, match=r"'explain_top_k' parameter must be an integer >= 0 .* Got '-1'"):
        score(deployment, explain_top_k="-1", partition="top-k")
    # Found only once the model is loaded: the operator turns it into a failure without retries.
    with pytest.raises(MlopsVerdictFailure, match=r"'explain_top_k' is 11 but model .* has only 10 features") as raised:
        score(deployment, explain_top_k="11", partition="top-k")
    assert isinstance(raised.value.__cause__, SpecError)
    assert deployment.entries() == before


def test_a_glob_that_matches_nothing_is_refused_by_name(deployment: Deployment) -> None:
    before = deployment.entries()
    with pytest.raises(SourceNotFoundError, match=r"no-such-month-\*\.parquet"):
        score(deployment, input_uri=str(deployment.home / "no-such-month-*.parquet"), partition="glob")
    assert deployment.entries() == before


# -- new cases: explanations --------------------------------------------------------------------------------
def test_explaining_row_minus_one_through_a_template_string_is_refused(deployment: Deployment) -> None:
    before = deployment.entries()
    with pytest.raises(MlopsVerdictFailure, match=r"'row_index' -1 is out of range: .* has 1\d{3} rows"):
        explain(deployment, row_index="-1")
    assert deployment.entries() == before


def test_explaining_a_row_without_a_feature_is_refused_by_name(deployment: Deployment) -> None:
    row = deployment.frame().drop(columns=["dest"]).iloc[0].to_dict()
    before = deployment.entries()
    with pytest.raises(DataValidationFailed, match=r"lacks feature column\(s\) \['dest'\]"):
        explain(deployment, input_uri=None, row=row)
    assert deployment.entries() == before


# -- new cases: drift ---------------------------------------------------------------------------------------
def test_drift_against_a_reference_with_zero_rows_is_refused_by_name(deployment: Deployment) -> None:
    """Refused before anything is written, without a retry: the same reference fails the same way."""
    empty = deployment.root.layout("flights", contracts.KIND_SNAPSHOT, "zero-rows", "data.parquet")
    deployment.root.write_bytes(empty, parquet_bytes(models.flights_frame((1,), 300).iloc[:0]))
    before = deployment.entries()
    with pytest.raises(
        DataValidationFailed, match=r"zero-rows/data\.parquet\) has no rows: there is nothing to compare"
    ):
        drift(deployment, reference_uri=empty, partition="zero-row-reference")
    assert deployment.entries() == before


def test_drift_on_a_serving_log_with_zero_rows_says_there_is_not_enough_data(deployment: Deployment) -> None:
    current = deployment.root.layout("flights", contracts.KIND_SERVING_LOG, "zero-rows", "sample.parquet")
    deployment.root.write_bytes(current, parquet_bytes(deployment.frame().iloc[:0]))
    receipt = drift(deployment, current_uri=current, partition="zero-row-current")
    assert (receipt["verdict"], receipt["retrain"], receipt["rows"]["current"]) == ("insufficient_data", False, 0)
    assert any("0 rows" in finding for finding in receipt["findings"])


def test_drift_on_a_serving_log_with_an_extra_column_reports_schema_skew_and_still_compares(
    deployment: Deployment,
) -> None:
    current = deployment.root.layout("flights", contracts.KIND_SERVING_LOG, "extra", "sample.parquet")
    deployment.root.write_bytes(current, parquet_bytes(deployment.frame().assign(runway="09L")))
    receipt = drift(deployment, current_uri=current, partition="extra-column")
    assert receipt["verdict"] == "schema_skew" and receipt["schema_skew"]["missing_in_reference"] == ["runway"]
    assert receipt["drift_share"] is not None and "runway" not in receipt["scores"] and "distance" in receipt["scores"]
    with pytest.raises(DataValidationFailed, match="runway"):
        drift(deployment, current_uri=current, partition="extra-column", fail_on_schema_skew=True)
