"""Data-side monitoring operators: model dependencies, upstream schema, feature importance, personal data."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.monitoring import MonitoringOperator, mlflow_client

if TYPE_CHECKING:
    from airflow.sdk import Context

IMPORTANCE_ARTIFACT = "importance/feature_importance.json"  # core.monitoring_registry.ARTIFACT_IMPORTANCE


class CheckModelDependenciesOperator(MonitoringOperator):
    """Warn when the packages a model version was trained with differ from this environment's.

    :param model_name: registered model name. (templated)
    :param alias: alias checked, ``champion`` by default. (templated)
    :param model_version: a pinned version, which wins over ``alias``. (templated)
    :param packages: the packages compared (all recorded ones when omitted); serving through ONNX needs
        ``onnxruntime`` and ``airflow_mlops`` to match most. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = ("model_name", "alias", "model_version", "packages", "mlflow_conn_id")
    default_fail_on = "never"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        model_version: str | None = None,
        packages: Sequence[str] | str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.model_version = model_version
        self.packages = packages
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.errors import ArtifactError
        from airflow_mlops.core.monitoring import checks as m
        from airflow_mlops.core.monitoring.facts import model_version_facts

        facts = model_version_facts(
            mlflow_client(self.mlflow_conn_id), self.model_name, alias=self.alias, version=self.model_version
        )
        recorded = facts.spec.get("trained_with")
        if not isinstance(recorded, dict) or not recorded:
            raise ArtifactError(
                f"Model {self.model_name!r} v{facts.version} records no package versions (trained_with)."
            )
        packages = [p.strip() for p in self.packages.split(",")] if isinstance(self.packages, str) else self.packages
        names = list(packages) if packages else list(recorded)
        # Recorded under the import name for the package itself; its distribution is airflow-mlops.
        current = m.installed_versions([n.replace("airflow_mlops", "airflow-mlops") for n in names])
        current = {n: current[n.replace("airflow_mlops", "airflow-mlops")] for n in names}
        finding = m.check_dependencies(recorded, current, packages=names)
        return self.conclude(context, finding, **facts.identity())


class CheckSourceSchemaOperator(MonitoringOperator):
    """Notify when a new snapshot's columns or types differ from the champion's training snapshot.

    :param model_name: registered model name. (templated)
    :param snapshot_uri: the new snapshot (the ingestion receipt's ``uri``). (templated)
    :param alias: alias compared with, ``champion`` by default. (templated)
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)

    A removed or retyped model feature is an alert and fails the task (``fail_on="alert"``); other
    changes notify. Before the first promotion (no ``alias`` yet) the finding is ``ok``: nothing to compare.
    """

    template_fields: Sequence[str] = (
        "model_name", "snapshot_uri", "alias", "storage_root", "mlflow_conn_id", "aws_conn_id"
    )  # fmt: skip

    def __init__(
        self,
        *,
        model_name: str,
        snapshot_uri: str,
        alias: str = "champion",
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.snapshot_uri = snapshot_uri
        self.alias = alias
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import registry
        from airflow_mlops.core.errors import SourceNotFoundError
        from airflow_mlops.core.monitoring import checks as m
        from airflow_mlops.core.monitoring.facts import model_version_facts, parquet_schema
        from airflow_mlops.hooks.storage import StorageHook

        root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
        client = mlflow_client(self.mlflow_conn_id)
        if registry.alias_version(client, self.model_name, self.alias) is None:
            # The first training of a model: there is no earlier schema to compare with.
            first = m.Finding(
                "source_schema", "ok", f"{self.model_name!r} has no {self.alias!r} yet: nothing to compare."
            )
            return self.conclude(context, first, snapshot_uri=self.snapshot_uri)
        facts = model_version_facts(client, self.model_name, alias=self.alias)
        if not facts.dataset_uri:
            raise SourceNotFoundError(f"Model {self.model_name!r} v{facts.version} records no training snapshot.")
        before = parquet_schema(root, facts.dataset_uri)
        after = parquet_schema(root, self.snapshot_uri)
        finding = m.check_schema_change(before, after, features=facts.features)
        return self.conclude(
            context, finding, **facts.identity(), training_snapshot=facts.dataset_uri, snapshot_uri=self.snapshot_uri
        )


class CheckFeatureImportanceOperator(MonitoringOperator):
    """Warn when a feature of a training run carries under ``min_share`` of the model's importance.

    Reads the run's ``importance/feature_importance.json`` (written by training).

    :param run_id: the training run (``TrainModelOperator``'s ``run_id``). (templated)
    :param min_share: smallest share of the total importance a feature must carry, 0.01. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = ("run_id", "min_share", "mlflow_conn_id")
    default_fail_on = "never"

    def __init__(
        self, *, run_id: str, min_share: float | str = 0.01, mlflow_conn_id: str | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.min_share = min_share
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.monitoring import checks as m
        from airflow_mlops.core.monitoring.facts import run_feature_importance

        importance = run_feature_importance(mlflow_client(self.mlflow_conn_id), self.run_id)
        finding = m.check_feature_importance(
            importance, min_share=m.parse_fraction(self.min_share, "min_share", default=0.01)
        )
        return self.conclude(context, finding, run_id=self.run_id)


class CheckPersonalDataOperator(MonitoringOperator):
    """Fail when a snapshot's text columns look like personal data (see ``check_personal_data``).

    :param snapshot_uri: the snapshot (the ingestion receipt's ``uri``). (templated)
    :param allow_columns: columns reviewed and allowed (a list or a comma-separated string). (templated)
    :param sample_rows: rows inspected (the first ones), 10000. (templated)
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = ("snapshot_uri", "allow_columns", "sample_rows", "storage_root", "aws_conn_id")

    def __init__(
        self,
        *,
        snapshot_uri: str,
        allow_columns: Sequence[str] | str = (),
        sample_rows: int | str = 10_000,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot_uri = snapshot_uri
        self.allow_columns = allow_columns
        self.sample_rows = sample_rows
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.monitoring import checks as m
        from airflow_mlops.core.monitoring.facts import read_text_columns
        from airflow_mlops.core.params import parse_number
        from airflow_mlops.hooks.storage import StorageHook

        root = StorageHook(self.storage_root, self.aws_conn_id).get_conn()
        rows = int(parse_number(self.sample_rows, "sample_rows", low=1, integer=True))
        allowed = self.allow_columns
        allow = [c.strip() for c in allowed.split(",") if c.strip()] if isinstance(allowed, str) else list(allowed)
        finding = m.check_personal_data(read_text_columns(root, self.snapshot_uri, rows), allow=allow)
        return self.conclude(context, finding, snapshot_uri=self.snapshot_uri)
