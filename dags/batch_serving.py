"""Batch serving: wait for the interval's data, validate it, score it with the champion, check drift.

One batch DAG per distinct ``serving.schedule`` of the pipeline files in ``include/pipelines/`` (or the
``[mlops] pipelines_folder``) that have a ``serving:`` section, and one task group per pipeline file in
it. ``batch_serving`` serves the ``@monthly`` pipelines (flights; the interval's files are named by its
month) and is there even when none is monthly; ``batch_serving_weekly``, ``batch_serving_quarterly``,
``batch_serving_cron_<fields>``, ``batch_serving_every_<7d>`` and ``batch_serving_on_<asset uri>`` serve
the other presets, cron expressions, ISO-8601 durations and asset URIs (docs/scoring.md). A preset, a
cron expression or a duration gives each run a data interval, which the pipeline's ``data.batch_pattern``
names (``{{ data_interval_start.strftime('%Y-%m') }}``); an asset runs the DAG when it is updated. For
each interval:

1. ``wait_for_batch`` waits, deferred to the triggerer, until the interval's files have landed;
2. ``list_partitions`` lists them, and every later step is mapped over that list (one task per file,
   spread over the workers by Celery or Kubernetes);
3. ``resolve_champion`` pins the champion version once, so every partition is scored by the same one;
4. ``validate`` checks each file against the pipeline file's ``validation.suite``, or without one against
   the suite logged with that champion at training (schema skew stops the run);
5. ``score`` scores each file with it (and with the ``challenger``, in shadow, when one exists);
6. ``check_drift`` compares each file's serving log with the champion's training reference; when the
   drift policy says retrain it emits ``x-mlops://<pipeline>/drift``, which ``continuous_training`` is
   scheduled on.

Production-readiness checks (docs/monitoring.md, docs/ml_test_score.md) sit inside each group:

- ``check_dependencies`` and ``check_staleness`` beside scoring, after ``resolve_champion``: the
  package versions the champion was trained with against this worker's, and the champion's age and its
  data's age against the pipeline file's ``monitoring`` limits (a stale champion emits the drift asset
  when ``retrain_when_stale`` is set). They notify and never block scoring;
- ``check_numerical_stability``, mapped, between ``score`` and ``check_drift``: NaN or infinity in a
  partition's predictions or serving log fails the batch, and its drift is not judged;
- ``record_throughput`` and ``explain_sample``, mapped, after ``score``: rows per second as an MLflow
  series against its trailing median, and the first served row of each partition explained and stored;
- ``measure_staleness_impact`` after ``check_drift``: the champion and the earlier versions still
  registered score the same labelled partitions, and the quality lost per month of model age is
  checked against ``monitoring.staleness_impact``;
- ``judge_challenger`` after ``score``, for a pipeline file with ``gate.canary_batches``: the challenger's
  shadow batches against the canary policy; it waits, drops the challenger (alias removed, alert), or
  runs ``promote_challenger``, which moves ``champion`` under the promotion lease
  (docs/registry.md#canary-the-challenger-in-shadow);
- ``check_proxy_correlation`` after ``check_drift``, for a pipeline file with a ``business`` metric:
  whether the served and training-time proxy (ROC AUC) still rank labelled batches as their business
  cost does (or the ``business.outcome`` measured on the served partitions), across every champion so far.

Findings that are not ok go to the webhook notifier of the pipeline file's ``monitoring.alerts``
connection (``ml_alerts``); without that connection ``choose_pipelines`` says so in one info line per run,
the findings stay in their tasks' logs, and the checks' verdicts stand.

A manual run serves the pipeline chosen in the trigger form; scheduled runs serve every pipeline with
a ``serving:`` section whose schedule is the DAG's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pendulum
from airflow.sdk import DAG, Asset, Param, TaskGroup
from airflow.timetables.interval import CronDataIntervalTimetable, DeltaDataIntervalTimetable

from airflow_mlops import settings
from airflow_mlops.core.pipeline import MONTHLY, PipelineFile, ServingSchedule, batch_dags, discover
from airflow_mlops.notifiers.webhook import WebhookNotifier, log_alert_setup
from airflow_mlops.operators.branching import BranchOnFunctionOperator
from airflow_mlops.operators.business import CheckProxyCorrelationOperator
from airflow_mlops.operators.canary import VERDICT_KEY, JudgeChallengerOperator
from airflow_mlops.operators.drift import CheckDriftOperator, drift_alias
from airflow_mlops.operators.explain import ExplainPredictionOperator
from airflow_mlops.operators.monitoring import CheckNumericalStabilityOperator, CheckPerformanceOperator
from airflow_mlops.operators.monitoring_data import CheckModelDependenciesOperator
from airflow_mlops.operators.monitoring_staleness import CheckModelStalenessOperator, MeasureStalenessImpactOperator
from airflow_mlops.operators.registry import PromoteModelOperator
from airflow_mlops.operators.scoring import ListPartitionsOperator, ResolveModelVersionOperator, ScoreBatchOperator
from airflow_mlops.operators.validation import ValidateDatasetOperator
from airflow_mlops.sensors.ingestion import DatasetAvailableSensor

DAG_ID = "batch_serving"  # the @monthly pipelines' DAG; the other schedules' DAG ids are named by the schedule
PROJECT = Path(__file__).resolve().parents[1]
PIPELINE_FOLDER = Path(settings.pipelines_folder(str(PROJECT / "include" / "pipelines"))).resolve()
# {dag_id: (schedule, pipelines)}: one batch DAG per distinct serving schedule, in file order.
SERVED = batch_dags(p for p in discover(PIPELINE_FOLDER, checked=settings.checked_pipelines_folder()) if p.serving)
SERVED.setdefault(DAG_ID, (MONTHLY, []))  # batch_serving stays, so its runs and links do not vanish
PIPELINES = SERVED[DAG_ID][1]  # the monthly ones


def choose_pipelines(
    params: dict[str, Any],
    dag_run: Any,
    pipelines: list[str] | None = None,
    alerts: dict[str, str] | None = None,
    **_: Any,
) -> list[str]:
    """The form's pipeline for a manual run; every pipeline of the DAG for a scheduled or asset-triggered one.
    Says once per run which chosen pipeline's alert connection does not exist (its findings are only logged).

    :param pipelines: the DAG's pipelines (``op_kwargs``); the monthly ones when not given.
    :param alerts: ``{pipeline: alert connection id}`` of the DAG's pipelines (``op_kwargs``).
    """
    names = [p.name for p in PIPELINES] if pipelines is None else pipelines
    run_type = getattr(dag_run, "run_type", None)
    if getattr(run_type, "value", run_type) in ("scheduled", "asset_triggered") or params.get("pipeline") == "all":
        chosen = names
    else:
        chosen = [params["pipeline"]] if params.get("pipeline") in names else []
    log_alert_setup((alerts or {})[name] for name in chosen if name in (alerts or {}))
    return [f"{name}.wait_for_batch" for name in chosen]


def validate_kwargs(partition: dict[str, str]) -> dict[str, str]:
    """A listed partition as the arguments of the mapped validation task."""
    return {"snapshot_uri": partition["input_uri"], "partition": partition["partition"]}


def drift_kwargs(receipt: dict[str, Any]) -> dict[str, str]:
    """A scoring receipt as the arguments of the mapped drift check: its serving log, its partition."""
    return {"current_uri": receipt["serving_log_uri"], "partition": receipt["partition"]}


def stability_kwargs(receipt: dict[str, Any]) -> dict[str, str]:
    """A scoring receipt as the arguments of the mapped stability check: its predictions, its serving log."""
    return {"predictions_uri": receipt["output_uri"], "features_uri": receipt["serving_log_uri"]}


def explain_kwargs(receipt: dict[str, Any]) -> dict[str, str]:
    """A scoring receipt as the arguments of the mapped explanation: a served row of its partition."""
    return {"input_uri": receipt["serving_log_uri"], "partition": receipt["partition"]}


def pipeline_tasks(pipeline: PipelineFile) -> None:
    """The tasks of one pipeline, inside its task group."""
    landing = pipeline.landing_uri(settings.storage_root())
    aws_conn_id = settings.storage_conn_id() if landing.startswith("s3://") else None
    champion = ResolveModelVersionOperator(task_id="resolve_champion", model_name=pipeline.model_name)
    wait, partitions, validate = intake_tasks(pipeline, landing, aws_conn_id, champion)
    score = scoring_tasks(pipeline, partitions, aws_conn_id, champion)
    alerts = [WebhookNotifier(webhook_conn_id=pipeline.alerts_conn_id, optional=True)]
    drift = drift_task(pipeline, score, alerts)
    dependencies, stability, throughput, explain, impact = monitoring_tasks(
        pipeline, champion, score, alerts, aws_conn_id
    )
    wait >> partitions >> validate >> score
    wait >> champion >> [score, dependencies]
    score >> [throughput, explain]
    stability >> drift >> impact
    if pipeline.max_model_age or pipeline.max_data_age:  # a staleness check needs a limit
        champion >> staleness_task(pipeline, alerts, aws_conn_id)
    if pipeline.business_metric:  # the proxy is checked against the business metric the drift checks log
        drift >> proxy_correlation_task(pipeline, alerts, score)
    if pipeline.canary:  # the challenger in shadow is judged on the batches just scored
        canary_tasks(pipeline, champion, score, alerts)


def intake_tasks(pipeline: PipelineFile, landing: str, aws_conn_id: str | None, champion: Any) -> tuple[Any, Any, Any]:
    """Wait for a batch in the landing folder, list its partitions, validate each (mapped): with the pipeline
    file's suite, else with the suite logged with the champion version that will score them."""
    wait = DatasetAvailableSensor(
        task_id="wait_for_batch",
        source="s3" if landing.startswith("s3://") else "local",
        path=landing,
        pattern=pipeline.batch_pattern,
        aws_conn_id=aws_conn_id,
        deferrable=True,  # wait in the triggerer, not in a worker slot
        poke_interval=60,
        timeout=6 * 3600,
        on_timeout="skip",  # nothing landed for this interval: skip, do not fail
    )
    partitions = ListPartitionsOperator(
        task_id="list_partitions", input_uri=landing, pattern=pipeline.batch_pattern, aws_conn_id=aws_conn_id
    )
    validate = ValidateDatasetOperator.partial(
        task_id="validate",
        pipeline=pipeline.name,
        suite_uri=str(pipeline.suite) if pipeline.suite else None,
        model_name=None if pipeline.suite else pipeline.model_name,
        model_version=None if pipeline.suite else champion.output["model_version"],
        aws_conn_id=aws_conn_id,
    ).expand_kwargs(partitions.output.map(validate_kwargs))
    return wait, partitions, validate


def scoring_tasks(pipeline: PipelineFile, partitions: Any, aws_conn_id: str | None, champion: Any) -> Any:
    """Score each partition with the resolved champion (mapped)."""
    score = ScoreBatchOperator.partial(
        task_id="score",
        model_name=pipeline.model_name,
        pipeline=pipeline.name,
        model_version=champion.output["model_version"],
        passthrough_columns=list(pipeline.passthrough_columns),
        shadow=pipeline.shadow,
        explain_top_k=pipeline.explain_top_k,
        invalid_values=pipeline.invalid_values,
        runtime=pipeline.runtime,
        on_empty=pipeline.on_empty,
        monitor_columns=None if pipeline.monitor_columns is None else list(pipeline.monitor_columns),
        aws_conn_id=aws_conn_id,
    ).expand_kwargs(partitions.output)
    return score


def drift_task(pipeline: PipelineFile, score: Any, alerts: list[Any]) -> Any:
    """Check each scored partition's serving log for drift (mapped); input drift goes to ``alerts``."""
    watched = {} if pipeline.monitor_columns is None else {"monitor_columns": list(pipeline.monitor_columns)}
    return CheckDriftOperator.partial(
        task_id="check_drift",
        pipeline=pipeline.name,
        model_name=pipeline.model_name,
        spec={**watched, **pipeline.drift_spec} or None,
        notifiers=alerts,
        policy=pipeline.drift_policy or None,
        # Declared here because a mapped operator's constructor defaults are not applied at parse time.
        outlets=[drift_alias(pipeline.name)],
        max_active_tis_per_dag=1,
        business_metric=pipeline.business_metric or None,  # measured with quality on labelled batches
    ).expand_kwargs(score.output.map(drift_kwargs))


def monitoring_tasks(
    pipeline: PipelineFile, champion: Any, score: Any, alerts: list[Any], aws_conn_id: str | None
) -> tuple[Any, Any, Any, Any, Any]:
    """The champion's dependencies, each partition's numerical stability, throughput and an explained row,
    and the impact of staleness on quality."""
    dependencies = CheckModelDependenciesOperator(
        task_id="check_dependencies",
        model_name=pipeline.model_name,
        model_version=champion.output["model_version"],
        notifiers=alerts,
    )
    stability = CheckNumericalStabilityOperator.partial(
        task_id="check_numerical_stability", notifiers=alerts, aws_conn_id=aws_conn_id
    ).expand_kwargs(score.output.map(stability_kwargs))
    throughput = CheckPerformanceOperator.partial(
        task_id="record_throughput",
        pipeline=pipeline.name,
        metric="scoring_throughput_rows_per_s",
        value_path="throughput_rows_per_s",
        max_drop="0.5",  # alert below half the trailing median
        notifiers=alerts,
    ).expand(receipt=score.output)
    explain = ExplainPredictionOperator.partial(
        task_id="explain_sample",
        model_name=pipeline.model_name,
        pipeline=pipeline.name,
        row_index=0,
        aws_conn_id=aws_conn_id,
    ).expand_kwargs(score.output.map(explain_kwargs))
    impact = MeasureStalenessImpactOperator(
        task_id="measure_staleness_impact",
        model_name=pipeline.model_name,
        batches=score.output,  # every scored partition, scored again by the earlier versions
        policy=pipeline.staleness_impact,
        notifiers=alerts,
        aws_conn_id=aws_conn_id,
    )
    return dependencies, stability, throughput, explain, impact


def staleness_task(pipeline: PipelineFile, alerts: list[Any], aws_conn_id: str | None) -> Any:
    """Check the champion's age and its data's age against the pipeline file's limits."""
    return CheckModelStalenessOperator(
        task_id="check_staleness",
        model_name=pipeline.model_name,
        pipeline=pipeline.name,
        max_model_age=pipeline.max_model_age,
        max_data_age=pipeline.max_data_age,
        trigger_retraining=pipeline.retrain_when_stale,
        notifiers=alerts,
        aws_conn_id=aws_conn_id,
    )


def canary_tasks(pipeline: PipelineFile, champion: Any, score: Any, alerts: list[Any]) -> None:
    """Judge the challenger on its shadow batches; promote it through the usual compare-and-set when it passes."""
    verdict = "{{ ti.xcom_pull(task_ids='" + pipeline.name + ".judge_challenger', key='" + VERDICT_KEY + "')"
    judge = JudgeChallengerOperator(
        task_id="judge_challenger",
        model_name=pipeline.model_name,
        receipts=score.output,
        policy=pipeline.canary,
        champion_version=champion.output["model_version"],
        promote_task_id=f"{pipeline.name}.promote_challenger",
        notifiers=alerts,
    )
    promote = PromoteModelOperator(
        task_id="promote_challenger",
        model_name=pipeline.model_name,
        pipeline=pipeline.name,
        version=verdict + "['version'] }}",
        expected_champion_version=verdict + "['champion_version'] }}",  # the champion it was shadowed against
    )
    score >> judge >> promote


def proxy_correlation_task(pipeline: PipelineFile, alerts: list[Any], score: Any) -> Any:
    """Check that the proxy metric still tracks the business metric, or the outcome measured on the
    served partitions when the pipeline file names one."""
    measured = {"outcome": pipeline.business_outcome, "batches": score.output} if pipeline.business_outcome else {}
    return CheckProxyCorrelationOperator(
        task_id="check_proxy_correlation",
        model_name=pipeline.model_name,
        business_metric=pipeline.business_metric,
        **pipeline.proxy_check,
        **measured,
        notifiers=alerts,
    )


def timetable(schedule: ServingSchedule) -> Any:
    """The DAG's schedule: a data-interval timetable, so every run's data_interval_start/end is the interval it
    serves (Airflow 3 turns a plain preset or timedelta into a timetable without an interval), or the asset."""
    if schedule.kind == "cron":  # the run for May starts on June 1 with data_interval_start = May 1
        return CronDataIntervalTimetable(schedule.value, timezone="UTC")
    if schedule.kind == "delta":
        return DeltaDataIntervalTimetable(schedule.interval)
    return Asset(name=schedule.value, uri=schedule.value)


def batch_dag(dag_id: str, schedule: ServingSchedule, pipelines: list[PipelineFile]) -> DAG:
    """The batch DAG of one serving schedule: a task group per pipeline, after the branch that picks them."""
    names = [p.name for p in pipelines]
    with DAG(
        dag_id=dag_id,
        schedule=timetable(schedule),
        start_date=pendulum.datetime(2013, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,  # the drift policy of a model is read-modify-write, batch after batch
        tags=["mlops", "serving"],
        doc_md=__doc__,
        params={
            "pipeline": Param(
                names[0] if names else "all",
                type="string",
                enum=[*names, "all"],
                description="Pipeline to serve in a manual run ('all': every pipeline this DAG serves).",
            ),
        },
    ) as batch:
        plan = BranchOnFunctionOperator(
            task_id="choose_pipelines",
            python_callable=choose_pipelines,
            op_kwargs={"pipelines": names, "alerts": {p.name: p.alerts_conn_id for p in pipelines}},
        )
        for pipeline in pipelines:
            with TaskGroup(group_id=pipeline.name) as group:
                pipeline_tasks(pipeline)
            plan >> group
    return batch


DAGS = {dag_id: batch_dag(dag_id, schedule, pipelines) for dag_id, (schedule, pipelines) in SERVED.items()}
dag = DAGS[DAG_ID]
