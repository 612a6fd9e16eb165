"""The reference DAGs: they parse fast without errors, have the documented shape, and run the loop."""

from __future__ import annotations

import subprocess
import sys
from collections import namedtuple
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pendulum
import pytest

from tests.support import data

REPO = Path(__file__).resolve().parents[2]
DAGS = REPO / "dags"
STAGES = ("ingest", "validate", "new_data", "train", "gate", "route", "approve_promotion", "register", "promote")
CHECKS = (
    "check_personal_data", "check_source_schema", "check_training_stability", "check_feature_importance",
    "record_training_time", "check_serving_skew", "reproducibility_wanted", "check_reproducibility",
    "check_spec_provenance", "check_feature_cost",
)  # fmt: skip


@pytest.fixture(scope="module")
def bag() -> Any:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_dag_files_parse_without_import_errors(bag: Any) -> None:
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["batch_serving", "continuous_training"]


@pytest.mark.parametrize("name", ["continuous_training", "batch_serving", "landing_watch"])
def test_a_dag_file_imports_no_heavy_library_in_a_fresh_interpreter(name: str) -> None:
    """What the DAG processor loads per file: no heavy library. How long that takes is measured by
    benchmarks/dag_parse.py against a same-shape DAG, not timed here (the machine may be loaded)."""
    probe = (
        "import sys, runpy; runpy.run_path(sys.argv[1]); "
        "print([m for m in ('pandas', 'sklearn', 'mlflow', 'great_expectations', 'evidently') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(DAGS / f"{name}.py")], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_continuous_training_shape(bag: Any) -> None:
    dag = bag.dags["continuous_training"]
    pipelines = ("bike_sharing", "flights_delay")
    tasks = {f"{p}.{s}" for p in pipelines for s in STAGES + CHECKS}
    assert {t.task_id for t in dag.tasks} == {"choose_pipelines"} | tasks
    assert dag.get_task("choose_pipelines").downstream_task_ids == {f"{p}.ingest" for p in pipelines}
    edges = {
        "ingest": {"check_personal_data", "validate", "check_source_schema", "train"},
        "check_personal_data": {"validate"},
        "validate": {"check_source_schema"},
        "check_source_schema": {"new_data"},
        "new_data": {"train"},
        "train": {
            "check_training_stability",
            "check_feature_importance",
            "record_training_time",
            "gate",
            "check_feature_cost",
        },
        "check_training_stability": {"gate"},
        "check_feature_importance": set(),
        "check_feature_cost": set(),
        "record_training_time": set(),
        "gate": {"route", "register", "promote"},
        "route": {"approve_promotion", "register"},
        "approve_promotion": {"register"},
        "register": {"check_serving_skew", "promote", "check_reproducibility", "check_spec_provenance"},
        "check_serving_skew": {"promote"},
        "check_spec_provenance": {"promote"},
        "promote": {"reproducibility_wanted"},
        "reproducibility_wanted": {"check_reproducibility"},
        "check_reproducibility": set(),
    }
    for stage, downstream in edges.items():
        task = dag.get_task(f"flights_delay.{stage}")
        assert task.downstream_task_ids == {f"flights_delay.{d}" for d in downstream}, stage
    assert dag.get_task("flights_delay.register").trigger_rule == "none_failed_min_one_success"
    # Each pipeline file's business metric is measured on the test split at training.
    assert dag.get_task("flights_delay.train").business_metric["name"] == "delay_cost"
    assert dag.get_task("bike_sharing.train").business_metric["costs"] == {"under": 3.0, "over": 1.0}
    # Blocking where failing is the point; the warnings beside the gate never fail their task.
    fail_on = {c: dag.get_task(f"flights_delay.{c}").fail_on for c in CHECKS if c != "reproducibility_wanted"}
    assert set(fail_on.values()) == {None}  # every check keeps its documented default
    assert dag.get_task("flights_delay.check_feature_importance").default_fail_on == "never"
    assert dag.get_task("flights_delay.record_training_time").default_fail_on == "never"
    assert dag.get_task("flights_delay.check_feature_cost").default_fail_on == "never"
    assert dag.get_task("flights_delay.check_feature_cost").max_cost_ratio == "3"  # from the pipeline file
    assert dag.get_task("flights_delay.check_serving_skew").default_fail_on == "alert"
    # The pipeline file's monitoring.spec_review reaches the check (warn in the flights file).
    assert dag.get_task("flights_delay.check_spec_provenance").review == "warn"
    assert dag.get_task("flights_delay.check_spec_provenance").default_fail_on == "alert"
    notifiers = dag.get_task("flights_delay.check_serving_skew").notifiers
    assert [(type(n).__name__, n.webhook_conn_id) for n in notifiers] == [("WebhookNotifier", "ml_alerts")]
    # Scheduled on each pipeline's dataset OR drift asset.
    assets = set(_asset_uris(dag.timetable.asset_condition))
    assert assets == {f"x-mlops://{p}/{kind}" for p in pipelines for kind in ("dataset", "drift")}
    # The DAG file builds the asset timetable itself (cheaper DAG hashing); the serialized DAG is the one
    # Airflow builds from the asset condition given as the schedule.
    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    rebuilt = DAG(dag.dag_id, schedule=dag.timetable.asset_condition, start_date=dag.start_date)
    assert DagSerialization.to_dict(rebuilt)["dag"]["timetable"] == DagSerialization.to_dict(dag)["dag"]["timetable"]
    assert [type(o).__name__ for o in dag.get_task("flights_delay.ingest").outlets] == ["Asset"]
    assert dag.get_task("flights_delay.promote").outlets[0].uri == "x-mlops://flights_delay/model"
    params = dag.params.dump()
    assert params == {
        "pipeline": "flights_delay", "force_retrain": False, "force_promotion": False, "approval": False,
        "check_reproducibility": False,
    }  # fmt: skip
    assert dag.params.get_param("pipeline").schema["enum"] == list(pipelines)
    assert dag.max_active_runs == 1 and dag.catchup is False


def _asset_uris(condition: Any) -> list[str]:
    """Every asset URI of an asset condition (``a | b``, nested)."""
    if hasattr(condition, "objects"):
        return [uri for part in condition.objects for uri in _asset_uris(part)]
    return [condition.uri]


def test_batch_serving_shape(bag: Any) -> None:
    from airflow.sdk.definitions.mappedoperator import MappedOperator
    from airflow.timetables.interval import CronDataIntervalTimetable

    dag = bag.dags["batch_serving"]
    assert isinstance(dag.timetable, CronDataIntervalTimetable) and dag.timetable._expression == "0 0 1 * *"
    tasks = {t.task_id: t for t in dag.tasks}
    names = (
        "wait_for_batch", "list_partitions", "validate", "resolve_champion", "score", "check_drift",
        "check_dependencies", "check_staleness", "check_numerical_stability", "record_throughput", "explain_sample",
        "measure_staleness_impact", "check_proxy_correlation",
    )  # fmt: skip
    assert set(tasks) == {"choose_pipelines"} | {f"flights_delay.{n}" for n in names}
    mapped = {n for n in names if isinstance(tasks[f"flights_delay.{n}"], MappedOperator)}
    assert mapped == {"validate", "score", "check_drift", "check_numerical_stability", "record_throughput",
                      "explain_sample"}  # fmt: skip
    downstream = {
        "resolve_champion": {"score", "check_dependencies", "check_staleness"},
        # the earlier versions score the served partitions again; the outcome is measured on them
        "score": {
            "check_numerical_stability",
            "check_drift",
            "record_throughput",
            "explain_sample",
            "measure_staleness_impact",
            "check_proxy_correlation",
        },
        "check_numerical_stability": {"check_drift"},
        "check_drift": {"measure_staleness_impact", "check_proxy_correlation"},
    }
    for name, expected in downstream.items():
        assert tasks[f"flights_delay.{name}"].downstream_task_ids == {f"flights_delay.{d}" for d in expected}, name
    staleness = tasks["flights_delay.check_staleness"]
    assert (staleness.max_model_age, staleness.max_data_age, staleness.trigger_retraining) == ("90d", "75d", True)
    assert [o.name for o in staleness.outlets] == ["mlops-drift-flights_delay"]
    impact = tasks["flights_delay.measure_staleness_impact"]
    assert impact.policy == {"max_cost_per_month": 0.01, "max_versions": 3, "min_versions": 2}
    assert tasks["flights_delay.check_proxy_correlation"].outcome["column"] == "arr_delay"
    sensor = tasks["flights_delay.wait_for_batch"]
    assert sensor.deferrable is True and sensor.on_timeout == "skip"
    assert tasks["flights_delay.score"].upstream_task_ids == {
        "flights_delay.list_partitions", "flights_delay.validate", "flights_delay.resolve_champion",
    }  # fmt: skip
    assert [o.name for o in tasks["flights_delay.check_drift"].partial_kwargs["outlets"]] == [
        "mlops-drift-flights_delay"
    ]
    # The business metric of the pipeline file is measured by the drift checks and checked against the proxy.
    business = tasks["flights_delay.check_drift"].partial_kwargs["business_metric"]
    assert business["name"] == "delay_cost" and business["threshold"] == 0.25
    proxy = tasks["flights_delay.check_proxy_correlation"]
    assert proxy.business_metric == business and (proxy.min_batches, proxy.min_correlation) == (5, 0.3)
    assert proxy.default_fail_on == "never" and [n.webhook_conn_id for n in proxy.notifiers] == ["ml_alerts"]


def _event(dag_id: str, extra: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(source_dag_id=dag_id, extra=extra or {})


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        (None, ["bike_sharing.ingest"]),
        ({"x-mlops://flights_delay/drift": [_event("batch_serving", {"reason": "drift"})]}, ["flights_delay.ingest"]),
        ({"x-mlops://flights_delay/dataset": [_event("continuous_training")]}, []),
        (
            {
                "x-mlops://flights_delay/dataset": [_event("continuous_training")],
                "x-mlops://bike_sharing/dataset": [_event("bike_ingest")],
            },
            ["bike_sharing.ingest"],
        ),
    ],
    ids=["manual", "drift", "own-snapshot-event", "own-and-foreign"],
)
def test_the_trigger_chooses_the_pipelines(events: dict[str, list[Any]] | None, expected: list[str]) -> None:
    import runpy

    module = runpy.run_path(str(DAGS / "continuous_training.py"))
    accessor = None
    if events is not None:
        assets = {_Asset(uri): found for uri, found in events.items()}
        accessor = _Accessor(assets)
    assert module["choose_pipelines"]({"pipeline": "bike_sharing"}, accessor) == expected


_Asset = namedtuple("_Asset", "uri")


class _Accessor(dict):  # type: ignore[type-arg]
    """Iterates assets and maps each to its events, as Airflow's triggering_asset_events does."""


@pytest.fixture(scope="module")
def airflow_db() -> None:
    from airflow.utils.db import initdb

    initdb()


@pytest.mark.slow
def test_training_then_serving_on_real_flights(airflow_db: None, mlops_env: Path) -> None:
    """continuous_training trains and promotes a champion; batch_serving scores the next month with it."""
    import runpy

    from airflow.utils.state import DagRunState, TaskInstanceState

    from airflow_mlops.core import registry
    from airflow_mlops.hooks.mlflow import MlflowHook

    landing = mlops_env / "storage" / "flights_delay" / "landing"
    landing.mkdir(parents=True)
    for month in (1, 2, 3):
        data.flights((month,), 4000).to_parquet(landing / f"flights_2013-{month:02d}.parquet", index=False)
    # The DAG files read the storage root when parsed: parse them now, under this test's settings.
    module = runpy.run_path(str(DAGS / "continuous_training.py"))
    training = module["dag"]
    serving = runpy.run_path(str(DAGS / "batch_serving.py"))["dag"]

    run = training.test(logical_date=pendulum.datetime(2013, 3, 1, tz="UTC"), run_conf={"pipeline": "flights_delay"})
    assert run.state == DagRunState.SUCCESS
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["flights_delay.promote"] == TaskInstanceState.SUCCESS
    assert states["flights_delay.approve_promotion"] == TaskInstanceState.SKIPPED
    assert states["bike_sharing.ingest"] == TaskInstanceState.SKIPPED
    # The checks ran without an ml_alerts connection: the notifier only logs; retraining to reproduce is off.
    ran = [c for c in CHECKS if c != "check_reproducibility"]
    assert {c: states[f"flights_delay.{c}"] for c in ran} == {c: TaskInstanceState.SUCCESS for c in ran}
    assert states["flights_delay.check_reproducibility"] == TaskInstanceState.SKIPPED
    client = MlflowHook().get_conn()
    champion = registry.alias_version(client, "flights_delay", "champion")
    assert champion == "1"
    # The champion's run records the pipeline file it was trained on.
    import hashlib

    from airflow_mlops.core import contracts

    trained = client.get_run(client.get_model_version("flights_delay", champion).run_id).data.tags
    spec_file = REPO / "include" / "pipelines" / "flights_delay.yaml"
    assert trained[contracts.TAG_SPEC_SHA256] == hashlib.sha256(spec_file.read_bytes()).hexdigest()
    from airflow_mlops.core.provenance import spec_provenance

    assert trained[contracts.TAG_SPEC_STATE] == spec_provenance(spec_file).state  # this checkout's state
    # check_feature_cost logged each feature's cost on the training run, beside its importance.
    metrics = client.get_run(client.get_model_version("flights_delay", champion).run_id).data.metrics
    assert {k for k in metrics if k.startswith("feature_cost.") and k.endswith(".cost_share")} == {
        f"feature_cost.{f}.cost_share" for f in ("hour", "minute", "sched_dep_time", "sched_arr_time", "distance",
                                                 "sched_dow", "temp", "visib", "precip", "wind_speed",
                                                 "carrier", "origin", "dest")
    }  # fmt: skip
    print("feature_cost.flagged:", metrics["feature_cost.flagged"])
    # ... and what computing the weather features costs upstream, and how fresh the weather file is.
    assert metrics["feature_cost.temp.compute_ms_per_1k"] > 0
    assert metrics["feature_cost.dimension.weather.lag_hours"] == 0
    # The same snapshot again: nothing new to train on, unless force_retrain.
    import json

    (receipt_file,) = (mlops_env / "storage" / "flights_delay" / "snapshots").glob("*/receipt.json")
    ti = SimpleNamespace(xcom_pull=lambda task_ids: json.loads(receipt_file.read_text()))
    check = {"ti": ti, "group": "flights_delay", "model_name": "flights_delay"}
    from airflow_mlops.operators.training import new_data

    assert new_data(params={"force_retrain": False}, **check) is False
    assert new_data(params={"force_retrain": True}, **check) is True

    run = serving.test(logical_date=pendulum.datetime(2013, 4, 1, tz="UTC"))  # serves March
    assert run.state == DagRunState.SUCCESS
    scored = [ti for ti in run.get_task_instances() if ti.task_id == "flights_delay.score"]
    assert [(ti.map_index, ti.state) for ti in scored] == [(0, TaskInstanceState.SUCCESS)]
    checks = {ti.task_id.split(".", 1)[1]: ti.state for ti in run.get_task_instances() if "check_" in ti.task_id}
    assert set(checks.values()) == {TaskInstanceState.SUCCESS}, checks
    assert len(checks) == 5  # dependencies, staleness, numerical stability, drift, proxy correlation
    # The business metric: on the champion's test split at training, on the served labelled month by the drift
    # check; one labelled batch is too few for check_proxy_correlation to judge (it succeeded above).
    assert "test_delay_cost" in client.get_run(client.get_model_version("flights_delay", champion).run_id).data.metrics
    (monitoring,) = client.search_runs(
        [client.get_experiment_by_name("mlops-flights_delay").experiment_id],
        filter_string="tags.`mlops.monitoring_of` = 'flights_delay/v1'",
    )
    assert monitoring.data.metrics["business.delay_cost"] > 0
    # The outcome measured after serving (the realised delay minutes passed through scoring), beside it.
    assert monitoring.data.metrics["outcome.delay_minutes_caught"] > 0
    # The staleness impact scored the partition with every registered version: one age so far, not judged;
    # the version's age counts from the end of its training data, recorded at training.
    impact = next(ti for ti in run.get_task_instances() if ti.task_id == "flights_delay.measure_staleness_impact")
    assert impact.state == TaskInstanceState.SUCCESS
    assert trained[contracts.TAG_DATA_END] == "2013-04-01T03:59:00+00:00"  # the last flight, 23:59 in New York
    storage = mlops_env / "storage" / "flights_delay"
    predictions = storage / "predictions" / "flights_2013-03" / "predictions.parquet"
    import pyarrow.parquet as pq

    table = pq.read_table(predictions)
    assert table.num_rows == 4000 and set(table.column("model_version").to_pylist()) == {champion}
    assert (storage / "drift" / "flights_2013-03" / "labelled" / "report.html").is_file()
    assert (storage / "drift" / "flights_2013-03" / "labelled" / "summary.json").is_file()


def test_the_single_operator_example_in_the_docs_is_a_valid_dag(tmp_path: Path) -> None:
    """docs/single_operators.md's first example parses as a DAG file, as written."""
    from airflow.dag_processing.dagbag import DagBag

    text = (REPO / "docs" / "single_operators.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    bag = DagBag(dag_folder=str(tmp_path))
    assert bag.import_errors == {}
    dag = bag.dags["flights_export"]
    assert dag.get_task("validate_extract").downstream_task_ids == {"drift_vs_reference", "publish"}


@pytest.mark.parametrize(
    ("in_file", "in_form", "expected"),
    [(False, False, []), (True, False, ["p.check_reproducibility"]), (False, True, ["p.check_reproducibility"])],
    ids=["off", "pipeline-file", "trigger-form"],
)
def test_the_reproducibility_retrain_runs_only_when_asked(in_file: bool, in_form: bool, expected: list[str]) -> None:
    import runpy

    wanted = runpy.run_path(str(DAGS / "continuous_training.py"))["reproducibility_wanted"]
    assert wanted({"check_reproducibility": in_form}, group="p", enabled=in_file) == expected


@pytest.mark.parametrize(("approval", "expected"), [(True, "p.approve_promotion"), (False, "p.register")])
def test_the_approval_switch_routes_through_the_human_step(approval: bool, expected: str) -> None:
    import runpy

    route = runpy.run_path(str(DAGS / "continuous_training.py"))["approval_route"]
    assert route({"approval": approval}, group="p") == expected


@pytest.mark.parametrize(
    ("run_type", "pipeline", "expected"),
    [
        ("scheduled", "flights_delay", ["flights_delay.wait_for_batch"]),
        ("manual", "flights_delay", ["flights_delay.wait_for_batch"]),
        ("manual", "all", ["flights_delay.wait_for_batch"]),
        ("manual", "nope", []),
    ],
    ids=["scheduled", "manual", "manual-all", "unknown"],
)
def test_batch_serving_serves_the_chosen_pipelines(run_type: str, pipeline: str, expected: list[str]) -> None:
    import runpy

    from airflow.utils.types import DagRunType

    choose = runpy.run_path(str(DAGS / "batch_serving.py"))["choose_pipelines"]
    dag_run = SimpleNamespace(run_type=DagRunType(run_type))
    assert choose({"pipeline": pipeline}, dag_run) == expected
