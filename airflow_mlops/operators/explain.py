"""Explain one prediction of a model version, as a task (the same as ``airflow-mlops explain``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.operators.base import MlopsBaseOperator, input_failures, model_failures

if TYPE_CHECKING:
    from airflow.sdk import Context


class ExplainPredictionOperator(MlopsBaseOperator):
    """Explain one row's prediction: inputs, the values fed to the model, the transformed columns,
    per-feature contributions, and the native and ONNX predictions side by side.

    The row is given as a mapping (``row``), or as the ``row_index``-th row of a Parquet file
    (``input_uri``; e.g. a scored partition's serving log). The explanation is written as JSON to
    ``{root}/{pipeline}/explanations/{partition}/{name}-v{version}-row{index}.json`` and returned.

    :param model_name: registered model name. (templated)
    :param pipeline: pipeline name (storage layout). (templated)
    :param alias: alias explained, ``champion`` by default. (templated)
    :param model_version: a pinned version, which wins over ``alias``. (templated)
    :param row: the row, ``{column: value}``. (templated)
    :param input_uri: a Parquet file to take the row from. (templated)
    :param row_index: position of the row in ``input_uri`` (0). (templated)
    :param partition: partition of the output; the run's partition by default. (templated)
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection. (templated)
    :param aws_conn_id: AWS connection for an S3 storage root. (templated)
    """

    template_fields: Sequence[str] = (
        "model_name", "pipeline", "alias", "model_version", "row", "input_uri", "row_index", "partition",
        "storage_root", "mlflow_conn_id", "aws_conn_id",
    )  # fmt: skip
    template_fields_renderers = {"row": "json"}
    ui_color = "#fff8e1"

    def __init__(
        self,
        *,
        model_name: str,
        pipeline: str,
        alias: str = "champion",
        model_version: str | None = None,
        row: dict[str, Any] | None = None,
        input_uri: str | None = None,
        row_index: int | str = 0,
        partition: str | None = None,
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.pipeline = pipeline
        self.alias = alias
        self.model_version = model_version
        self.row = row
        self.input_uri = input_uri
        self.row_index = row_index
        self.partition = partition
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        import json

        from airflow_mlops.core.scoring import explain_row, read_row
        from airflow_mlops.core.validation.json_safe import jsonable
        from airflow_mlops.hooks.ingestion import sql_engine

        root = self.storage
        with input_failures(), model_failures():  # a bad row or index fails the same way on a retry
            row, index = read_row(root, self.row, self.input_uri, self.row_index)
            ref = self.resolve_model(self.model_name, alias=self.alias, version=self.model_version)
            # JSON-safe: a missing feature value (NaN) in the row would make the XCom push fail.
            explanation = jsonable(explain_row(self.mlflow_client, ref, row, root, sql_engine).to_dict())
        partition = self.run_partition(context)
        uri = root.layout(self.pipeline, "explanations", partition, f"{ref.name}-v{ref.version}-row{index}.json")
        root.write_bytes(uri, json.dumps(explanation, indent=2, default=str).encode("utf-8"))
        top = explanation["contributions"][:3]
        self.log.info(
            "Explained row %s with %s v%s (%s): prediction %s; top contributions %s -> %s",
            index, ref.name, ref.version, explanation["method"], explanation["onnx"],
            [(c["feature"], round(c["contribution"], 4)) for c in top], uri,
        )  # fmt: skip
        return {**explanation, "uri": uri, "row_index": index}
