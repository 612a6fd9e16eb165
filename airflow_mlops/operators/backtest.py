"""Replay a labelled history through a pipeline's drift policy before it goes live (the policy backtest)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops import settings

if TYPE_CHECKING:
    from airflow.sdk import Context

_UNSAFE = re.compile(r"[^A-Za-z0-9._=+-]")


class BacktestPolicyOperator(BaseOperator):
    """Replay a labelled history batch by batch through the pipeline's training, serving, drift check,
    drift policy and gate (in this task, with an in-memory registry), and compare the drift policy with
    never-retrain and retrain-every-batch. The reports (JSON, Markdown, HTML with the plot) are written
    to a local folder; the receipt holds the summary, the ``BENCH`` line and the report paths.

    CPU-bound: it trains a model per retrain of each policy, so give it a pool or a worker with room.

    :param pipeline_file: the pipeline file (``include/pipelines/<name>.yaml``). (templated)
    :param data_uri: the labelled history, a local Parquet/CSV file or folder. (templated)
    :param batch: ``monthly``, ``weekly``, ``daily`` or ``rows=N``. (templated)
    :param start: first batch starts here (ISO date); earlier rows train the first champion. (templated)
    :param end: last batch ends before this (ISO date). (templated)
    :param output_folder: local folder of the reports; ``{state_dir}/backtest/<pipeline>/<run id>`` when
        omitted. (templated)
    :param training_override: mapping laid over the pipeline's training spec (e.g. a smaller search). (templated)
    :param time_column: column the batches are cut by; the pipeline's by default. (templated)
    """

    template_fields: Sequence[str] = (
        "pipeline_file", "data_uri", "batch", "start", "end", "output_folder", "training_override", "time_column",
    )  # fmt: skip
    template_fields_renderers = {"training_override": "json"}
    ui_color = "#e8f5e9"

    def __init__(
        self,
        *,
        pipeline_file: str,
        data_uri: str,
        batch: str = "monthly",
        start: str | None = None,
        end: str | None = None,
        output_folder: str | None = None,
        training_override: Mapping[str, Any] | None = None,
        time_column: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline_file = pipeline_file
        self.data_uri = data_uri
        self.batch = batch
        self.start = start
        self.end = end
        self.output_folder = output_folder
        self.training_override = training_override
        self.time_column = time_column

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops.core import backtest
        from airflow_mlops.core.backtest.report import summary
        from airflow_mlops.core.errors import MlopsError
        from airflow_mlops.hooks.ingestion import sql_engine

        try:
            spec = backtest.BacktestSettings.from_pipeline_file(
                self.pipeline_file, training_override=self.training_override, time_column=self.time_column or None,
                sql_engine=sql_engine,
            )  # fmt: skip
            rule = backtest.BatchRule.parse(self.batch)
            frame = backtest.read_history(self.data_uri)
            history = backtest.split_batches(frame, rule, spec.time_column, start=self.start, end=self.end)
        except MlopsError as exc:  # a bad file, rule or date does not get better on retry
            raise AirflowFailException(str(exc)) from exc
        result = backtest.run_backtest(spec, history)
        run = _UNSAFE.sub("_", str(context["run_id"]))
        folder = self.output_folder or str(Path(settings.state_dir()) / "backtest" / spec.pipeline / run)
        files = backtest.write_reports(result, folder)
        line = backtest.bench_line(result)
        self.log.info("Backtest of %s over %d batches: %s; reports in %s", spec.pipeline, len(history.batches),
                      line, folder)  # fmt: skip
        return {"pipeline": spec.pipeline, "summary": summary(result), "bench": line, "reports": files}
