"""Drift monitoring operators: check a batch against the champion's reference, join delayed labels.

``CheckDriftOperator`` emits the drift asset event ``x-mlops://<pipeline>/drift`` only when the drift
policy says retrain. An ``Asset`` outlet would get an event after every successful run, so the
operator's outlet is an ``AssetAlias`` and the event is attached through it when, and only when, the
policy asks for it (Airflow 3 registers alias events on the asset, creating it if needed). A DAG
scheduled on ``drift_asset(pipeline)`` runs once per retrain decision.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, AssetAlias

from airflow_mlops.links.drift import DriftReportLink, QualityReportLink
from airflow_mlops.operators.base import MlopsBaseOperator, batch_time, input_failures

if TYPE_CHECKING:
    from airflow.sdk import BaseNotifier, Context


def drift_asset(pipeline: str) -> Asset:
    """The asset a retrain decision updates: ``x-mlops://<pipeline>/drift`` (its name is its URI)."""
    from airflow_mlops.core.contracts import asset_uri

    uri = asset_uri(pipeline, "drift")
    return Asset(name=uri, uri=uri)


def drift_alias(pipeline: str) -> AssetAlias:
    """The outlet of drift checks: events reach :func:`drift_asset` through it, only on retrain."""
    return AssetAlias(name=f"mlops-drift-{pipeline}")


class CheckDriftOperator(MlopsBaseOperator):
    """Compare a batch with the champion's training reference; decide whether to retrain.

    Writes a JSON summary and (per the spec's ``html_report``, ``on_alert`` by default) an HTML report
    under ``{root}/{pipeline}/drift/{partition}/``, logs drift share and per-column scores to MLflow as
    a time series (one step per batch) on a monitoring run of the champion, and updates the drift
    policy's state. When the policy says retrain, emits the ``x-mlops://<pipeline>/drift`` asset event
    with the reasons and figures in its extra. The receipt (XCom) carries the verdict, the decision and the figures.

    :param pipeline: pipeline name; the storage layout and the asset use it (not templated: the
        outlet is fixed when the DAG is parsed).
    :param current_uri: Parquet batch to check: a serving log, scored output, a labelled batch (with the
        target, which adds target drift and quality), or a raw batch of landing columns, which goes through
        the champion version's feature transforms first so their derived and joined columns are checked
        too. (templated)
    :param model_name: registered model whose ``champion`` alias gives the reference and its training
        spec. (templated)
    :param reference_uri: a reference Parquet file instead of the champion's. (templated)
    :param spec: :class:`~airflow_mlops.core.drift.spec.DriftSpec` parameters; columns default to the
        champion's training spec. (templated)
    :param policy: :class:`~airflow_mlops.core.drift.policy.DriftPolicy` parameters. (templated)
    :param partition: storage partition of the outputs; the run's partition by default (the snapshot's:
        data interval start, else logical date, else ``run_after``). (templated)
    :param as_of: ISO time of the batch for the policy's clock and the MLflow step; the data interval
        end by default. (templated)
    :param storage_root: storage root URI; ``[mlops] storage_root`` when omitted.
    :param aws_conn_id: AWS connection for an S3 storage root.
    :param mlflow_conn_id: MLflow connection; ``[mlops] mlflow_conn_id`` when omitted.
    :param log_to_mlflow: log the time series to MLflow.
    :param fail_on_schema_skew: after pushing the receipt, fail (no retry) when the columns differ.
    :param report_base_url: address that serves the storage root, for the report link; ``[mlops]
        report_base_url`` when omitted. (templated)
    :param business_metric: the pipeline's business metric
        (:class:`~airflow_mlops.core.pipeline.business.BusinessMetric` mapping): on a labelled batch it is
        measured with quality and logged as ``business.<name>``. (templated)
    :param notifiers: notifiers called when a monitored column the model does not read drifted
        (severity ``input_drift``; such drift triggers no retrain unless the policy says
        ``retrain_on_input_drift``).
    """

    template_fields: Sequence[str] = (
        "current_uri", "model_name", "reference_uri", "spec", "policy", "partition", "as_of", "report_base_url",
        "business_metric",
    )  # fmt: skip
    template_fields_renderers = {"spec": "json", "policy": "json", "business_metric": "json"}
    operator_extra_links = (DriftReportLink(), QualityReportLink())
    ui_color = "#ede7f6"

    def __init__(
        self,
        *,
        pipeline: str,
        current_uri: str,
        model_name: str | None = None,
        reference_uri: str | None = None,
        spec: dict[str, Any] | None = None,
        policy: dict[str, Any] | None = None,
        partition: str | None = None,
        as_of: str | None = None,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        log_to_mlflow: bool = True,
        fail_on_schema_skew: bool = False,
        report_base_url: str | None = None,
        business_metric: dict[str, Any] | None = None,
        notifiers: Sequence[BaseNotifier] = (),
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [drift_alias(pipeline)])
        # The policy state is read-modify-write: checks of one pipeline run one at a time by default.
        kwargs.setdefault("max_active_tis_per_dag", 1)
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.current_uri = current_uri
        self.model_name = model_name
        self.reference_uri = reference_uri
        self.spec = spec
        self.policy = policy
        self.partition = partition
        self.as_of = as_of
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id
        self.mlflow_conn_id = mlflow_conn_id
        self.log_to_mlflow = log_to_mlflow
        self.fail_on_schema_skew = fail_on_schema_skew
        self.report_base_url = report_base_url
        self.business_metric = business_metric
        self.notifiers = notifiers

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import drift
        from airflow_mlops.core.contracts import KIND_DRIFT
        from airflow_mlops.core.drift.policy import LABELLED_SUFFIX
        from airflow_mlops.core.errors import SpecError

        if not self.model_name and not self.reference_uri:
            raise SpecError("CheckDriftOperator needs 'model_name' (its champion's reference) or 'reference_uri'.")
        policy = drift.DriftPolicy.from_mapping(self.policy)
        root = self.storage
        partition = self.run_partition(context)
        root.layout(self.pipeline, KIND_DRIFT, partition)  # refuse bad names before any work
        as_of = self.as_of or batch_time(context).isoformat()
        with input_failures():
            ref, outcome, transforms = self._check(partition)
        result = outcome.result
        batch_id = partition + (LABELLED_SUFFIX if result.target is not None else "")
        observation = drift.observe(result, batch_id, as_of, ref["receipt"]["id"])
        state_uri = drift.state_uri(root, self.pipeline, self.model_name or ref["receipt"]["id"])
        decision = drift.decide_and_save(root, state_uri, policy, observation)
        drift.write_decision(root, outcome.outputs, decision, result)
        receipt = drift.receipt(result, decision, outcome.outputs, ref["receipt"], batch_id)
        receipt.update(current_uri=self.current_uri, partition=partition, state_uri=state_uri)
        if transforms is not None:
            receipt["feature_transforms"] = transforms
        if self.log_to_mlflow:
            receipt["mlflow_run_id"] = self._log_to_mlflow(ref, result, decision, observation.as_of)
        self._persist_links(context, outcome.outputs)
        if decision.retrain:
            receipt["asset_event"] = self._emit(context, receipt)
        if receipt["input_drift"]:
            self._notify_input_drift(context, receipt)
        self.log.info(
            "Drift check of %s: verdict %s, drift share %s, drifted %s; policy: %s %s",
            self.current_uri, result.verdict, result.drift_share, list(result.drifted_columns),
            decision.status, list(decision.reasons),
        )  # fmt: skip
        if self.fail_on_schema_skew and result.schema_skew.any:
            from airflow_mlops.exceptions import DataValidationFailed

            context["ti"].xcom_push(key="return_value", value=receipt)
            raise DataValidationFailed(f"Schema skew in {self.current_uri}: {result.schema_skew.to_dict()}")
        return receipt

    def _check(self, partition: str) -> tuple[dict[str, Any], Any, dict[str, Any] | None]:
        """Compare the batch with the reference and write the report: the reference, the outcome, and the
        receipt of the champion's feature transforms when the batch was raw and went through them."""
        from airflow_mlops.core import drift
        from airflow_mlops.hooks.ingestion import sql_engine

        with tempfile.TemporaryDirectory(prefix="mlops-drift-") as folder:
            ref = self._reference(folder)
            business = {"business_metric": self.business_metric} if self.business_metric else {}
            spec = drift.DriftSpec.from_mapping({**(self.spec or {}), **business}, ref["training_spec"])
            current = drift.with_champion_transforms(
                self.current_uri, ref["training_spec"], root=self.storage, pipeline=self.pipeline, folder=folder,
                sql_engine=sql_engine,
            )  # fmt: skip
            meta = {"pipeline": self.pipeline, "current_uri": self.current_uri, "reference": ref["receipt"],
                    **({"feature_transforms": current.transforms} if current.transforms else {})}  # fmt: skip
            outcome = drift.check_batch(self.storage, ref["location"], current.location, spec,
                                        pipeline=self.pipeline, partition=partition, metadata=meta,
                                        importance=ref["importance"])  # fmt: skip
        return ref, outcome, current.transforms

    def _persist_links(self, context: Context, outputs: Any) -> None:
        DriftReportLink.persist_uri(context, outputs.report_uri, self.storage.uri)
        QualityReportLink.persist_uri(context, outputs.quality_report_uri, self.storage.uri)

    def _reference(self, folder: str) -> dict[str, Any]:
        """Where the reference is, its training spec, and how the receipt names it."""
        if self.reference_uri:
            digest = hashlib.sha256(self.reference_uri.encode()).hexdigest()[:12]
            receipt = {"id": f"reference-{digest}", "uri": self.reference_uri, "model_name": self.model_name}
            return {
                "location": self.reference_uri, "training_spec": None, "receipt": receipt, "experiment": None,
                "importance": None,
            }  # fmt: skip
        from airflow_mlops.core.drift import champion_importance, fetch_champion_reference

        # Read from the champion alias at every check: after a promotion the new champion's reference,
        # spec and importance replace the old ones (and its policy state starts afresh, see DriftPolicy).
        champion = fetch_champion_reference(self.mlflow_client, str(self.model_name), folder)
        receipt = {
            "id": champion.reference_id, "model_name": champion.model_name, "version": champion.version,
            "run_id": champion.run_id,
        }  # fmt: skip
        return {
            "location": champion.reference_path, "training_spec": champion.training_spec, "receipt": receipt,
            "experiment": champion.experiment_id,
            "importance": champion_importance(self.mlflow_client, champion.run_id),
        }  # fmt: skip

    def _log_to_mlflow(self, ref: dict[str, Any], result: Any, decision: Any, as_of: str) -> str:
        from airflow_mlops.core import contracts, drift

        experiment = ref["experiment"] or self.mlflow_hook.ensure_experiment(f"{self.pipeline}-monitoring")
        tags = {contracts.TAG_PIPELINE: self.pipeline}
        if ref["receipt"].get("run_id"):
            tags[contracts.TAG_SOURCE_RUN_ID] = ref["receipt"]["run_id"]
        client = self.mlflow_client
        run_id = drift.monitoring_run(client, experiment, ref["receipt"]["id"], tags)
        moment = datetime.fromisoformat(as_of)
        extra = {"policy.alarm": float(decision.alarm), "policy.retrain": float(decision.retrain)}
        with drift.ended_run(client, run_id):
            drift.log_drift_metrics(
                client, run_id, result, int(moment.timestamp()), int(moment.timestamp() * 1000), extra
            )
        return run_id

    def _notify_input_drift(self, context: Context, receipt: dict[str, Any]) -> None:
        """Send the drift of monitored non-feature columns to the notifiers, at its own severity."""
        from airflow_mlops.operators.monitoring import ALERT_CONTEXT_KEY

        columns = [c["column"] for c in receipt["input_drift"]]
        finding = {
            "check": "input_drift", "severity": "input_drift", "details": {"columns": receipt["input_drift"]},
            "message": f"Input drift in {self.current_uri}, columns the model does not read: {columns}",
        }  # fmt: skip
        self.log.warning("%s", finding["message"])
        for notifier in self.notifiers:
            try:
                notifier({**context, ALERT_CONTEXT_KEY: finding})
            except Exception:  # a broken alert channel must not hide or replace the verdict
                self.log.exception("Notifier %s failed for the input drift finding", type(notifier).__name__)

    def _emit(self, context: Context, receipt: dict[str, Any]) -> dict[str, Any]:
        asset = drift_asset(self.pipeline)
        keys = ("reasons", "verdict", "drift_share", "drifted_columns", "quality", "batch_id", "as_of",
                "report_uri", "summary_uri", "reference", "partition")  # fmt: skip
        extra = {"reason": "; ".join(receipt["reasons"]), "pipeline": self.pipeline, **{k: receipt[k] for k in keys}}
        context["outlet_events"][drift_alias(self.pipeline)].add(asset, extra=extra)
        return {"uri": asset.uri, "extra": extra}


class JoinLabelsOperator(MlopsBaseOperator):
    """Join ground truth that became known later to past predictions; write the labelled batch.

    The labelled batch (predictions with a known label, the label column added) goes to
    ``{root}/{pipeline}/labels/{partition}/labelled.parquet``; a rerun after more labels arrived
    replaces it. Feed it to :class:`CheckDriftOperator` to monitor quality, not only inputs.

    :param pipeline: pipeline name (storage layout).
    :param predictions_uri: Parquet predictions of a past partition (scored output or serving log). (templated)
    :param labels_uri: Parquet ground truth keyed by the same ids. (templated)
    :param id_columns: columns identifying a prediction in both tables. (templated)
    :param target: label column name in the labelled batch (the model's target). (templated)
    :param source: ground-truth column the label comes from; ``target`` by default. (templated)
    :param op: optional comparison making a 0/1 label, e.g. ``>=``. (templated)
    :param value: right-hand side of ``op``, e.g. ``15``. (templated)
    :param partition: partition of the labelled batch; the run's partition by default. (templated)
    :param storage_root: storage root URI; ``[mlops] storage_root`` when omitted.
    :param aws_conn_id: AWS connection for an S3 storage root.
    """

    template_fields: Sequence[str] = (
        "predictions_uri", "labels_uri", "id_columns", "target", "source", "op", "value", "partition",
    )  # fmt: skip
    ui_color = "#ede7f6"

    def __init__(
        self,
        *,
        pipeline: str,
        predictions_uri: str,
        labels_uri: str,
        id_columns: list[str] | str,
        target: str,
        source: str | None = None,
        op: str | None = None,
        value: float | str | None = None,
        partition: str | None = None,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.predictions_uri = predictions_uri
        self.labels_uri = labels_uri
        self.id_columns = id_columns
        self.target = target
        self.source = source
        self.op = op
        self.value = value
        self.partition = partition
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import contracts
        from airflow_mlops.core.drift import LabelSpec, join_label_files

        spec = LabelSpec.from_mapping(
            {"id_columns": self.id_columns, "target": self.target, "source": self.source, "op": self.op,
             "value": self.value}
        )  # fmt: skip
        partition = self.run_partition(context)
        output = self.storage.layout(self.pipeline, contracts.KIND_LABELS, partition, "labelled.parquet")
        result = join_label_files(self.storage, self.predictions_uri, self.labels_uri, spec, output)
        self.log.info(
            "Joined labels (%s) to %s: %d labelled, %d pending, %d ground-truth rows without a prediction -> %s",
            spec.rule, self.predictions_uri, result.rows_labelled, result.rows_pending, result.labels_unmatched, output,
        )  # fmt: skip
        return {**result.to_dict(), "partition": partition}
