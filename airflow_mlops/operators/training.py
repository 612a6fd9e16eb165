"""Train a model on a dataset snapshot and record it in MLflow."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.links.training import MlflowTrainingRunLink
from airflow_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops.core.provenance import Bundle, SpecProvenance


class TrainModelOperator(MlopsBaseOperator):
    """Train the model a training spec describes on a snapshot; log it to MLflow; export it to ONNX.

    The task reads the snapshot (verifying its sha256), splits it (seeded random or time-based),
    fits the scikit-learn pipeline (preprocessing + LightGBM or any scikit-learn estimator), evaluates
    every split, exports the whole pipeline to ONNX and checks parity on the test split, writes the
    test split to ``{storage_root}/{pipeline}/evaluation/{partition}/test.parquet`` for the gate, and
    logs params, metrics, the dataset input, lineage tags, the native model, the ONNX file, the spec,
    a drift reference sample and plots to one MLflow run. See ``docs/training.md``.

    Failures that a retry cannot fix (a bad spec, data that does not fit it, leakage, failed ONNX
    parity, a snapshot whose sha256 changed) fail the task without retries; the MLflow run, if it
    was opened, is closed FAILED with the error in its ``mlops.error`` tag.

    :param pipeline: pipeline name, used in storage paths and as the default experiment (templated).
    :param snapshot_uri: Parquet snapshot to train on: inside the storage root, or a local file (templated).
    :param spec: training spec: a mapping, or the path of a YAML file; relative paths are looked up
        from the working folder, the DAG file's folder and its parent (templated).
    :param snapshot_sha256: sha256 recorded when the snapshot was ingested; training refuses a
        snapshot that no longer matches it (templated).
    :param experiment_name: MLflow experiment; ``mlops-<pipeline>`` when omitted (templated).
    :param partition: storage partition of the test split; the run's partition when omitted (data
        interval start, else logical date, else ``run_after``, as the snapshot's), see
        :func:`~airflow_mlops.operators.base.default_partition` (templated).
    :param run_name: MLflow run name; ``<pipeline>-<partition>`` when omitted (templated).
    :param mlflow_conn_id: MLflow connection; ``[mlops] mlflow_conn_id`` when omitted (the embedded
        store when that connection does not exist).
    :param storage_root: storage root URI; ``[mlops] storage_root`` when omitted.
    :param aws_conn_id: AWS connection for an ``s3://`` storage root; ``[mlops] storage_conn_id`` when omitted.
    :param feature_requirements: what may never be a feature, and why: the pipeline file's
        ``feature_requirements`` section (``PipelineFile.feature_requirements.to_dict()``). A spec whose
        features break one is refused before anything is read or logged; ``None`` checks nothing
        (templated).
    :param business_metric: the pipeline's business metric
        (:class:`~airflow_mlops.core.pipeline.business.BusinessMetric` mapping), measured on the test split and
        logged as ``test_<name>`` beside the proxy metrics (templated).
    :param suite_uri: the validation suite the snapshot passed (a suite file, or the one its validation
        inferred), logged to the run so that the model version carries it: serving validates batches with it
        when the pipeline names no suite file (templated).
    """

    template_fields: Sequence[str] = (
        "pipeline",
        "snapshot_uri",
        "spec",
        "snapshot_sha256",
        "experiment_name",
        "partition",
        "run_name",
        "feature_requirements",
        "business_metric",
        "suite_uri",
    )
    template_fields_renderers = {"spec": "json", "feature_requirements": "json", "business_metric": "json"}
    operator_extra_links = (MlflowTrainingRunLink(),)
    ui_color = "#e8f0fe"

    def __init__(
        self,
        *,
        pipeline: str,
        snapshot_uri: str,
        spec: Mapping[str, Any] | str,
        snapshot_sha256: str | None = None,
        experiment_name: str | None = None,
        partition: str | None = None,
        run_name: str | None = None,
        mlflow_conn_id: str | None = None,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        feature_requirements: Mapping[str, Any] | None = None,
        business_metric: Mapping[str, Any] | None = None,
        suite_uri: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.snapshot_uri = snapshot_uri
        self.spec = spec
        self.snapshot_sha256 = snapshot_sha256
        self.experiment_name = experiment_name
        self.partition = partition
        self.run_name = run_name
        self.mlflow_conn_id = mlflow_conn_id
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id
        self.feature_requirements = feature_requirements
        self.business_metric = business_metric
        self.suite_uri = suite_uri

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops import exceptions
        from airflow_mlops.core.errors import DataError, IntegrityError, SpecError
        from airflow_mlops.core.provenance import spec_provenance
        from airflow_mlops.core.training.export import ParityError
        from airflow_mlops.core.training.run import load_spec

        try:
            source = self._spec_source(context)
            spec = load_spec(source)
            provenance = spec_provenance(source, defined_in=dag_file(context), bundle=dag_bundle(context))
            receipt = self._train(context, spec, provenance)
            if self.suite_uri:
                self._log_suite(receipt["run_id"])
        except (DataError, IntegrityError) as exc:
            raise exceptions.DataValidationFailed(str(exc)) from exc
        except (SpecError, ParityError) as exc:
            raise AirflowFailException(str(exc)) from exc
        receipt["run_url"] = self.mlflow_hook.run_url(receipt["experiment_id"], receipt["run_id"])
        receipt["spec_provenance"] = provenance.to_dict()
        self._log_summary(receipt, provenance)
        return receipt

    def _train(self, context: Context, spec: Any, provenance: SpecProvenance) -> dict[str, Any]:
        """Open the MLflow run (its link published at once) and run the core training; the receipt."""
        from airflow_mlops.core.pipeline.requirements import FeatureRequirements
        from airflow_mlops.core.training.run import run_training
        from airflow_mlops.hooks.ingestion import sql_engine

        def publish_link(experiment_id: str, run_id: str) -> None:
            MlflowTrainingRunLink.persist(context, experiment_id=experiment_id, run_id=run_id)

        requirements = (
            None
            if self.feature_requirements is None
            else FeatureRequirements.from_mapping(
                self.feature_requirements, where="The 'feature_requirements' of TrainModelOperator"
            )
        )
        root = self.storage
        self.mlflow_hook.activate()
        experiment_id = self.mlflow_hook.ensure_experiment(self.experiment_name or f"mlops-{self.pipeline}")
        return run_training(
            spec,
            root=root,
            snapshot_uri=self.snapshot_uri,
            snapshot_sha256=self.snapshot_sha256 or None,
            pipeline=self.pipeline,
            partition=self.run_partition(context),
            experiment_id=experiment_id,
            tags={**lineage_tags(context), **provenance.tags()},
            run_name=self.run_name,
            on_start=publish_link,
            requirements=requirements,
            business_metric=self.business_metric or None,
            sql_engine=sql_engine,
        ).to_dict()

    def _log_suite(self, run_id: str) -> None:
        """Version the snapshot's suite with the model (``contracts.ARTIFACT_SUITE`` on the run)."""
        from airflow_mlops.core.validation.suite import log_suite_file

        log_suite_file(self.mlflow_client, run_id, str(self.suite_uri), self.storage)

    def _log_summary(self, receipt: dict[str, Any], provenance: SpecProvenance) -> None:
        test = receipt["metrics"]["test"]
        metric = receipt["primary_metric"]
        self.log.info(
            "Trained %s on %s rows (%s dropped without target): MLflow run %s, test %s = %.4f, "
            "ONNX sha256 %s, parity %s = %.2g.",
            self.pipeline,
            receipt["rows_used"],
            receipt["rows_dropped"],
            receipt["run_id"],
            metric,
            test.get(metric, float("nan")),
            receipt["onnx_sha256"],
            receipt["parity"]["measure"],
            receipt["parity"]["value"],
        )
        self.log.info("Spec %s: %s %s", provenance.source, provenance.state, provenance.note)

    def _spec_source(self, context: Context) -> Mapping[str, Any] | str:
        if not isinstance(self.spec, str):
            return self.spec
        path = Path(self.spec.strip())
        if path.is_absolute():
            return str(path)
        dag = context.get("dag")
        fileloc = getattr(dag, "fileloc", None)
        folders = [Path.cwd()] + ([Path(fileloc).parent, Path(fileloc).parent.parent] if fileloc else [])
        for folder in folders:
            if (folder / path).is_file():
                return str(folder / path)
        return str(path)  # not found: the core names the path in its error


def dag_file(context: Context) -> str | None:
    """The DAG file of the running task (where a spec given as a mapping is written)."""
    fileloc = getattr(context.get("dag"), "fileloc", None)
    return str(fileloc) if fileloc else None


def dag_bundle(context: Context) -> Bundle | None:
    """The DAG bundle the task runs from, when the task runner made one (not in ``dag.test()``).

    The version is the one the DAG run is pinned to (a commit for ``GitDagBundle``); ``repo_path``
    is ``GitDagBundle``'s checkout of that version, which holds more than the DAG folder (``include/``).
    """
    from airflow_mlops.core.provenance import Bundle

    bundle = getattr(context["ti"], "bundle_instance", None)
    if bundle is None:
        return None
    version = getattr(bundle, "version", None)
    root = getattr(bundle, "repo_path", None) or getattr(bundle, "path", None)
    return Bundle(
        name=str(getattr(bundle, "name", "")),
        version=str(version) if version else None,
        root=str(root) if root else None,
    )


def lineage_tags(context: Context) -> dict[str, str]:
    """MLflow lineage tags from the task's context (DAG, run, task, try, code version)."""
    from airflow_mlops.core import contracts

    ti = context["ti"]
    tags = {
        contracts.TAG_DAG_ID: str(ti.dag_id),
        contracts.TAG_RUN_ID: str(ti.run_id),
        contracts.TAG_TASK_ID: str(ti.task_id),
        contracts.TAG_TRY_NUMBER: str(ti.try_number),
    }
    dag = context.get("dag")
    sha = git_sha(Path(dag.fileloc).parent) if getattr(dag, "fileloc", None) else None
    if sha:
        tags[contracts.TAG_GIT_SHA] = sha
    return tags


def git_sha(folder: Path) -> str | None:
    """Commit of the git checkout holding ``folder`` (the DAG code), or None when it is not one."""
    from airflow_mlops.core.git import head_commit

    return head_commit(folder)


def new_data(ti: Any, params: dict[str, Any], group: str, model_name: str, **_: Any) -> bool:
    """Go on unless the snapshot is the very one the champion was trained on (``force_retrain`` overrides)."""
    from airflow_mlops.core import contracts, registry
    from airflow_mlops.hooks.mlflow import MlflowHook

    snapshot = ti.xcom_pull(task_ids=f"{group}.ingest")
    if params.get("force_retrain"):
        print("force_retrain is set: training whatever the snapshot.")
        return True
    client = MlflowHook().get_conn()
    version = registry.alias_version(client, model_name, contracts.ALIAS_CHAMPION)
    if version is None:
        print(f"{model_name} has no champion yet: training.")
        return True
    run_id = client.get_model_version(model_name, version).run_id
    trained_on = client.get_run(run_id).data.tags.get(contracts.TAG_DATASET_SHA256)
    if trained_on == snapshot["sha256"]:
        print(f"Champion version {version} was trained on this very snapshot ({trained_on}); skipping.")
        return False
    print(f"New snapshot {snapshot['sha256']} (champion version {version} was trained on {trained_on}).")
    return True


def train_if_new_data(group: str, **kwargs: Any) -> list[str]:
    """The branch form of :func:`new_data`: train, or skip everything after (a short-circuit)."""
    return [f"{group}.train"] if new_data(group=group, **kwargs) else []
