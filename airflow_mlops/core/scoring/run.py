"""Batch scoring: stream a Parquet partition through a registered ONNX model and write predictions atomically.

The input (one Parquet file, a folder of them, or a glob; local or S3) is read in bounded record
batches (:mod:`~airflow_mlops.core.scoring.reading`). A reader thread decodes the next batch while
ONNX Runtime scores the current one, and each scored batch is appended to a Parquet writer whose
target is a temporary object of the storage root: the predictions appear at
``{root}/{pipeline}/predictions/{partition}/predictions.parquet`` whole or not at all, and a rerun
replaces them. Memory is bounded by a few batches, whatever the input size.

Beside the predictions, and committed before them so that the predictions file marks a complete run:

- the serving log, a seeded reservoir sample of inputs and predictions (deterministic for a given
  input, whatever the chunk size) that drift monitoring compares with the training reference;
- optionally the shadow report (:mod:`~airflow_mlops.core.scoring.shadow`): the same batches scored by
  the ``challenger`` alias, compared with the champion. The shadow never changes or fails the served output.

Model loading never unpickles anything (:mod:`airflow_mlops.core.serving`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.ingestion.errors import EmptySourceError
from airflow_mlops.core.onnx_model import feed_arrow
from airflow_mlops.core.scoring.checks import _InputCounts, log_warnings
from airflow_mlops.core.scoring.inputs import input_filesystem, resolve_input
from airflow_mlops.core.scoring.output import (
    PartitionOutputs,
    _cast,
    _log_rows,
    _TopContributions,
    _write_parquet,
    missing_folders,
    output_schema,
    parquet_options,
    remove_if_empty,
)
from airflow_mlops.core.scoring.reading import _batches, _Plan, _plan, _Prefetch
from airflow_mlops.core.scoring.reservoir import _Reservoir
from airflow_mlops.core.scoring.result import ScoringResult
from airflow_mlops.core.scoring.shadow import _shadow_report, _shadow_step, _ShadowTracker
from airflow_mlops.core.scoring.spec import ScoringSpec
from airflow_mlops.core.serving.model import ServingModel
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    from airflow_mlops.core.features.apply import Transformer
    from airflow_mlops.core.features.dimensions import SqlEngine

Progress = Callable[[int, int], None]


class _Abandoned(Exception):
    """Carries an ``OSError`` out of ``atomic_output`` unchanged (it would wrap it as a write error)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Scorer:
    """The state of one scoring run: schemas, constant columns, samples, shadow and explainer."""

    def __init__(
        self, spec: ScoringSpec, model: ServingModel, plan: _Plan, shadow: ServingModel | None,
        shadow_transformer: Transformer | None = None,
    ) -> None:  # fmt: skip
        import pyarrow as pa

        self.spec, self.model, self.plan, self.shadow = spec, model, plan, shadow
        self.shadow_transformer = shadow_transformer
        self.explainer = _TopContributions(model, spec.explain_top_k) if spec.explain_top_k else None
        self.schema = output_schema(model, spec, plan.schema, spec.explain_top_k)
        # The input columns the serving log keeps besides the passthrough ones: the features, then the
        # input's other columns for drift monitoring (a name the output uses stays the output's).
        self.logged = [c for c in model.spec.feature_columns if c not in spec.passthrough_columns]
        # The label, when the input happens to carry it, stays out: a serving log is an unlabelled batch.
        self.logged += [c for c in plan.monitored if c not in self.schema.names and c != model.spec.target]
        log_columns = [*spec.passthrough_columns, *self.logged]
        self.log_schema = pa.schema(
            [*(plan.schema.field(c) for c in log_columns), *(f for f in self.schema if f.name not in log_columns)]
        )
        self.reservoir = _Reservoir(spec.serving_log_rows, spec.seed)
        self.counts = _InputCounts(spec, model, plan.schema)
        self.shadow_problem = plan.shadow_problem if shadow is not None else None
        self.tracker = (
            _ShadowTracker(model, shadow, spec.seed, plan.label) if shadow and not self.shadow_problem else None
        )
        self.constants = [
            pa.scalar(model.name, pa.string()),
            pa.scalar(model.version, pa.string()),
            pa.scalar(spec.scored_at, pa.timestamp("us", tz="UTC")),
        ]
        self.rows_read = 0

    def score(self, batch: Any) -> Any:
        """The output record batch of one input batch; feeds the serving log and the shadow on the way."""
        import numpy as np
        import pyarrow as pa

        rows = batch.num_rows
        feed = feed_arrow(batch, self.model.spec.inputs)
        self.counts.update(batch, feed, self.rows_read)
        prediction = self.model.predict(feed, first_row=self.rows_read)
        arrays = _cast(batch, self.spec.passthrough_columns, self.plan.schema)
        arrays.append(pa.array(prediction.values, type=self.schema.field(contracts.PREDICTION_COLUMN).type))
        if prediction.probabilities is not None:
            arrays += [pa.array(np.ascontiguousarray(column)) for column in prediction.probabilities.T]
        if self.explainer is not None:
            arrays += self.explainer.columns(feed, prediction)
        arrays += [pa.repeat(value, rows) for value in self.constants]
        scored = pa.RecordBatch.from_arrays(arrays, schema=self.schema)
        chosen = self.reservoir.select(rows)
        if len(chosen):
            features = pa.table(_cast(batch.take(chosen), self.logged, self.plan.schema), names=self.logged)
            self.reservoir.add(_log_rows(pa.Table.from_batches([scored.take(chosen)]), features, self.log_schema))
        if self.tracker is not None and self.tracker.error is None:
            self.tracker.error = _shadow_step(
                self.tracker, self.shadow, batch, prediction, self.rows_read, self.shadow_transformer
            )
        self.rows_read += rows
        return scored

    def stream(self, sink: Any, batches: Iterator[Any], progress: Progress | None) -> int:
        """Write every scored batch to ``sink``; return the row count the Parquet footer records."""
        import pyarrow.parquet as pq

        writer = pq.ParquetWriter(sink, self.schema, **parquet_options(self.schema))
        reader = _Prefetch(batches)
        try:
            for batch in reader:
                writer.write_batch(self.score(batch))
                if progress is not None:
                    progress(self.rows_read, self.plan.rows)
        except BaseException:
            reader.close()
            with contextlib.suppress(Exception):  # the temporary output is discarded anyway
                writer.close()
            raise
        reader.close()
        writer.close()
        footer = getattr(getattr(writer, "writer", None), "metadata", None)
        return int(footer.num_rows) if footer is not None else self.rows_read

    def write_serving_log(self, root: StorageRoot, uri: str) -> int:
        sample = self.reservoir.result()
        table = sample if sample is not None else self.log_schema.empty_table()
        _write_parquet(root, uri, table.replace_schema_metadata(self.schema.metadata))
        return int(table.num_rows)

    def write_shadow_report(self, root: StorageRoot, uri: str, skipped: str | None) -> dict[str, Any]:
        report = _shadow_report(self.spec, self.model, self.shadow, self.tracker, skipped, self.shadow_problem)
        root.write_bytes(uri, (json.dumps(report, indent=2, sort_keys=True, default=str) + "\n").encode())
        return {
            "status": report["status"],
            "challenger_version": (report.get("challenger") or {}).get("version"),
            "agreement_rate": report.get("agreement_rate"),
            "reason": report.get("error"),
            "labelled_rows": (report.get("quality") or {}).get("rows", 0),
        }


def score_partition(
    root: StorageRoot,
    spec: ScoringSpec,
    model: ServingModel,
    *,
    input_fs: Any = None,
    shadow: ServingModel | None = None,
    shadow_skipped: str | None = None,
    progress: Progress | None = None,
    transformer: Transformer | None = None,
    sql_engine: SqlEngine | None = None,
) -> ScoringResult:
    """Score one partition and write its predictions, serving log and shadow report.

    The serving log and the shadow report are committed first and the predictions last, so a
    predictions file always comes with the side outputs of the same run. On any error nothing new is
    published: earlier outputs of the partition stay as they were.

    :param root: storage root that receives the outputs.
    :param spec: what to score and where to write it.
    :param model: the champion (the served model).
    :param input_fs: pyarrow filesystem of the input; :func:`input_filesystem` decides when omitted.
    :param shadow: a challenger scored on the same batches, for the shadow report only.
    :param shadow_skipped: why a requested challenger could not be loaded; written as the report.
    :param progress: called with (rows scored so far, rows in the partition) after each batch.
    :param transformer: the model version's feature transforms bound to their dimension tables; built
        from ``model.spec.transforms`` and the dimensions under ``{root}/{spec.pipeline}/`` when omitted.
        They run on every record batch, in the reader thread, before the graph is fed.
    :param sql_engine: a connection id -> a SQLAlchemy engine, for joins whose dimension is a SQL table
        (read once, when ``transformer`` is built here).
    :raises SourceNotFoundError: the input does not exist, or a dimension table of a join.
    :raises DataError: a feature or passthrough column is missing, a value cannot be coerced, the model
        produced NaN, a file is not readable Parquet, or (``invalid_values='refuse'``) a numeric feature
        holds an infinity or a value beyond float32's range.
    :raises EmptySourceError: the input has no row and ``spec.on_empty`` is ``fail``.
    """
    started = time.perf_counter()
    filesystem = input_fs if input_fs is not None else input_filesystem(spec.input_uri, root)
    files = resolve_input(spec.input_uri, filesystem)
    plan = _plan(files, filesystem, model, spec, shadow)
    if plan.rows == 0:
        return _empty(spec, model, len(files), started)
    transformer, plan, shadow_transformer = _transforms(root, spec, model, plan, shadow, transformer, sql_engine)
    scorer = _Scorer(spec, model, plan, shadow, shadow_transformer)
    batches = _batches(plan, filesystem, spec.chunk_rows)
    if transformer is not None:
        batches = (transformer.apply(batch) for batch in batches)
    outputs = PartitionOutputs.of(root, spec)
    try:
        written = _publish(root, scorer, outputs, batches, progress, shadow_skipped)
    finally:
        if shadow_transformer is not None:
            shadow_transformer.close()
    for uri in (outputs.predictions, outputs.serving_log, outputs.shadow_report):
        root.remove_stale_temporaries(uri)
    warnings = scorer.counts.warnings()
    log_warnings(warnings, spec.partition)
    return ScoringResult(
        output_uri=outputs.predictions,
        rows_in=plan.rows,
        rows_out=written.rows,
        input_files=len(files),
        model_name=model.name,
        model_version=model.version,
        onnx_sha256=model.sha256,
        partition=spec.partition,
        scored_at=spec.scored_at.isoformat(),
        seconds=time.perf_counter() - started,
        serving_log_uri=outputs.serving_log if spec.serving_log_rows else None,
        serving_log_rows=written.serving_log_rows,
        shadow_report_uri=outputs.shadow_report if written.shadow is not None else None,
        shadow=written.shadow,
        explain_top_k=spec.explain_top_k,
        on_empty=spec.on_empty,
        input_checks=scorer.counts.to_dict(),
        warnings=tuple(warnings),
        feature_transforms=transformer.receipt() if transformer is not None else None,
    )


def _transforms(
    root: StorageRoot, spec: ScoringSpec, model: ServingModel, plan: _Plan, shadow: ServingModel | None,
    transformer: Transformer | None, sql_engine: SqlEngine | None,
) -> tuple[Transformer | None, _Plan, Transformer | None]:  # fmt: skip
    """The version's transforms bound once for the task, the plan with the columns they add, and the
    challenger's own transforms when they differ from the champion's.

    Each model is scored through its own version's transforms: the batches carry the champion's
    transformed columns, and a challenger with other transforms gets its own applied on top (its
    outputs replace columns of the same name). A challenger whose transforms cannot be bound (a
    dimension table missing) is not shadowed; its report says why.
    """
    import dataclasses

    shadow_transformer, problem = None, plan.shadow_problem
    if shadow is not None and shadow.spec.transforms and shadow.spec.transforms != model.spec.transforms:
        from airflow_mlops.core.features.apply import bind

        try:
            shadow_transformer = bind(shadow.spec.transforms, root, spec.pipeline, sql_engine)
        except Exception as exc:  # the shadow must not fail the served output
            problem = problem or f"the challenger's feature transforms cannot be bound: {exc}"
    if not model.spec.transforms:
        return None, dataclasses.replace(plan, shadow_problem=problem), shadow_transformer
    if transformer is None:
        from airflow_mlops.core.features.apply import bind

        transformer = bind(model.spec.transforms, root, spec.pipeline, sql_engine)
    schema = transformer.output_schema(plan.schema)
    return transformer, dataclasses.replace(plan, schema=schema, shadow_problem=problem), shadow_transformer


def _empty(spec: ScoringSpec, model: ServingModel, files: int, started: float) -> ScoringResult:
    """An input without rows, before anything is written: fail, or skip with a receipt that says so
    (ingestion's ``on_empty``, with the same default)."""
    reason = f"The scoring input {spec.input_uri!r} has no rows (partition {spec.partition!r})"
    if spec.on_empty == "fail":
        raise EmptySourceError(
            f"{reason}; expected at least one (set on_empty='skip' to skip instead of failing). Nothing was written."
        )
    return ScoringResult(
        output_uri=None,
        rows_in=0,
        rows_out=0,
        input_files=files,
        model_name=model.name,
        model_version=model.version,
        onnx_sha256=model.sha256,
        partition=spec.partition,
        scored_at=spec.scored_at.isoformat(),
        seconds=time.perf_counter() - started,
        serving_log_uri=None,
        serving_log_rows=0,
        explain_top_k=spec.explain_top_k,
        on_empty=spec.on_empty,
        skipped=f"{reason}; on_empty='skip', so nothing was written.",
    )


@dataclass(frozen=True)
class _Written:
    """What :func:`_publish` wrote: predicted rows, serving log rows, the shadow summary (if any)."""

    rows: int
    serving_log_rows: int
    shadow: dict[str, Any] | None


def _publish(
    root: StorageRoot,
    scorer: _Scorer,
    outputs: PartitionOutputs,
    batches: Iterator[Any],
    progress: Progress | None,
    shadow_skipped: str | None,
) -> _Written:
    """Stream the predictions into a temporary object and commit the side outputs before it.

    Any error leaves every output of the partition as it was and is raised unchanged (an ``OSError``
    of the input is not turned into a write error of the output); the folders this run created for
    its outputs are removed again when they are still empty.
    """
    created = missing_folders(root, outputs)
    try:
        with root.atomic_output(outputs.predictions) as sink:
            try:
                return _write(root, scorer, sink, outputs, batches, progress, shadow_skipped)
            except OSError as exc:
                raise _Abandoned(exc) from exc
    except _Abandoned as abandoned:
        remove_if_empty(created)
        abandoned.error.__suppress_context__ = True
        raise abandoned.error  # noqa: B904 - the original error, not the carrier, is what the caller needs
    except BaseException:
        remove_if_empty(created)
        raise


def _write(
    root: StorageRoot,
    scorer: _Scorer,
    sink: Any,
    outputs: PartitionOutputs,
    batches: Iterator[Any],
    progress: Progress | None,
    shadow_skipped: str | None,
) -> _Written:
    spec, rows = scorer.spec, scorer.plan.rows
    written = scorer.stream(sink, batches, progress)
    if not rows == scorer.rows_read == written:
        raise ArtifactError(
            f"Row count mismatch while scoring {spec.input_uri!r}: the file footers announce {rows} "
            f"rows, {scorer.rows_read} were read and {written} written. Nothing was published."
        )
    log_rows = scorer.write_serving_log(root, outputs.serving_log) if spec.serving_log_rows else 0
    summary = None
    if scorer.shadow is not None or shadow_skipped is not None:
        summary = scorer.write_shadow_report(root, outputs.shadow_report, shadow_skipped)
    return _Written(rows=written, serving_log_rows=log_rows, shadow=summary)
