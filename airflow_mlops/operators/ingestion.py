"""Ingest one source into the immutable dataset snapshot of a partition, and emit the dataset asset event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import Asset, BaseOperator

from airflow_mlops.core import contracts
from airflow_mlops.hooks.ingestion import SqlSourceHook
from airflow_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


def dataset_asset(pipeline: str) -> Asset:
    """The asset ``x-mlops://<pipeline>/dataset`` that ingestion updates; schedule DAGs on it."""
    uri = contracts.asset_uri(pipeline, "dataset")
    return Asset(name=uri, uri=uri)


class IngestDatasetOperator(MlopsBaseOperator):
    """Read one source into the Parquet snapshot of a partition under the storage root.

    The snapshot lands at ``{storage_root}/{pipeline}/snapshots/{partition}/data.parquet``, written
    atomically; rerunning the partition replaces it with identical bytes when the source is unchanged.
    Memory is bounded by ``chunk_rows``, not by the size of the source. The receipt (uri, rows, columns,
    schema, schema fingerprint, sha256, source watermark, partition, warnings) is returned to XCom and
    carried in the extra of the asset event ``x-mlops://<pipeline>/dataset``, which this operator
    declares as outlet. Each warning (something accepted that deserves a look) is also logged.

    SQL values never enter the SQL text: ``query`` is a Jinja template whose every ``{{ ... }}``
    becomes a bound parameter (``WHERE ts >= {{ data_interval_start }}``), and ``query_params`` binds
    named ``:placeholders``. A query ending in ``.sql`` is read from the DAG's template search path.

    :param pipeline: pipeline name: the first segment of the snapshot path and of the asset URI.
    :param source: ``sql``, ``s3`` or ``local``.
    :param query: SQL query (``sql`` source); ``{{ ... }}`` expressions are bound, not formatted.
    :param table: ``table`` or ``schema.table`` to read whole instead of a query. (templated)
    :param query_params: values for the query's ``:name`` placeholders. (templated)
    :param path: ``s3://bucket/prefix`` or local folder, or one file. (templated)
    :param pattern: glob below ``path``: ``*.parquet``, ``2013-*.csv``, ``**/*.parquet``. (templated)
    :param format: ``csv`` or ``parquet``; inferred from ``pattern`` or ``path`` when omitted.
    :param csv_delimiter: CSV field delimiter.
    :param schema: ``{column: type}`` applied on read (int64, float64, string, bool, date, timestamp,
        timestamptz, ...); declared columns must exist and convert. (templated)
    :param keep_extra_columns: keep undeclared columns (normalised types) or drop them.
    :param watermark_column: column whose maximum is the receipt's ``source_watermark``.
    :param order_by: SQL columns to order rows by (reruns then give identical bytes).
    :param since: SQL only: rows with ``watermark_column > since``. (templated)
    :param until: SQL only: rows with ``watermark_column <= until``. (templated)
    :param incremental: SQL only: ``since`` is the watermark of the latest earlier partition.
    :param chunk_rows: rows per chunk read and per Parquet row group.
    :param on_empty: ``fail`` (raise) or ``skip`` (skip the task, write nothing) when no rows come back.
    :param partition: partition key; the run's data interval start (else logical date, else ``run_after``)
        when omitted, see :func:`~airflow_mlops.operators.base.default_partition`. (templated)
    :param sql_conn_id: SQL connection (see :class:`~airflow_mlops.hooks.ingestion.SqlSourceHook`).
    :param aws_conn_id: AWS connection for ``s3`` sources.
    :param storage_root: storage root; ``[mlops] storage_root`` when omitted.
    :param storage_conn_id: AWS connection of an S3 storage root; ``[mlops] storage_conn_id`` when omitted.
    """

    template_fields: Sequence[str] = (
        "table", "query_params", "path", "pattern", "schema", "since", "until", "partition",
    )  # fmt: skip
    template_fields_renderers = {"query_params": "json", "schema": "json"}
    ui_color = "#d7eadf"
    storage_conn_attr = "storage_conn_id"  # aws_conn_id is the connection of an s3 source

    def __init__(
        self,
        *,
        pipeline: str,
        source: str,
        query: str | None = None,
        table: str | None = None,
        query_params: dict[str, Any] | None = None,
        path: str | None = None,
        pattern: str | None = None,
        format: str | None = None,
        csv_delimiter: str = ",",
        schema: dict[str, str] | None = None,
        keep_extra_columns: bool | str = True,
        watermark_column: str | None = None,
        order_by: list[str] | None = None,
        since: Any = None,
        until: Any = None,
        incremental: bool | str = False,
        chunk_rows: int | str = 100_000,
        on_empty: str = "fail",
        partition: str | None = None,
        sql_conn_id: str = SqlSourceHook.default_conn_name,
        aws_conn_id: str | None = "aws_default",
        storage_root: str | None = None,
        storage_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        # The dataset asset must be known when the DAG is parsed (it drives asset scheduling), so it is
        # added to the outlets here rather than at run time.
        outlets = kwargs.pop("outlets", None) or []
        outlets = list(outlets) if isinstance(outlets, list | tuple) else [outlets]
        super().__init__(outlets=[*outlets, dataset_asset(pipeline)], **kwargs)
        self.pipeline = pipeline
        self.source = source
        self.query = query
        self.table = table
        self.query_params = query_params
        self.path = path
        self.pattern = pattern
        self.format = format
        self.csv_delimiter = csv_delimiter
        self.schema = schema
        self.keep_extra_columns = keep_extra_columns
        self.watermark_column = watermark_column
        self.order_by = order_by
        self.since = since
        self.until = until
        self.incremental = incremental
        self.chunk_rows = chunk_rows
        self.on_empty = on_empty
        self.partition = partition
        self.sql_conn_id = sql_conn_id
        self.aws_conn_id = aws_conn_id
        self.storage_root = storage_root
        self.storage_conn_id = storage_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowSkipException

        from airflow_mlops.core import ingestion as core
        from airflow_mlops.hooks.ingestion import source_handles

        partition = self.run_partition(context)
        spec = self._spec(context)
        engine, filesystem = source_handles(
            spec.source, spec.path, sql_conn_id=self.sql_conn_id, aws_conn_id=self.aws_conn_id
        )
        receipt = core.ingest(
            spec, root=self.storage, pipeline=self.pipeline, partition=partition, engine=engine, filesystem=filesystem
        )
        if receipt is None:
            raise AirflowSkipException(
                f"{spec.describe()} returned no rows for partition {partition!r}; on_empty='skip', so nothing "
                "was written and no dataset event is emitted."
            )
        for warning in receipt.warnings:
            self.log.warning("%s", warning)
        payload = receipt.to_dict()
        context["outlet_events"][dataset_asset(self.pipeline)].extra.update(payload)
        self.log.info(
            "Ingested %s rows x %s columns from %s into %s (sha256 %s, watermark %s).",
            receipt.rows, len(receipt.columns), receipt.source, receipt.uri, receipt.sha256, receipt.source_watermark,
        )  # fmt: skip
        return payload

    def _spec(self, context: Context) -> Any:
        """The core ``IngestSpec`` of the rendered arguments, the query's ``{{ ... }}`` values bound."""
        from airflow_mlops.core.ingestion.snapshot import IngestSpec

        query, bound = (None, {}) if not self.query else render_query(self, self.query, context)
        return IngestSpec.from_mapping(
            {
                "source": self.source, "query": query, "table": self.table,
                "params": {**(self.query_params or {}), **bound}, "order_by": self.order_by or (),
                "path": self.path, "pattern": self.pattern, "format": self.format,
                "csv_delimiter": self.csv_delimiter, "schema": self.schema or {},
                "keep_extra_columns": self.keep_extra_columns, "watermark_column": self.watermark_column,
                "since": self.since, "until": self.until, "incremental": self.incremental,
                "chunk_rows": self.chunk_rows, "on_empty": self.on_empty,
            }
        )  # fmt: skip


def render_query(task: BaseOperator, query: str, context: Context) -> tuple[str, dict[str, Any]]:
    """Render a SQL template with every ``{{ ... }}`` bound; ``*.sql`` names load from the DAG's search path."""
    from airflow_mlops.core.errors import SpecError
    from airflow_mlops.core.ingestion import render_sql_template

    env = task.get_template_env(task.dag if task.has_dag() else None)
    text = query
    if query.strip().endswith(".sql"):
        if env.loader is None:
            raise SpecError(
                f"The query {query!r} names a .sql file, but the task {task.task_id!r} has no DAG whose folder or "
                "template_searchpath could hold it."
            )
        import jinja2

        try:
            text = env.loader.get_source(env, query.strip())[0]
        except jinja2.TemplateNotFound as exc:
            raise SpecError(
                f"The query file {query!r} is not in the DAG folder or template_searchpath of {task.task_id!r}."
            ) from exc
    return render_sql_template(text, context, env)
