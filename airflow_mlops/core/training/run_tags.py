"""What a training run says about itself in MLflow: the tags the registry and the monitors read (the
model's checksums, what it was fitted on, where its data ends) and the run's description."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_mlops.core import contracts

if TYPE_CHECKING:
    from airflow_mlops.core.training.result import TrainingResult


def fit_tags(result: TrainingResult) -> dict[str, str]:
    """The registered model's checksum and what it was fitted on; the judged selection model's checksum."""
    tags = {
        contracts.TAG_ONNX_SHA256: result.onnx_sha256,
        contracts.TAG_MODEL_FIT: result.fit.kind,
        contracts.TAG_MODEL_FIT_ROWS: str(result.fit.rows),
    }
    if result.fit.selection_onnx_sha256 is not None:
        tags[contracts.TAG_SELECTION_ONNX_SHA256] = result.fit.selection_onnx_sha256
    data_end = _data_end(result)
    if data_end is not None:
        tags[contracts.TAG_DATA_END] = data_end
    return tags


def _data_end(result: TrainingResult) -> str | None:
    """The newest time of a time split (its test split holds the newest rows): the end of the data the
    version was fitted, tuned and tested on, from which the staleness impact counts its age. A refit on
    every row learned from it; a train-only fit learned from the older rows and was chosen on the newer.
    None for a random split."""
    import pandas as pd

    column = result.spec.split.column
    if result.spec.split.method != "time" or not column or column not in result.test_frame.columns:
        return None
    newest = pd.Timestamp(pd.to_datetime(result.test_frame[column], errors="coerce").max())
    if pd.isna(newest):
        return None
    if newest.tz is None:  # a naive column is in the zone features.timezones declares for it, else UTC
        newest = newest.tz_localize(result.spec.transforms.timezones.get(column, "UTC"))
    return str(newest.tz_convert("UTC").isoformat())


def run_note(result: TrainingResult) -> str:
    """The run's description in MLflow: the task, the test metrics, parity, rows and what was registered."""
    test = result.metrics["test"]
    lines = [
        f"**{result.spec.task}** model of `{result.spec.target}` ({result.spec.estimator.type}).",
        "",
        "Test split: " + ", ".join(f"{k} {v:.4g}" for k, v in sorted(test.items())),
        f"ONNX parity: {result.parity.measure} = {result.parity.value:.3g} (tolerance {result.parity.tolerance:g}) "
        f"on {result.parity.rows} rows; sha256 `{result.onnx_sha256}`.",
        f"Rows: {result.rows}.",
        _fit_note(result),
    ]
    if result.warnings:
        lines += ["", "Warnings:", *[f"- {w}" for w in result.warnings]]
    return "\n".join(lines)


def _fit_note(result: TrainingResult) -> str:
    fit = result.fit
    if fit.kind == "train_only":
        return f"Registered model: the judged model, fitted on the {fit.rows} train rows."
    return (
        f"Registered model: refitted on all {fit.rows} rows ({fit.refit_iterations} iterations, scaled from the "
        f"{fit.selected_iterations} selected); the test metrics above judge the selection model fitted on the "
        f"{result.rows['train']} train rows (`{contracts.ARTIFACT_ONNX_SELECTION}`, sha256 "
        f"`{fit.selection_onnx_sha256}`), the estimate of the refit."
    )
