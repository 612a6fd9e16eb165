"""A join's dimension read from a SQL table through an Airflow connection: the flights weather loaded into
PostgreSQL gives identical joined values at training (run_training), at serving (ScoreBatchOperator) and in
the skew check, equal to the same table read from Parquet; its snapshot sha256 is recorded with the run,
it is read once per task, and a missing connection, table or key column is a clear error before any run."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SourceNotFoundError, SpecError
from airflow_mlops.core.features import bind
from airflow_mlops.core.registry import promote, register_version, registration_tags
from airflow_mlops.core.reproducibility import check_training_serving_skew, read_reference
from airflow_mlops.core.serving import load_serving_model, resolve_model_version, run_transformer
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.core.training import TrainingSpec, parquet_bytes, run_training
from airflow_mlops.hooks.ingestion import sql_engine
from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.operators.scoring import ScoreBatchOperator
from tests.core.training.support import FLIGHTS
from tests.support.data import FLIGHTS_DIR, flights

ZONE = "America/New_York"
MODEL = "flights_sql_weather"
PARTITION = "2013-03-01"
JOINED = ["temp", "visib", "wind_speed"]


def features(**join: Any) -> dict[str, Any]:
    """The flights features with the weather at the origin as of the scheduled departure, from SQL."""
    weather = {
        "name": "weather", "source": "sql", "connection": "warehouse", "table": "public.weather",
        "keys": {"origin": "origin"},
        "as_of": {"column": "sched_dep_ts", "dimension_column": "time_hour", "tolerance": "2h"},
        "columns": JOINED, **join,
    }  # fmt: skip
    return {
        "numeric": ["hour", "distance", "sched_dow", *JOINED],
        "categorical": ["carrier", "origin"],
        "timezones": {"sched_dep_ts": ZONE},
        "joins": [weather],
        "derived": {"sched_dow": f"day_of_week(sched_dep_ts, '{ZONE}')"},
    }


def spec(**join: Any) -> TrainingSpec:
    return TrainingSpec.from_mapping({**FLIGHTS, "features": features(**join), "reference_rows": 400})


@pytest.fixture
def warehouse(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> sa.Engine:
    """The shipped hourly weather as a PostgreSQL table (``time_hour`` a timestamptz), behind the
    ``warehouse`` connection."""
    weather = pd.read_parquet(FLIGHTS_DIR / "weather.parquet")
    engine = sa.create_engine(postgres_url)
    weather.to_sql("weather", engine, schema="public", index=False, method="multi", chunksize=5000)
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", postgres_url)
    return engine


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[MlflowHook, StorageRoot]:
    monkeypatch.setenv("AIRFLOW__MLOPS__STORAGE_ROOT", str(tmp_path / "storage"))
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("AIRFLOW__MLOPS__MLFLOW_ARTIFACT_ROOT", str(tmp_path / "mlartifacts"))
    hook = MlflowHook()
    hook.activate()
    return hook, StorageRoot(str(tmp_path / "storage"))


def train(hook: MlflowHook, root: StorageRoot, frame: pd.DataFrame, training_spec: TrainingSpec) -> Any:
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, PARTITION, "snapshot.parquet")
    sha = root.write_bytes(snapshot_uri, parquet_bytes(frame))
    return run_training(
        training_spec, root=root, snapshot_uri=snapshot_uri, snapshot_sha256=sha, pipeline="flights",
        partition=PARTITION, experiment_id=hook.ensure_experiment("flights"), sql_engine=sql_engine,
    )  # fmt: skip


def score(root: StorageRoot, tmp_path: Path, raw: pd.DataFrame) -> dict[str, Any]:
    batch = tmp_path / "landing" / "batch.parquet"
    batch.parent.mkdir(exist_ok=True)
    raw.to_parquet(batch, index=False)
    operator = ScoreBatchOperator(
        task_id="score", input_uri=str(batch), model_name=MODEL, pipeline="flights", passthrough_columns="row",
        serving_log_rows=str(len(raw)), chunk_rows="97",
    )  # fmt: skip
    ctx = {"logical_date": datetime(2013, 3, 1, tzinfo=UTC), "dag_run": SimpleNamespace(run_after=None),
           "ti": SimpleNamespace(map_index=-1, xcom_push=lambda *a, **k: None)}  # fmt: skip
    return operator.execute(ctx)


def test_a_sql_dimension_gives_identical_values_at_training_serving_and_in_the_skew_check(
    warehouse: sa.Engine, deployment: tuple[MlflowHook, StorageRoot], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook, root = deployment
    client = hook.get_conn()
    receipt = train(hook, root, flights(months=[1, 2], sample=5000), spec())
    joins = receipt.result["feature_transforms"]["joins"]["weather"]
    assert joins["matched"] + joins["unmatched"] == 5000 and joins["matched"] > 4900
    assert "SQL table 'public.weather'" in joins["uri"] and "127.0.0.1" in joins["uri"]
    tags = client.get_run(receipt.run_id).data.tags
    assert tags["mlops.dimension.weather.sha256"] == joins["sha256"]

    registration = register_version(
        client, MODEL, receipt.run_id, source=f"runs:/{receipt.run_id}/{contracts.ARTIFACT_NATIVE_MODEL}",
        tags=registration_tags(tags, receipt.run_id, None), description="weather from SQL",
    )  # fmt: skip
    promote(client, MODEL, registration.version)
    ref = resolve_model_version(client, MODEL, alias="champion")
    model = load_serving_model(client, ref)
    assert model.spec.transforms.joins[0].sql is not None  # the version's artifact names the SQL source

    # Serving through the operator, which resolves the connection; the table is read once for many batches.
    from airflow_mlops.core.features import dimensions

    reads: list[str] = []
    read = dimensions._read_sql
    monkeypatch.setattr(dimensions, "_read_sql", lambda join, engine: reads.append(join.name) or read(join, engine))
    reference = read_reference(client, receipt.run_id)
    raw = reference[[*model.spec.input_columns, "flight"]].reset_index(drop=True)
    raw["row"] = range(len(raw))
    scored = score(root, tmp_path, raw)
    assert reads == ["weather"] and scored["rows_in"] > 97 * 3
    assert scored["feature_transforms"]["joins"]["weather"]["sha256"] == joins["sha256"]
    logged = pd.read_parquet(scored["serving_log_uri"]).sort_values("row").reset_index(drop=True)
    for column in [*JOINED, "sched_dow"]:
        trained, served = reference[column].to_numpy(np.float64), logged[column].to_numpy(np.float64)
        assert np.array_equal(trained, served, equal_nan=True), column

    # The same weather read from the shipped Parquet file joins the same values.
    parquet = spec(source=str(FLIGHTS_DIR / "weather.parquet"), connection=None, table=None)
    from_file = bind(parquet.transforms, root, "flights").apply_frame(raw)
    for column in JOINED:
        assert np.array_equal(from_file[column].to_numpy(np.float64), logged[column].to_numpy(np.float64),
                              equal_nan=True), column  # fmt: skip

    # The skew check recomputes the joined values from the table: no difference; a rewritten table is skew.
    finding = check_training_serving_skew(
        reference, model, transformer=run_transformer(client, ref.run_id, model, root, sql_engine)
    )
    assert finding.severity == "ok", finding.message
    with warehouse.begin() as conn:
        conn.execute(sa.text("UPDATE public.weather SET temp = temp + 1"))
    rewritten = run_transformer(client, ref.run_id, model, root, sql_engine)
    assert rewritten is not None and rewritten.receipt()["joins"]["weather"]["sha256"] != joins["sha256"]
    finding = check_training_serving_skew(reference, model, transformer=rewritten)
    assert finding.severity == "alert"
    assert finding.details["feature_transforms"]["differences"]["temp"] == pytest.approx(1.0)


def test_the_sha256_is_that_of_the_rows_read_whatever_order_the_database_gives(
    warehouse: sa.Engine, deployment: tuple[MlflowHook, StorageRoot]
) -> None:
    _, root = deployment
    table = bind(spec().transforms, root, "flights", sql_engine).receipt()["joins"]["weather"]
    query = "SELECT * FROM public.weather ORDER BY random()"
    shuffled = bind(spec(table=None, query=query).transforms, root, "flights", sql_engine)
    assert shuffled.receipt()["joins"]["weather"]["sha256"] == table["sha256"]
    assert "SQL query" in shuffled.receipt()["joins"]["weather"]["uri"]


@pytest.mark.parametrize(
    ("join", "error", "message"),
    [
        ({"connection": "nowhere"}, SourceNotFoundError, r"The SQL connection 'nowhere' .* does not exist"),
        ({"table": "public.no_such_table"}, SourceNotFoundError, r"SQL table 'public.no_such_table' .* does not exist"),
        ({"keys": {"origin": "airport"}}, DataError, r"join 'weather' has no column\(s\) \['airport'\]"),
        ({"table": None, "query": "SELECT time_hour, temp, visib, wind_speed FROM public.weather"}, DataError,
         r"join 'weather' has no column\(s\) \['origin'\]"),
    ],
)  # fmt: skip
def test_bad_sql_dimensions_are_clear_errors_before_any_run(
    warehouse: sa.Engine,
    deployment: tuple[MlflowHook, StorageRoot],
    tmp_path: Path,
    join: dict[str, Any],
    error: type[Exception],
    message: str,
) -> None:
    hook, root = deployment
    with pytest.raises(error, match=message):
        train(hook, root, flights(months=[1], sample=1000), spec(**join))
    assert hook.get_conn().search_runs([hook.ensure_experiment("flights")]) == []
    assert not (tmp_path / "storage" / "flights" / contracts.KIND_EVALUATION).exists()


def test_a_sql_join_without_a_connection_handed_over_names_the_join(deployment: tuple[MlflowHook, StorageRoot]) -> None:
    _, root = deployment
    with pytest.raises(SpecError, match=r"Join 'weather' reads its dimension through the SQL connection 'warehouse'"):
        bind(spec().transforms, root, "flights")
