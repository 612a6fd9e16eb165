"""Spec provenance: was the model trained on a spec that is committed, unchanged, in the repository?

Training records the facts with its MLflow run (``mlops.spec_*`` tags, see
:mod:`airflow_mlops.core.provenance`); this check reads them back before promotion and judges them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.monitoring import MonitoringOperator, mlflow_client

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckSpecProvenanceOperator(MonitoringOperator):
    """Judge the spec provenance recorded with a training run: a spec committed at the repository's HEAD
    and unchanged (or taken from a versioned DAG bundle) is ok; a modified, untracked or unknown one is
    a finding, whose severity ``review`` chooses.

    :param model_name: registered model whose version is judged (with ``model_version`` or ``alias``). (templated)
    :param model_version: the version (``RegisterModelOperator``'s ``version``), which wins over ``alias``. (templated)
    :param alias: alias judged when no version is given, ``champion`` by default. (templated)
    :param run_id: a training run judged directly, instead of a model version. (templated)
    :param review: ``require`` (a finding is an alert: the task fails, promotion does not happen),
        ``warn`` (a finding notifies, the pipeline goes on) or ``off`` (recorded, never notified). (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = ("model_name", "model_version", "alias", "run_id", "review", "mlflow_conn_id")

    def __init__(
        self,
        *,
        model_name: str | None = None,
        model_version: str | None = None,
        alias: str = "champion",
        run_id: str | None = None,
        review: str = "warn",
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.model_version = model_version
        self.alias = alias
        self.run_id = run_id
        self.review = review
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.pipeline.file import parse_review
        from airflow_mlops.core.provenance import SpecProvenance, check_spec_provenance
        from airflow_mlops.core.serving import resolve_model_version

        review = parse_review(self.review, "The 'review' argument")
        client = mlflow_client(self.mlflow_conn_id)
        identity: dict[str, Any] = {}
        run_id = self.run_id
        if not run_id:
            if not self.model_name:
                raise SpecError("Give 'run_id', or 'model_name' with 'model_version' or 'alias': nothing to judge.")
            ref = resolve_model_version(client, self.model_name, alias=self.alias, version=self.model_version)
            run_id = ref.run_id
            identity = {"model_name": self.model_name, "model_version": ref.version, "alias": ref.alias}
        tags = client.get_run(run_id).data.tags
        finding = check_spec_provenance(SpecProvenance.from_tags(tags), review)
        return self.conclude(context, finding, run_id=run_id, **identity)
