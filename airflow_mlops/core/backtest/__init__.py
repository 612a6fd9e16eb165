"""Backtest: replay a labelled history batch by batch through the training, serving, drift-check,
drift-policy and gate code the reference DAGs run, with an in-memory registry, and compare the drift
policy with never-retrain and retrain-every-batch. Public API: ``BacktestSettings``, ``BatchRule``,
``read_history``, ``split_batches``, ``run_backtest``, ``BacktestResult``, ``InMemoryRegistry``,
``write_reports``, ``bench_line`` (modules: ``batches`` cuts the history, ``settings`` reads the
pipeline file, ``steps`` calls the stems, ``loop`` replays the policies, ``registry`` holds the
versions and the champion alias, ``report`` writes JSON, Markdown and HTML)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core._exports import lazy_exports

if TYPE_CHECKING:
    from airflow_mlops.core.backtest.batches import BatchRule, read_history, split_batches
    from airflow_mlops.core.backtest.loop import BacktestResult, run_backtest
    from airflow_mlops.core.backtest.registry import InMemoryRegistry
    from airflow_mlops.core.backtest.report import bench_line, write_reports
    from airflow_mlops.core.backtest.settings import BacktestSettings

__all__ = [
    "BacktestResult",
    "BacktestSettings",
    "BatchRule",
    "InMemoryRegistry",
    "bench_line",
    "read_history",
    "run_backtest",
    "split_batches",
    "write_reports",
]
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "BatchRule": "batches",
        "read_history": "batches",
        "split_batches": "batches",
        "BacktestResult": "loop",
        "run_backtest": "loop",
        "InMemoryRegistry": "registry",
        "bench_line": "report",
        "write_reports": "report",
        "BacktestSettings": "settings",
    },
)
