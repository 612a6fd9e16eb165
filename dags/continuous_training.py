"""Continuous training: ingest -> validate -> train -> gate -> (approval) -> register -> promote.

One task group per pipeline file in ``include/pipelines/`` (or the ``[mlops] pipelines_folder``; a new
use case is a new YAML file, not new code). The ingest task reads the pipeline file's ``data.source``:
the landed files, or a SQL table or query (core/pipeline/source.py). The DAG runs when a pipeline's
dataset asset (``x-mlops://<pipeline>/dataset``: new data was ingested elsewhere, or the
``new_data_<pipeline>`` watch of dags/landing_watch.py saw enough new rows or files) or its drift asset (``x-mlops://<pipeline>/drift``:
the drift policy asked for a retrain) gets an event, or from the trigger form, whose typed params choose
the pipeline, force a retrain on unchanged data, force the promotion past the gate, and put a human
approval between the gate and promotion.

Why one DAG with a group per pipeline, not one DAG per file: the assets a task emits are fixed when
the DAG is parsed (the ingest task's dataset asset, the promote task's model asset), so each pipeline
needs its own tasks; keeping them in one DAG gives one trigger form with a pipeline drop-down, one
place to look, and a stable DAG id (``continuous_training``) for the docs and the demo. The
``choose_pipelines`` branch runs only the group(s) the trigger is about; the others are skipped.

Production-readiness checks (docs/monitoring.md, docs/ml_test_score.md) sit inside each group:

- ``check_personal_data`` between ``ingest`` and ``validate``: a snapshot with unreviewed personal data
  stops the run (failing is the point: it must not reach training);
- ``check_source_schema`` between ``validate`` and ``new_data``: a removed or retyped model feature
  stops the run, any other change of the source's columns only notifies;
- ``check_training_stability`` between ``train`` and ``gate``: a NaN or infinite loss or metric stops
  the run before the gate;
- ``check_feature_importance`` and ``record_training_time`` beside the gate: they warn, never block;
- ``check_feature_cost`` beside them: each feature's share of the ONNX model and of the time per row (serving
  and its feature transforms) against its share of the importance, and the freshness of joined dimensions
  (``monitoring.feature_cost``); it warns, never blocks;
- ``check_serving_skew`` between ``register`` and ``promote``: the registered candidate's training rows
  scored through the serving path must give its training-time predictions, or it is not promoted;
- ``check_spec_provenance`` between ``register`` and ``promote``: the spec the candidate was trained on
  must be committed and unchanged (or come from a versioned DAG bundle); the pipeline file's
  ``monitoring.spec_review`` makes a finding block the promotion (``require``) or only notify (``warn``);
- ``canary_route`` then ``name_challenger`` instead of ``promote`` with ``gate.canary_batches`` while a
  champion serves: the candidate becomes the ``challenger``, which ``batch_serving`` promotes or drops after
  its shadow batches (docs/registry.md#canary-the-challenger-in-shadow);
- ``check_reproducibility`` after ``promote``, only when asked (``reproducibility_wanted``): it retrains
  the new champion from its snapshot, one more training per promotion, so it is off unless the pipeline
  file's ``monitoring.reproducibility`` or the trigger form's ``check_reproducibility`` turns it on.

``train`` itself refuses a spec whose features break the pipeline file's ``feature_requirements``
(docs/training.md): the file is checked when parsed, and the spec again when the task reads it.

Findings that are not ok go to the webhook notifier of the pipeline file's ``monitoring.alerts``
connection (``ml_alerts``); without that connection ``choose_pipelines`` says so in one info line per run,
the findings stay in their tasks' logs, and the checks' verdicts stand.

Why a run can skip itself: the ingest task emits ``x-mlops://<pipeline>/dataset``, which this DAG is
scheduled on (so that other DAGs' ingestion triggers training). The event of its own ingest queues
one more run of this DAG; that run sees the event came from ``continuous_training`` itself and skips
the group, instead of retraining on the data the run before it has just trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Param, TaskGroup
from airflow.sdk.definitions.timetables.assets import AssetTriggeredTimetable

from airflow_mlops import settings
from airflow_mlops.core.pipeline import discover, pipeline_of_asset_uri
from airflow_mlops.notifiers.webhook import WebhookNotifier, log_alert_setup
from airflow_mlops.operators.branching import BranchOnFunctionOperator
from airflow_mlops.operators.canary import NameChallengerOperator, canary_route
from airflow_mlops.operators.drift import drift_asset
from airflow_mlops.operators.feature_cost import CheckFeatureCostOperator
from airflow_mlops.operators.gating import EvaluateModelGateOperator, approval_route, gate_approval_task
from airflow_mlops.operators.ingestion import IngestDatasetOperator, dataset_asset
from airflow_mlops.operators.monitoring import CheckNumericalStabilityOperator, CheckPerformanceOperator
from airflow_mlops.operators.monitoring_data import (
    CheckFeatureImportanceOperator,
    CheckPersonalDataOperator,
    CheckSourceSchemaOperator,
)
from airflow_mlops.operators.provenance import CheckSpecProvenanceOperator
from airflow_mlops.operators.registry import PromoteModelOperator, RegisterModelOperator
from airflow_mlops.operators.reproducibility import CheckReproducibilityOperator, CheckTrainingServingSkewOperator
from airflow_mlops.operators.training import TrainModelOperator, train_if_new_data
from airflow_mlops.operators.validation import ValidateDatasetOperator

DAG_ID = "continuous_training"
PROJECT = Path(__file__).resolve().parents[1]
PIPELINE_FOLDER = Path(settings.pipelines_folder(str(PROJECT / "include" / "pipelines"))).resolve()
PIPELINES = discover(PIPELINE_FOLDER, checked=settings.checked_pipelines_folder())
NAMES = [p.name for p in PIPELINES]
# A deployment's own folder may hold no file yet: the DAG still loads, with nothing to choose.
DEFAULT_PIPELINE = "flights_delay" if "flights_delay" in NAMES else (NAMES[0] if NAMES else "")


def choose_pipelines(params: dict[str, Any], triggering_asset_events: Any = None, **_: Any) -> list[str]:
    """The first task of each group to run: the triggering assets' pipelines, else the form's choice.

    Events this DAG emitted itself (its ingest task's snapshot) are ignored: the run that emitted them
    trained on that snapshot already.
    """
    chosen: list[str] = []
    for asset in triggering_asset_events or {}:
        name = pipeline_of_asset_uri(getattr(asset, "uri", "") or "")
        foreign = [e for e in triggering_asset_events[asset] if e.source_dag_id != DAG_ID]
        if name and foreign and name not in chosen:
            chosen.append(name)
            print(f"{asset.uri}: {len(foreign)} event(s), e.g. {dict(foreign[-1].extra or {}).get('reason', '')}")
    if triggering_asset_events and not chosen:
        print("Only this DAG's own snapshot events triggered this run: nothing new to train on.")
        return []
    if not triggering_asset_events:
        chosen = [params["pipeline"]]
    known = {p.name: p.alerts_conn_id for p in PIPELINES}
    chosen = [name for name in chosen if name in known]
    log_alert_setup(known[name] for name in chosen)  # once per run, not once per check
    return [f"{name}.ingest" for name in chosen]


def reproducibility_wanted(params: dict[str, Any], group: str, enabled: bool, **_: Any) -> list[str]:
    """Retrain the new champion to check it reproduces only when the pipeline file or the form asks."""
    if enabled or params.get("check_reproducibility"):
        return [f"{group}.check_reproducibility"]
    print("Reproducibility check not asked for (monitoring.reproducibility, check_reproducibility): skipped.")
    return []


def pipeline_tasks(pipeline: Any) -> None:
    """The tasks of one pipeline, inside its task group."""
    partition = "{{ ti.xcom_pull(task_ids='" + pipeline.name + ".ingest')['partition'] }}"
    ingest, validate, check_new = intake_tasks(pipeline, partition)
    train = training_task(pipeline, ingest, partition)
    gate, route, approve, register, promote = promotion_tasks(pipeline, train, partition)
    alerts = [WebhookNotifier(webhook_conn_id=pipeline.alerts_conn_id, optional=True)]
    personal_data, source_schema = data_checks(pipeline, ingest, alerts)
    training_stability, feature_importance, training_time = training_checks(pipeline, train, alerts)
    serving_skew, spec_provenance = model_version_checks(pipeline, register, alerts)
    feature_cost = feature_cost_task(pipeline, train, alerts)
    wanted, reproducibility = reproducibility_tasks(pipeline, register, alerts)
    ingest >> personal_data >> validate >> source_schema >> check_new >> train
    train >> training_stability >> gate >> route >> [approve, register]
    train >> [feature_importance, training_time, feature_cost]
    approve >> register >> [serving_skew, spec_provenance]
    promote >> wanted >> reproducibility
    if pipeline.canary:  # a passed candidate waits as the challenger while there is a champion to shadow
        canary_tasks(pipeline, gate, register, [serving_skew, spec_provenance], promote)
    else:
        [serving_skew, spec_provenance] >> promote


def source_arguments(pipeline: Any) -> dict[str, Any]:
    """The ingest task's source: the whole SQL table or query (``data.source: sql``), or every landed file
    matching ``data.training_pattern``."""
    source = pipeline.source
    if source.kind == "sql":
        return {"source": "sql", "table": source.table, "query": source.query, "sql_conn_id": source.connection}
    landing = pipeline.landing_uri(settings.storage_root())
    on_s3 = landing.startswith("s3://")
    return {
        "source": "s3" if on_s3 else "local",
        "path": landing,
        "pattern": pipeline.training_pattern,
        "aws_conn_id": settings.storage_conn_id() if on_s3 else None,
    }


def intake_tasks(pipeline: Any, partition: str) -> tuple[Any, Any, Any]:
    """Ingest a snapshot of the landing folder, validate it, and branch on whether it is new data."""
    ingest = IngestDatasetOperator(
        task_id="ingest",
        pipeline=pipeline.name,
        **source_arguments(pipeline),
        schema=pipeline.schema or None,
        watermark_column=pipeline.watermark_column,
        multiple_outputs=True,  # each receipt key is its own XCom, so ingest.output["uri"] reads one
    )
    validate = ValidateDatasetOperator(
        task_id="validate",
        pipeline=pipeline.name,
        snapshot_uri=ingest.output["uri"],
        snapshot_sha256=ingest.output["sha256"],
        partition=partition,
        suite_uri=str(pipeline.suite) if pipeline.suite else None,
        # Without a suite file, the suite is inferred from the snapshot itself: schema checks only.
        reference_uri=None if pipeline.suite else ingest.output["uri"],
    )
    check_new = BranchOnFunctionOperator(
        task_id="new_data",
        python_callable=train_if_new_data,
        op_kwargs={"group": pipeline.name, "model_name": pipeline.model_name},
    )
    return ingest, validate, check_new


def training_task(pipeline: Any, ingest: Any, partition: str) -> Any:
    """Train the pipeline file's spec on the snapshot."""
    return TrainModelOperator(
        task_id="train",
        pipeline=pipeline.name,
        snapshot_uri=ingest.output["uri"],
        snapshot_sha256=ingest.output["sha256"],
        spec=str(pipeline.path),
        partition=partition,
        multiple_outputs=True,
        # Checked again at training: the spec is read from the file then, after any edit since this parse.
        feature_requirements=pipeline.feature_requirements.to_dict(),
        business_metric=pipeline.business_metric or None,  # logged as test_<name> beside test_roc_auc
        # The suite the snapshot passed goes with the model: serving validates with it when the file names none.
        suite_uri="{{ ti.xcom_pull(task_ids='" + pipeline.name + ".validate')['suite_uri'] }}",
    )


def promotion_tasks(pipeline: Any, train: Any, partition: str) -> tuple[Any, Any, Any, Any, Any]:
    """Gate the candidate, route it through a human approval when asked, register it and promote it."""
    gate = EvaluateModelGateOperator(
        task_id="gate",
        model_name=pipeline.model_name,
        candidate_run_id=train.output["run_id"],
        pipeline=pipeline.name,
        policy=pipeline.gate_policy,
        partition=partition,
        on_reject=pipeline.on_reject,
        force="{{ params.force_promotion }}",
        force_reason="forced from the trigger form of {{ dag.dag_id }} run {{ run_id }}",
    )
    route = BranchOnFunctionOperator(
        task_id="route", python_callable=approval_route, op_kwargs={"group": pipeline.name}
    )
    approve = gate_approval_task(
        f"{pipeline.name}.gate", task_id="approve_promotion", ignore_downstream_trigger_rules=True
    )
    register = RegisterModelOperator(
        task_id="register",
        model_name=pipeline.model_name,
        gate_receipt=gate.output,
        trigger_rule="none_failed_min_one_success",
        multiple_outputs=True,
    )
    promote = PromoteModelOperator(
        task_id="promote",
        model_name=pipeline.model_name,
        pipeline=pipeline.name,
        version=register.output["version"],
        gate_receipt=gate.output,
    )
    return gate, route, approve, register, promote


def canary_tasks(pipeline: Any, gate: Any, register: Any, checks: list[Any], promote: Any) -> None:
    """After the version checks: promote at once, or give the candidate the ``challenger`` alias."""
    route = BranchOnFunctionOperator(
        task_id="canary_route", python_callable=canary_route, op_kwargs={"group": pipeline.name}
    )
    challenger = NameChallengerOperator(
        task_id="name_challenger",
        model_name=pipeline.model_name,
        version=register.output["version"],
        gate_receipt=gate.output,
    )
    checks >> route >> [promote, challenger]


def data_checks(pipeline: Any, ingest: Any, alerts: list[Any]) -> tuple[Any, Any]:
    """Personal data in the snapshot, and its schema against the one the champion was trained on."""
    personal_data = CheckPersonalDataOperator(
        task_id="check_personal_data", snapshot_uri=ingest.output["uri"], notifiers=alerts
    )
    # Before the first promotion there is no champion: the finding is ok, there is nothing to compare.
    source_schema = CheckSourceSchemaOperator(
        task_id="check_source_schema",
        model_name=pipeline.model_name,
        snapshot_uri=ingest.output["uri"],
        notifiers=alerts,
    )
    return personal_data, source_schema


def training_checks(pipeline: Any, train: Any, alerts: list[Any]) -> tuple[Any, Any, Any]:
    """The training run's numerical stability, feature importance and training time."""
    training_stability = CheckNumericalStabilityOperator(
        task_id="check_training_stability", training_run_id=train.output["run_id"], notifiers=alerts
    )
    feature_importance = CheckFeatureImportanceOperator(
        task_id="check_feature_importance", run_id=train.output["run_id"], min_share="0.01", notifiers=alerts
    )
    training_time = CheckPerformanceOperator(
        task_id="record_training_time",
        pipeline=pipeline.name,
        metric="training_seconds",
        receipt=train.output,  # the whole receipt: multiple_outputs pushes it as return_value too
        value_path="seconds",
        higher_is_better="false",
        max_drop="1.0",  # alert at twice the trailing median training time
        notifiers=alerts,
    )
    return training_stability, feature_importance, training_time


def model_version_checks(pipeline: Any, register: Any, alerts: list[Any]) -> tuple[Any, Any]:
    """The registered version's training/serving skew and its spec's provenance."""
    serving_skew = CheckTrainingServingSkewOperator(
        task_id="check_serving_skew",
        model_name=pipeline.model_name,
        model_version=register.output["version"],
        notifiers=alerts,
    )
    # Whether the spec the candidate was trained on is committed, unchanged: the pipeline file's
    # monitoring.spec_review decides whether a finding stops the promotion (require) or notifies (warn).
    spec_provenance = CheckSpecProvenanceOperator(
        task_id="check_spec_provenance",
        model_name=pipeline.model_name,
        model_version=register.output["version"],
        review=pipeline.spec_review,
        notifiers=alerts,
    )
    return serving_skew, spec_provenance


def feature_cost_task(pipeline: Any, train: Any, alerts: list[Any]) -> Any:
    """What each feature costs the trained model, against its importance (the pipeline file's settings)."""
    return CheckFeatureCostOperator(
        task_id="check_feature_cost",
        run_id=train.output["run_id"],
        notifiers=alerts,
        **{key: str(value) for key, value in pipeline.feature_cost.items()},
    )


def reproducibility_tasks(pipeline: Any, register: Any, alerts: list[Any]) -> tuple[Any, Any]:
    """Retrain the promoted version on its snapshot and compare, when the pipeline file or the form asks."""
    wanted = BranchOnFunctionOperator(
        task_id="reproducibility_wanted",
        python_callable=reproducibility_wanted,
        op_kwargs={"group": pipeline.name, "enabled": pipeline.check_reproducibility},
    )
    reproducibility = CheckReproducibilityOperator(
        task_id="check_reproducibility",
        model_name=pipeline.model_name,
        model_version=register.output["version"],  # the version this run promoted
        notifiers=alerts,
    )
    return wanted, reproducibility


assets = None
for _pipeline in PIPELINES:
    condition = dataset_asset(_pipeline.name) | drift_asset(_pipeline.name)
    assets = condition if assets is None else assets | condition
# The timetable Airflow would build from the asset condition, built here: every dependency edge hashes the
# DAG, whose hash includes `schedule`. An asset condition hashes every asset through attrs and JSON
# (about 0.3 ms for four, times 150 edges); the timetable hashes cheaply. The serialized DAG is the same
# (tests/dags/test_dags.py).
schedule = None if assets is None else AssetTriggeredTimetable(assets)

with DAG(
    dag_id=DAG_ID,
    schedule=schedule,
    start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # two trainings of one model would race for the champion alias
    tags=["mlops", "training"],
    doc_md=__doc__,
    params={
        "pipeline": Param(
            DEFAULT_PIPELINE,
            type="string",
            enum=NAMES or [""],
            description="Pipeline file in include/pipelines/ (used when the run is not asset-triggered).",
        ),
        "force_retrain": Param(
            False, type="boolean", description="Train even if the champion was trained on this very snapshot."
        ),
        "force_promotion": Param(
            False, type="boolean", description="Pass the gate whatever its checks say (recorded as forced)."
        ),
        "approval": Param(False, type="boolean", description="Ask a human to approve before promotion."),
        "check_reproducibility": Param(
            False,
            type="boolean",
            description="Retrain the new champion on its snapshot and compare (one more training), whatever "
            "the pipeline file's monitoring.reproducibility says.",
        ),
    },
) as dag:
    plan = BranchOnFunctionOperator(task_id="choose_pipelines", python_callable=choose_pipelines)
    for _pipeline in PIPELINES:
        with TaskGroup(group_id=_pipeline.name) as group:
            pipeline_tasks(_pipeline)
        plan >> group
