"""Batch scoring operators: pin the champion once per run, list partitions, score each partition.

A batch-serving DAG fans partitions out with dynamic task mapping, so that a Celery or Kubernetes
deployment scores them on many workers::

    champion = ResolveModelVersionOperator(task_id="resolve_champion", model_name="flights")
    partitions = ListPartitionsOperator(task_id="list_partitions", input_uri="s3://landing/flights/")
    ScoreBatchOperator.partial(
        task_id="score",
        model_name="flights",
        model_version=champion.output["model_version"],
        pipeline="flights",
    ).expand_kwargs(partitions.output)

The model version is resolved once, upstream, and every mapped task scores with that same version
even if the alias moves while the run is in progress.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.links.scoring import PredictionsLink, ShadowReportLink
from airflow_mlops.operators.base import MlopsBaseOperator, input_failures, model_failures, run_moment

if TYPE_CHECKING:
    from airflow.sdk import Context


def _input_filesystem(uri: str, aws_conn_id: str | None) -> Any:
    """A pyarrow filesystem for an input URI: S3 through the AWS connection, else the local disk."""
    import pyarrow.fs as pafs

    from airflow_mlops.hooks.storage import StorageHook

    if not str(uri).startswith("s3://"):
        return pafs.LocalFileSystem()
    bucket = str(uri)[len("s3://") :].split("/", 1)[0]
    return StorageHook(storage_root=f"s3://{bucket}", aws_conn_id=aws_conn_id).get_conn().filesystem


class ResolveModelVersionOperator(MlopsBaseOperator):
    """Resolve a registered model's alias to a version, once, and check its ONNX file.

    Mapped scoring tasks take the version from this task's XCom (key ``model_version``), so that every
    partition of a run is scored by the same version. The ONNX file is downloaded and verified against
    the sha256 recorded at registration here already, so that a tampered model fails once, before the
    fan-out, instead of in every mapped task.

    :param model_name: registered model name. (templated)
    :param alias: the alias to resolve, ``champion`` by default. (templated)
    :param mlflow_conn_id: MLflow connection; ``[mlops] mlflow_conn_id`` when omitted. (templated)

    Returns ``{"model_name", "model_version", "alias", "run_id", "onnx_sha256"}``.
    Raises ``ModelIntegrityFailure`` (no retry) when the file does not match its recorded sha256.
    """

    template_fields: Sequence[str] = ("model_name", "alias", "mlflow_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        model_name: str,
        alias: str = "champion",
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = model_name
        self.alias = alias
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.serving import load_serving_model

        ref = self.resolve_model(self.model_name, alias=self.alias)
        with model_failures():
            load_serving_model(self.mlflow_client, ref)
        context["ti"].xcom_push(key="model_version", value=ref.version)
        self.log.info(
            "Alias %r of model %r is version %s (sha256 %s).", ref.alias, ref.name, ref.version, ref.onnx_sha256
        )
        return ref.to_dict()


class ListPartitionsOperator(MlopsBaseOperator):
    """List the partitions under a prefix, for ``ScoreBatchOperator.partial(...).expand_kwargs(...)``.

    A partition is a sub-folder (``month=2013-01/``) or a ``.parquet`` file directly under the prefix;
    hidden entries (``.x``, ``_x``) are skipped. Each item is ``{"input_uri": ..., "partition": ...}``,
    the partition key being the folder name or the file name without ``.parquet``.

    :param input_uri: the prefix: a local folder or ``s3://bucket/prefix/``. (templated)
    :param pattern: glob the partition names must match, ``*`` by default. (templated)
    :param aws_conn_id: AWS connection for ``s3://`` prefixes; ``[mlops] storage_conn_id`` when omitted.
        (templated)
    """

    template_fields: Sequence[str] = ("input_uri", "pattern", "aws_conn_id")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        input_uri: str,
        pattern: str = "*",
        aws_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.pattern = pattern
        self.aws_conn_id = aws_conn_id

    def execute(self, context: Context) -> list[dict[str, str]]:
        from airflow_mlops.core.scoring import list_partitions

        partitions = list_partitions(self.input_uri, _input_filesystem(self.input_uri, self.aws_conn_id), self.pattern)
        self.log.info("Found %d partition(s) under %s matching %r.", len(partitions), self.input_uri, self.pattern)
        return partitions


class ScoreBatchOperator(MlopsBaseOperator):
    """Score one partition with a registered model's ONNX graph and write the predictions atomically.

    The model is the version ``alias`` points at (resolved once, at the start), or ``model_version``
    when given (mapped tasks take it from :class:`ResolveModelVersionOperator`). Its ONNX file is
    checked against the sha256 recorded at registration before anything is scored; nothing is
    unpickled. The input is streamed in bounded batches, so memory does not grow with its size.

    Outputs under the storage root (see docs/scoring.md for the columns):
    ``{pipeline}/predictions/{partition}/predictions.parquet``, the serving log sample
    ``{pipeline}/serving_log/{partition}/sample.parquet`` and, with ``shadow``, the champion vs
    challenger report ``{pipeline}/shadow/{partition}/report.json``. A rerun replaces them.

    :param input_uri: a Parquet file, a folder of them or a glob; local or ``s3://``. (templated)
    :param model_name: registered model name. (templated)
    :param pipeline: pipeline name, the first segment of the storage layout. (templated)
    :param partition: partition key of the outputs; defaults to the run's partition (data interval
        start, else logical date, else ``run_after``, in UTC ISO 8601). Mapped tasks must give one each
        (``ListPartitionsOperator`` does). (templated)
    :param alias: alias resolved when ``model_version`` is not given, ``champion`` by default. (templated)
    :param model_version: a pinned version, which wins over ``alias``. (templated)
    :param passthrough_columns: input columns copied to the output (ids, keys): a list, or a
        comma-separated string. (templated)
    :param monitor_columns: input columns the model does not read that the serving log keeps for drift
        monitoring; every flat such column when omitted. (templated)
    :param chunk_rows: rows per record batch (65536). (templated)
    :param threads: ONNX Runtime intra-op threads (1; match the worker's CPU share). (templated)
    :param shadow: also score with ``shadow_alias`` and write the comparison report; the served
        output is unaffected, and a missing or broken challenger only shows in the report. (templated)
    :param shadow_alias: alias of the challenger, ``challenger`` by default. (templated)
    :param explain_top_k: add the k features that moved each row's score most (occlusion against the
        training reference's typical row; one extra model run per feature). 0 turns it off. (templated)
    :param serving_log_rows: rows in the serving log sample (10000); 0 turns it off. (templated)
    :param invalid_values: ``count`` (default: score +inf, -inf and values beyond float32's range in
        numeric features, count them per column in the receipt's ``input_checks`` and log a warning) or
        ``refuse`` (fail without retry naming the columns and counts). Missing values are always scored
        and counted. (templated)
    :param on_empty: ``fail`` (default, as ingestion: an input with no rows fails without retry) or
        ``skip`` (write nothing, push the receipt under the XCom key ``receipt`` and skip the task).
        (templated)
    :param runtime: ``onnx`` (default: the registered ONNX graph) or ``compiled`` (LightGBM models: the
        trees compiled on this worker from the run's sha256-checked LightGBM text model, cached under
        ``{state_dir}/compiled``, checked against the ONNX graph at load; needs ``airflow-mlops[compiled]``).
        (templated)
    :param storage_root: storage root of the outputs; ``[mlops] storage_root`` when omitted. (templated)
    :param mlflow_conn_id: MLflow connection; ``[mlops] mlflow_conn_id`` when omitted. (templated)
    :param aws_conn_id: AWS connection for S3 input and storage; ``[mlops] storage_conn_id`` when
        omitted. (templated)

    Returns the receipt: output_uri, rows_in, rows_out, model_name, model_version, model_alias, run_id,
    onnx_sha256, throughput_rows_per_s, seconds, serving_log_uri, shadow_report_uri, shadow summary,
    on_empty, input_checks (missing, non-finite values and unseen categories per column, columns cast to
    strings) and warnings.
    Raises ``ModelIntegrityFailure`` (sha256 mismatch, ONNX file deleted after registration) and
    ``DataValidationFailed`` (missing column, uncoercible value, corrupt Parquet, NaN prediction, an
    infinity under ``invalid_values="refuse"``, no rows under ``on_empty="fail"``) without retry.
    """

    template_fields: Sequence[str] = (
        "input_uri", "model_name", "pipeline", "partition", "alias", "model_version", "passthrough_columns",
        "chunk_rows", "threads", "shadow", "shadow_alias", "explain_top_k", "serving_log_rows", "invalid_values",
        "on_empty", "storage_root", "mlflow_conn_id", "aws_conn_id", "monitor_columns", "runtime",
    )  # fmt: skip
    operator_extra_links = (PredictionsLink(), ShadowReportLink())
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        input_uri: str,
        model_name: str,
        pipeline: str,
        partition: str | None = None,
        alias: str = "champion",
        model_version: str | None = None,
        passthrough_columns: Sequence[str] | str = (),
        chunk_rows: int | str = 65_536,
        threads: int | str = 1,
        shadow: bool | str = False,
        shadow_alias: str = "challenger",
        explain_top_k: int | str = 0,
        serving_log_rows: int | str = 10_000,
        invalid_values: str = "count",
        on_empty: str = "fail",
        storage_root: str | None = None,
        mlflow_conn_id: str | None = None,
        aws_conn_id: str | None = None,
        monitor_columns: Sequence[str] | str | None = None,
        runtime: str = "onnx",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.input_uri = input_uri
        self.model_name = model_name
        self.pipeline = pipeline
        self.partition = partition
        self.alias = alias
        self.model_version = model_version
        self.passthrough_columns = passthrough_columns
        self.chunk_rows = chunk_rows
        self.threads = threads
        self.shadow = shadow
        self.shadow_alias = shadow_alias
        self.explain_top_k = explain_top_k
        self.serving_log_rows = serving_log_rows
        self.invalid_values = invalid_values
        self.on_empty = on_empty
        self.storage_root = storage_root
        self.mlflow_conn_id = mlflow_conn_id
        self.aws_conn_id = aws_conn_id
        self.monitor_columns = monitor_columns
        self.runtime = runtime

    def _spec(self, context: Context) -> Any:
        from airflow_mlops.core.errors import SpecError
        from airflow_mlops.core.scoring import ScoringSpec

        # The moment the run's partition stands for, not the wall clock: a rerun writes the same bytes.
        # Runs without a logical date (manual runs in Airflow 3) use run_after, fixed for the run too.
        scored_at = run_moment(context)
        if not self.partition and getattr(context["ti"], "map_index", -1) not in (-1, None):
            raise SpecError(
                "A mapped ScoreBatchOperator needs a 'partition' per mapped task, or all of them would write "
                "to the same place: expand over ListPartitionsOperator's output with expand_kwargs()."
            )
        return ScoringSpec.from_mapping(
            {
                "pipeline": self.pipeline,
                "partition": self.run_partition(context),
                "input_uri": self.input_uri,
                "scored_at": scored_at,
                "passthrough_columns": self.passthrough_columns,
                "chunk_rows": self.chunk_rows,
                "threads": self.threads,
                "serving_log_rows": self.serving_log_rows,
                "explain_top_k": self.explain_top_k,
                "invalid_values": self.invalid_values,
                "on_empty": self.on_empty,
                "monitor_columns": self.monitor_columns,
                "runtime": self.runtime,
            }
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core.params import parse_flag
        from airflow_mlops.core.scoring import score_partition
        from airflow_mlops.hooks.ingestion import sql_engine

        spec = self._spec(context)
        shadow = parse_flag(self.shadow, "The 'shadow' parameter")
        root = self.storage
        ref = self.resolve_model(self.model_name, alias=self.alias, version=self.model_version)
        with input_failures(), model_failures():
            model, challenger, skipped = self._models(ref, spec, shadow)
            on_root_s3 = root.is_s3 and spec.input_uri.startswith("s3://")
            input_fs = root.filesystem if on_root_s3 else _input_filesystem(spec.input_uri, self.aws_conn_id)
            result = score_partition(
                root, spec, model, input_fs=input_fs, shadow=challenger, shadow_skipped=skipped, sql_engine=sql_engine
            )
        receipt = {**result.to_dict(), "input_uri": spec.input_uri, "model_alias": ref.alias, "run_id": ref.run_id}
        PredictionsLink.persist_uri(context, result.output_uri, root.uri)
        ShadowReportLink.persist_uri(context, result.shadow_report_uri, root.uri)
        receipt["runtime"] = spec.runtime
        if result.skipped is not None:
            from airflow.sdk.exceptions import AirflowSkipException

            context["ti"].xcom_push(key="receipt", value=receipt)
            raise AirflowSkipException(result.skipped)
        self.log.info(
            "Scored %d rows of %s with %s version %s in %.1f s (%.0f rows/s) -> %s",
            result.rows_out, spec.input_uri, ref.name, ref.version, result.seconds, result.rows_per_second,
            result.output_uri,
        )  # fmt: skip
        return receipt

    def _models(self, ref: Any, spec: Any, shadow: bool) -> tuple[Any, Any, Any]:
        """The served model, its verified ONNX loaded; with ``shadow``, the challenger or why it was skipped."""
        import os

        from airflow_mlops import settings
        from airflow_mlops.core.scoring import load_challenger
        from airflow_mlops.core.serving import load_serving_model

        client = self.mlflow_client
        model = load_serving_model(
            client,
            ref,
            threads=spec.threads,
            with_baseline=spec.explain_top_k > 0,
            runtime=spec.runtime,
            cache_dir=os.path.join(settings.state_dir(), "compiled") if spec.runtime == "compiled" else None,
        )
        if not shadow:
            return model, None, None
        challenger, skipped = load_challenger(
            client, self.model_name, champion=model, alias=self.shadow_alias, threads=spec.threads
        )
        return model, challenger, skipped
