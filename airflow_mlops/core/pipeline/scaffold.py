"""Scaffolding a pipeline file from a table: ``airflow-mlops init-pipeline --data T --target C``.

:func:`scaffold` screens the table's columns (:mod:`.screening`), infers a validation suite from the same
sample (:func:`airflow_mlops.core.validation.inference.infer_suite`) and writes both: the pipeline file,
in the layout of ``include/pipelines/*.yaml`` with every choice explained in a YAML comment, and the suite
next to it as ``<name>.suite.json``, named in the file as ``validation.suite: ./<name>.suite.json``
(relative to the pipeline file). The file is read back with :meth:`PipelineFile.from_yaml` before it is
kept, so what is written is what the reference DAGs will load; nothing is left behind when a check fails.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.pipeline.screening import SAMPLE_ROWS, Screening, read_table, screen

if TYPE_CHECKING:
    import pandas as pd

SUITE_SUFFIX = ".suite.json"


@dataclass(frozen=True)
class Scaffold:
    """What :func:`scaffold` wrote: the pipeline file, its suite, and the screening behind them."""

    pipeline_path: Path
    suite_path: Path | None
    screening: Screening

    def summary(self) -> str:
        s = self.screening
        lines = [
            f"Wrote {self.pipeline_path} ({s.task} on {s.target!r}, {len(s.numeric)} numeric and "
            f"{len(s.categorical)} categorical features; checks on {s.sample_rows} of {s.rows} rows).",
        ]
        if self.suite_path is not None:
            lines.append(f"Wrote {self.suite_path} (the validation suite inferred from the same rows).")
        lines.append(f"Time split on {s.time_column!r}." if s.time_column else "Random split: no time column.")
        lines.extend(f"  left out {name}: {why}" for name, why in s.excluded.items())
        return "\n".join(lines)


def default_name(data: str | Path) -> str:
    """A pipeline name from the table's file name: letters, digits and ``_`` only."""
    stem = Path(data).name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9_]+", "_", stem).strip("_") or "pipeline"


def scaffold(
    data: str | Path,
    target: str,
    *,
    out: str | Path,
    task: str | None = None,
    time_column: str | None = None,
    name: str | None = None,
    suite: bool = True,
    sample_rows: int = SAMPLE_ROWS,
    overwrite: bool = False,
) -> Scaffold:
    """Screen ``data``, write the pipeline file at ``out`` (a ``.yaml`` path or a folder) and its suite.

    :raises SpecError: bad arguments, or ``out`` exists and ``overwrite`` is false.
    """
    from airflow_mlops.core.pipeline.file import PipelineFile

    path = Path(out)
    is_file = path.suffix in (".yaml", ".yml")
    name = name or (path.stem if is_file else default_name(data))
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise SpecError(f"A pipeline name must be letters, digits, '_', '-' or '.'. Got {name!r}.")
    if not is_file:
        path = path / f"{name}.yaml"
    suite_path = path.with_name(f"{path.stem}{SUITE_SUFFIX}") if suite else None
    for existing in (path, suite_path):
        if existing is not None and existing.exists() and not overwrite:
            raise SpecError(f"{str(existing)!r} exists already; remove it or pass --force to replace it.")
    frame = read_table(data)
    screening = screen(frame, target, task=task, time_column=time_column, sample_rows=sample_rows)
    text = pipeline_text(screening, name=name, source=Path(data).name, suite=suite_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        if suite_path is not None:
            _write(suite_path, suite_json(frame, screening, name), written)
        _write(path, text, written)
        PipelineFile.from_yaml(path)  # what the DAGs will read: refuse here, not at the next DAG parse
    except BaseException:
        for done in written:
            done.unlink(missing_ok=True)
        raise
    return Scaffold(path, suite_path, screening)


def _write(path: Path, text: str, written: list[Path]) -> None:
    """Write atomically (a temporary name, then a rename) and remember it for the clean-up."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)
    written.append(path)


def suite_json(frame: pd.DataFrame, screening: Screening, name: str) -> str:
    """The validation suite of every column, inferred from a seeded sample of the screening's size.

    No row count is checked (training snapshots and serving batches differ in size); the time column and
    identifiers are checked for presence, type and nulls only, since their values move with every batch.
    """
    from airflow_mlops.core.validation.inference import infer_suite
    from airflow_mlops.core.validation.json_safe import dumps
    from airflow_mlops.core.validation.spec import InferenceSpec
    from airflow_mlops.core.validation.suite import suite_to_dict

    sample = frame.sample(n=screening.sample_rows, random_state=42) if len(frame) > screening.sample_rows else frame
    moving = [c for c, why in screening.excluded.items() if why.startswith(("an identifier", "a timestamp"))]
    spec = InferenceSpec(
        row_count_tolerance=None,
        schema_only_columns=tuple(([screening.time_column] if screening.time_column else []) + moving),
    )
    suite = infer_suite(sample, spec, name=f"{name}.scaffolded", source=f"init-pipeline sample of {name}")
    return dumps(suite_to_dict(suite)).decode()


def _flow(values: Any) -> str:
    """A YAML flow value (JSON is YAML): ``[a, b]`` lists stay on one line."""
    if isinstance(values, (list, tuple)):
        return "[" + ", ".join(_scalar(v) for v in values) + "]"
    return _scalar(values)


def _scalar(value: Any) -> str:
    text = str(value)
    plain = re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", text) and text.lower() not in (
        "true", "false", "yes", "no", "on", "off", "null", "y", "n",
    )  # fmt: skip
    return text if plain else json.dumps(text)


def pipeline_text(screening: Screening, *, name: str, source: str, suite: Path | None) -> str:
    """The pipeline file's YAML, every choice commented."""
    s = screening
    lines = [
        f"# {name}: {s.task} on {s.target!r}, scaffolded by `airflow-mlops init-pipeline` from {source}",
        f"# ({s.rows} rows; the column checks read a sample of {s.sample_rows}). Review it before training:",
        "# the checks see the data, not what is known when a prediction is made.",
        *_training_lines(s),
        "",
        "# -- how the reference DAGs run this pipeline (dags/continuous_training.py, dags/batch_serving.py) --",
        f"model_name: {_scalar(name)}",
        "data:",
        "  landing: landing                                 # {storage_root}/" + name + "/landing/",
        f"  training_pattern: {_flow(name + '_*.parquet')}   # a training snapshot is every file landed so far",
        f"  batch_pattern: \"{name}_{{{{ data_interval_start.strftime('%Y-%m') }}}}*.parquet\"  # one month served",
    ]
    if s.time_column:
        lines.append(f"  watermark_column: {_scalar(s.time_column)}")
    if suite is not None:
        lines += [
            "validation:",
            f"  suite: ./{suite.name}   # inferred from the sample; training snapshots and serving batches alike",
        ]
    else:
        lines += [
            "# validation: no suite file; training infers one from each snapshot and logs it with the model,",
            "# and serving validates batches with the suite of the model version that scores them.",
        ]
    lines += [*_later_sections(s), *_requirements_lines(s)]
    return "\n".join(lines) + "\n"


def _training_lines(s: Screening) -> list[str]:
    lines = ["training:", f"  task: {s.task}", f"  target: {_scalar(s.target)}", "  features:"]
    lines.append(f"    numeric: {_flow(s.numeric)}")
    lines.append(f"    categorical: {_flow(s.categorical)}")
    if s.excluded:
        lines.append("  # left out of the features, and why:")
        lines.extend(f"  #   {column}: {why}" for column, why in s.excluded.items())
    lines += [
        "  estimator:",
        "    type: lightgbm",
        "    params: {n_estimators: 500, learning_rate: 0.05}   # early stopping picks the number of trees",
        "  early_stopping_rounds: 50",
    ]
    if s.time_column:
        lines += [
            "  split:                    # train on the past, test on the most recent rows",
            "    method: time",
            f"    column: {_scalar(s.time_column)}",
        ]
    else:
        lines += ["  split:                    # no time column: a seeded random split", "    method: random"]
    lines += ["    train: 0.7", "    validation: 0.15", "    test: 0.15", "  seed: 42"]
    return lines


def _later_sections(s: Screening) -> list[str]:
    from airflow_mlops.core.metrics import DEFAULT_PRIMARY

    metric = DEFAULT_PRIMARY[s.task]  # type: ignore[index]
    passthrough = [c for c in (s.time_column, s.target) if c]
    return [
        "gate:",
        "  on_reject: skip            # a rejected candidate skips register/promote; the run succeeds",
        "  policy:",
        f"    # the first model has no champion to beat: only floors apply. Add one on {metric} once you know",
        f"    # what is good enough, e.g. floors: {{{metric}: ...}}; later candidates must not be worse than",
        "    # the champion on the same test rows (docs/gating.md).",
        "    first_run: floors_only",
        "serving:",
        '  schedule: "@monthly"       # or @weekly, a cron expression, P7D, an asset URI (docs/scoring.md)',
        f"  passthrough_columns: {_flow(passthrough)}   # kept beside each prediction",
        "drift:",
        "  policy:                    # when drift asks for a retrain (docs/drift.md)",
        "    drift_share: 0.5         # half of the model's features drifted (importance-weighted)",
        "    hysteresis: 0.1",
        "    cooldown: 30d            # at most one drift-triggered retrain a month",
        "monitoring:",
        "  alerts: ml_alerts          # webhook connection for findings; without it they are only logged",
    ]


def _requirements_lines(s: Screening) -> list[str]:
    if not s.leaking:
        return []
    lines = [
        "# Never features, and why (refused when this file is read and again at every training):",
        "feature_requirements:",
        "  forbidden:",
    ]
    lines.extend(f"    {_scalar(c)}: {json.dumps(s.excluded[c])}" for c in s.leaking)
    return lines
