"""Reproducibility operators: training/serving skew and retraining the champion's spec.

Both are blocking by default (``fail_on="alert"``): a serving path that disagrees with training, or a
model that cannot be rebuilt from its recorded inputs, is not a model to keep serving silently. They
notify through ``notifiers`` like every monitoring operator.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import model_failures
from airflow_mlops.operators.monitoring import MonitoringOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class CheckTrainingServingSkewOperator(MonitoringOperator):
    """Score the training rows kept with a model version through the serving path and compare with the
    predictions made for them at training time.

    :param model_name: registered model name. (templated)
    :param alias: alias checked, ``champion`` by default. (templated)
    :param model_version: a pinned version, which wins over ``alias``. (templated)
    :param tolerance: largest probability (or relative value) difference accepted, 1e-4. (templated)
    :param max_rows: rows of the reference sample scored (all when omitted). (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    """

    template_fields: Sequence[str] = ("model_name", "alias", "model_version", "tolerance", "max_rows", "mlflow_conn_id")

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        model_version: str | None = None,
        tolerance: float | str = 1e-4,
        max_rows: int | str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.model_version = model_version
        self.tolerance = tolerance
        self.max_rows = max_rows
        self.mlflow_conn_id = mlflow_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.params import parse_number
        from airflow_mlops.core.reproducibility import check_training_serving_skew, read_reference
        from airflow_mlops.core.serving import load_serving_model, run_transformer
        from airflow_mlops.hooks.ingestion import sql_engine

        client = self.mlflow_client
        ref = self.resolve_model(self.model_name, alias=self.alias, version=self.model_version)
        with model_failures():
            model = load_serving_model(client, ref)
        max_rows = self.max_rows
        finding = check_training_serving_skew(
            read_reference(client, ref.run_id),
            model,
            tolerance=parse_number(self.tolerance, "tolerance"),
            max_rows=int(parse_number(max_rows, "max_rows", low=1, integer=True))
            if max_rows not in (None, "")
            else None,
            transformer=run_transformer(client, ref.run_id, model, self.storage, sql_engine),
        )
        return self.conclude(context, finding, run_id=ref.run_id, alias=ref.alias)


class CheckReproducibilityOperator(MonitoringOperator):
    """Retrain a model version's spec on its recorded snapshot and compare metrics and ONNX sha256.

    :param model_name: registered model name. (templated)
    :param alias: alias checked, ``champion`` by default. (templated)
    :param model_version: a pinned version, which wins over ``alias``. (templated)
    :param tolerance: largest absolute metric difference accepted, 1e-6. (templated)
    :param require_identical_onnx: a different ONNX sha256 with equal metrics is an alert, not a
        warning. (templated)
    :param storage_root: storage root holding the snapshot; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name", "alias", "model_version", "tolerance", "require_identical_onnx", "storage_root",
        "mlflow_conn_id", "aws_conn_id",
    )  # fmt: skip

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        model_version: str | None = None,
        tolerance: float | str = 1e-6,
        require_identical_onnx: bool | str = False,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.model_version = model_version
        self.tolerance = tolerance
        self.require_identical_onnx = require_identical_onnx
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def run_check(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.errors import IntegrityError
        from airflow_mlops.core.monitoring import model_version_facts
        from airflow_mlops.core.params import parse_flag, parse_number
        from airflow_mlops.core.reproducibility import check_reproducibility
        from airflow_mlops.exceptions import DataValidationFailed
        from airflow_mlops.hooks.ingestion import sql_engine

        client, root = self.mlflow_client, self.storage
        facts = model_version_facts(client, self.model_name, alias=self.alias, version=self.model_version)
        try:
            finding = check_reproducibility(
                facts,
                root,
                tolerance=parse_number(self.tolerance, "tolerance"),
                require_identical_onnx=parse_flag(self.require_identical_onnx, "The 'require_identical_onnx' argument"),
                sql_engine=sql_engine,
            )
        except IntegrityError as exc:  # the snapshot changed since training: nothing to reproduce from
            raise DataValidationFailed(str(exc)) from exc
        return self.conclude(context, finding)
