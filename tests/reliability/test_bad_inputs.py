"""One catalogue of bad inputs across ingest, validate, train, gate, score and drift.

Every case runs the stage's operator against one small real deployment (flights data, an embedded
MLflow store with a registered champion, a local storage root) and asserts three things: the error
class, that the message names the offending item, and that the storage root holds exactly the same
files (temporaries included) before and after.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest
import yaml
from airflow.sdk.exceptions import AirflowFailException

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, IntegrityError, SourceNotFoundError, SpecError
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import parquet_bytes
from airflow_mlops.exceptions import DataValidationFailed
from tests.support import models
from tests.support.data import flights

REPO = Path(__file__).resolve().parents[2]
FLIGHTS_SPEC = REPO / "include" / "pipelines" / "flights_delay.yaml"
MODEL = "catalogue_flights"
START = pendulum.datetime(2013, 2, 1, tz="UTC")


@dataclass
class World:
    home: Path
    root: StorageRoot
    landing: Path
    snapshot: str
    snapshot_sha256: str
    current: str
    run_id: str

    def files(self) -> list[str]:
        """Every file under the storage root, temporaries and hidden files included."""
        base = Path(self.root.uri)
        return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


class TI:
    dag_id = "catalogue"
    task_id = "task"
    run_id = "manual__2013-02-01T00:00:00+00:00"
    map_index = -1
    try_number = 1

    def xcom_push(self, key: str, value: Any) -> None:
        pass


def context() -> dict[str, Any]:
    from airflow.sdk.execution_time.context import OutletEventAccessors

    ti = TI()
    return {
        "ti": ti, "task_instance": ti, "run_id": ti.run_id, "outlet_events": OutletEventAccessors(),
        "data_interval_start": START, "data_interval_end": START.add(months=1), "logical_date": START,
        "ds": "2013-02-01", "ds_nodash": "20130201",
        "dag_run": SimpleNamespace(run_after=START), "dag": SimpleNamespace(dag_id=ti.dag_id, fileloc=__file__),
    }  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from airflow_mlops.hooks.mlflow import MlflowHook
    from tests.core.registry.support import fresh_store

    home = tmp_path_factory.mktemp("catalogue")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(home / "storage"))
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", fresh_store(home / "mlflow.db"))
        patch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(home / "mlartifacts"))
        patch.setenv("AIRFLOW_CONN_CATALOGUE_SQL", f"sqlite:///{home / 'src.db'}")
        root = StorageRoot(str(home / "storage"))
        frame = flights(months=[1], sample=3000)
        snapshot = root.layout("flights", contracts.KIND_SNAPSHOT, "2013-01", "data.parquet")
        sha = root.write_bytes(snapshot, parquet_bytes(frame))
        current = root.layout("flights", contracts.KIND_SERVING_LOG, "2013-02", "sample.parquet")
        root.write_bytes(current, parquet_bytes(models.flights_frame((2,), 1500)))
        landing = home / "landing"
        landing.mkdir()
        frame.to_parquet(landing / "flights_2013-01.parquet", index=False)
        (landing / "flights_2013-02.parquet").write_bytes(b"PAR1 this is not parquet PAR1")
        hook = MlflowHook()
        registered = models.register(
            hook.get_conn(),
            models.flights_classifier("sklearn"),
            MODEL,
            experiment_id=hook.ensure_experiment("flights"),
        )
        yield World(home, root, landing, snapshot, sha, current, registered.run_id)


# -- the stages, each with the arguments of a run that would succeed --------------------------------------
def ingest(w: World, **changes: Any) -> None:
    from airflow_mlops.operators.ingestion import IngestDatasetOperator

    arguments: dict[str, Any] = {
        "pipeline": "flights", "source": "local", "path": str(w.landing), "pattern": "flights_2013-01.parquet",
        "storage_root": w.root.uri, "sql_conn_id": "catalogue_sql",
    }  # fmt: skip
    IngestDatasetOperator(task_id="ingest", **{**arguments, **changes}).execute(context())


def ingest_sql(w: World, **changes: Any) -> None:
    ingest(w, source="sql", path=None, pattern=None, **changes)


def validate(w: World, **changes: Any) -> None:
    from airflow_mlops.operators.validation import ValidateDatasetOperator

    arguments: dict[str, Any] = {
        "snapshot_uri": w.snapshot, "pipeline": "flights", "partition": "2013-02", "reference_uri": w.snapshot,
        "storage_root": w.root.uri,
    }  # fmt: skip
    ValidateDatasetOperator(task_id="validate", **{**arguments, **changes}).execute(context())


def train_spec(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load(FLIGHTS_SPEC.read_text())["training"]
    spec["estimator"]["params"].update(n_estimators=20)
    spec.update(changes)
    return dict(spec)


def train(w: World, **changes: Any) -> None:
    from airflow_mlops.operators.training import TrainModelOperator

    arguments: dict[str, Any] = {
        "pipeline": "flights", "snapshot_uri": w.snapshot, "snapshot_sha256": w.snapshot_sha256, "spec": train_spec(),
        "partition": "2013-02", "storage_root": w.root.uri,
    }  # fmt: skip
    TrainModelOperator(task_id="train", **{**arguments, **changes}).execute(context())


def gate(w: World, **changes: Any) -> None:
    from airflow_mlops.operators.gating import EvaluateModelGateOperator

    arguments: dict[str, Any] = {
        "model_name": MODEL, "candidate_run_id": w.run_id, "pipeline": "flights", "evaluation_uri": w.current,
        "partition": "2013-02", "check_native_parity": False, "storage_root": w.root.uri,
    }  # fmt: skip
    EvaluateModelGateOperator(task_id="gate", **{**arguments, **changes}).execute(context())


def score(w: World, **changes: Any) -> None:
    from airflow_mlops.operators.scoring import ScoreBatchOperator

    arguments: dict[str, Any] = {
        "input_uri": w.current, "model_name": MODEL, "pipeline": "flights", "partition": "2013-02",
        "storage_root": w.root.uri,
    }  # fmt: skip
    ScoreBatchOperator(task_id="score", **{**arguments, **changes}).execute(context())


def drift(w: World, **changes: Any) -> None:
    from airflow_mlops.operators.drift import CheckDriftOperator

    arguments: dict[str, Any] = {
        "pipeline": "flights", "current_uri": w.current, "reference_uri": w.snapshot, "partition": "2013-02",
        "storage_root": w.root.uri, "log_to_mlflow": False,
    }  # fmt: skip
    CheckDriftOperator(task_id="drift", **{**arguments, **changes}).execute(context())


def _write_without_column(w: World, column: str) -> str:
    """A copy of the scoring batch without ``column``, outside the storage root."""
    import pandas as pd

    path = w.home / f"without-{column}.parquet"
    pd.read_parquet(w.current).drop(columns=[column]).to_parquet(path, index=False)
    return str(path)


@dataclass(frozen=True)
class Case:
    run: Callable[[World], None]
    error: type[BaseException]
    names: str  # the offending item, as the message must name it
    cause: type[BaseException] | None = None  # what the operator's Airflow-facing error wraps


CASES: dict[str, Case] = {
    # ingest
    "ingest-unknown-source": Case(lambda w: ingest(w, source="ftp"), SpecError, "'ftp'"),
    "ingest-chunk-rows-not-a-number": Case(lambda w: ingest(w, chunk_rows="lots"), SpecError, "'lots'"),
    "ingest-partition-escapes-root": Case(lambda w: ingest(w, partition="../../etc"), SpecError, "../../etc"),
    "ingest-unknown-type": Case(lambda w: ingest(w, schema={"dep_delay": "complex128"}), SpecError, "complex128"),
    "ingest-declared-column-missing": Case(lambda w: ingest(w, schema={"runway": "string"}), DataError, "runway"),
    "ingest-missing-folder": Case(lambda w: ingest(w, path=str(w.home / "nowhere")), SourceNotFoundError, "nowhere"),
    "ingest-corrupt-parquet": Case(
        lambda w: ingest(w, pattern="flights_2013-*.parquet"), DataError, "flights_2013-02.parquet"
    ),
    "ingest-table-injection": Case(
        lambda w: ingest_sql(w, table="flights; DROP TABLE flights"), SpecError, "flights; DROP TABLE"
    ),
    "ingest-watermark-injection": Case(
        lambda w: ingest_sql(w, table="flights", watermark_column="ts) OR 1=1 --"), SpecError, "OR 1=1"
    ),
    "ingest-quoted-template": Case(
        lambda w: ingest_sql(w, query="SELECT * FROM flights WHERE day = '{{ ds }}'"),
        SpecError,
        "quoted SQL literal",
    ),
    "ingest-on-empty": Case(lambda w: ingest(w, on_empty="ignore"), SpecError, "'ignore'"),
    # validate
    "validate-no-suite-nor-reference": Case(lambda w: validate(w, reference_uri=None), SpecError, "suite_uri"),
    "validate-snapshot-altered": Case(lambda w: validate(w, snapshot_sha256="0" * 64), DataValidationFailed, "0" * 64),
    "validate-snapshot-missing": Case(
        lambda w: validate(w, snapshot_uri=w.root.layout("flights", "snapshots", "1999-01", "data.parquet")),
        SourceNotFoundError,
        "1999-01",
    ),
    "validate-unknown-inference-setting": Case(
        lambda w: validate(w, inference={"colums": ["carrier"]}), SpecError, "colums"
    ),
    "validate-partition-escapes-root": Case(lambda w: validate(w, partition="../x"), SpecError, "../x"),
    # train
    "train-target-missing": Case(
        lambda w: train(w, spec=train_spec(target="no_such_target")), DataValidationFailed, "no_such_target", DataError
    ),
    "train-unknown-estimator": Case(
        lambda w: train(w, spec=train_spec(estimator={"type": "deep_forest"}, early_stopping_rounds=0)),
        AirflowFailException,
        "deep_forest",
        SpecError,
    ),
    "train-snapshot-altered": Case(
        lambda w: train(w, snapshot_sha256="f" * 64), DataValidationFailed, "f" * 64, IntegrityError
    ),
    "train-partition-escapes-root": Case(
        lambda w: train(w, partition="../../x"), AirflowFailException, "../../x", SpecError
    ),
    # gate
    "gate-unknown-metric": Case(
        lambda w: gate(w, policy={"floors": {"auc": 0.7}}), AirflowFailException, "'auc'", SpecError
    ),
    "gate-on-reject": Case(lambda w: gate(w, on_reject="ignore"), AirflowFailException, "'ignore'", SpecError),
    "gate-evaluation-outside-root": Case(
        lambda w: gate(w, evaluation_uri="/etc/passwd"), AirflowFailException, "/etc/passwd", SpecError
    ),
    "gate-unknown-run": Case(
        lambda w: gate(w, candidate_run_id="0" * 32), AirflowFailException, "0" * 32, SourceNotFoundError
    ),
    # score
    "score-feature-missing": Case(
        lambda w: score(w, input_uri=_write_without_column(w, "dest")), DataValidationFailed, "'dest'"
    ),
    "score-unknown-model": Case(lambda w: score(w, model_name="no_such_model"), SourceNotFoundError, "no_such_model"),
    "score-partition-escapes-root": Case(lambda w: score(w, partition="../../etc"), SpecError, "../../etc"),
    "score-chunk-rows-negative": Case(lambda w: score(w, chunk_rows="-5"), SpecError, "-5"),
    "score-passthrough-missing": Case(lambda w: score(w, passthrough_columns="runway"), DataValidationFailed, "runway"),
    # drift
    "drift-no-reference": Case(lambda w: drift(w, reference_uri=None), SpecError, "reference_uri"),
    "drift-unknown-policy-setting": Case(lambda w: drift(w, policy={"treshold": 0.5}), SpecError, "treshold"),
    "drift-current-missing": Case(
        lambda w: drift(w, current_uri=str(w.home / "missing.parquet")), SourceNotFoundError, "missing.parquet"
    ),
    "drift-unknown-method": Case(lambda w: drift(w, spec={"method": "bogus_test"}), SpecError, "bogus_test"),
    "drift-partition-escapes-root": Case(lambda w: drift(w, partition="../x"), SpecError, "../x"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_bad_input_is_refused_by_name_and_writes_nothing(world: World, case: Case) -> None:
    before = world.files()
    with pytest.raises(case.error) as raised:
        case.run(world)
    assert case.names in str(raised.value), str(raised.value)
    if case.cause is not None:
        assert isinstance(raised.value.__cause__, case.cause), repr(raised.value.__cause__)
    assert world.files() == before


@pytest.mark.parametrize(
    "value", [float("inf"), float("-inf"), 1e40], ids=["plus-inf", "minus-inf", "float32-overflow"]
)
def test_an_infinite_feature_at_training_is_refused_by_name_without_retry(world: World, value: float) -> None:
    """An infinity in a numeric feature used to reach the leakage check as scikit-learn's bare ValueError
    (no column named, and retried by Airflow); 1e40 becomes infinite when fed to the model as float32."""
    frame = flights(months=[1], sample=3000)
    frame["distance"] = frame["distance"].astype("float64")
    frame.loc[frame.index[:3], "distance"] = value
    snapshot = world.root.layout("flights", contracts.KIND_SNAPSHOT, "2013-01-infinite", "data.parquet")
    sha = world.root.write_bytes(snapshot, parquet_bytes(frame))
    before = world.files()
    with pytest.raises(DataValidationFailed, match=r"'distance' has 3 infinite values") as raised:
        train(world, snapshot_uri=snapshot, snapshot_sha256=sha)
    assert isinstance(raised.value.__cause__, DataError)
    assert world.files() == before


def test_the_catalogue_covers_every_stage_with_at_least_25_cases() -> None:
    stages = {name.split("-", 1)[0] for name in CASES}
    assert stages == {"ingest", "validate", "train", "gate", "score", "drift"} and len(CASES) >= 25
    assert os.path.exists(FLIGHTS_SPEC)
