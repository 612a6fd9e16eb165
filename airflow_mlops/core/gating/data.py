"""The rows the gate scores both models on: read from the storage root, labelled rows only, sampled
down with a seed, the truth encoded as the candidate's class indices (or values for a regressor)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.gating import metrics as gm

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from airflow_mlops.core.storage import StorageRoot


@dataclass(frozen=True)
class EvaluationData:
    """Rows both models are scored on, with the encoded truth."""

    frame: pd.DataFrame
    y: np.ndarray
    info: dict[str, Any]


def read_evaluation_frame(storage: StorageRoot, uri: str) -> tuple[pd.DataFrame, str]:
    """Read a Parquet (file or folder of parts) or CSV evaluation set from the storage root.

    :return: the frame and a sha256 of the content (of the file, or of the parts' hashes in order).
    :raises SourceNotFoundError: nothing at ``uri``.
    :raises DataError: the file cannot be read as Parquet or CSV.
    """
    import hashlib

    import pandas as pd
    import pyarrow.csv as pacsv
    import pyarrow.fs as pafs
    import pyarrow.parquet as pq

    from airflow_mlops.core.errors import SourceNotFoundError

    kind = storage.filesystem.get_file_info(storage.fs_path(uri)).type
    if kind == pafs.FileType.NotFound:
        raise SourceNotFoundError(f"No evaluation data at {uri!r}.")
    files = storage.list_files(uri) if kind == pafs.FileType.Directory else [uri]
    if not files:
        raise SourceNotFoundError(f"The evaluation data folder {uri!r} holds no file.")
    digest = (
        storage.sha256(files[0])
        if len(files) == 1
        else hashlib.sha256("".join(storage.sha256(f) for f in files).encode()).hexdigest()
    )
    frames = []
    for part in files:
        try:
            with storage.filesystem.open_input_file(storage.fs_path(part)) as handle:
                table = pacsv.read_csv(handle) if part.endswith(".csv") else pq.read_table(handle)
        except (OSError, ValueError) as exc:  # pyarrow raises ArrowInvalid (a ValueError) on corrupt files
            raise DataError(f"The evaluation data {part!r} could not be read as Parquet or CSV: {exc}") from exc
        frames.append(table.to_pandas())
    frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    return frame, digest


def _label_key(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "item") and not isinstance(value, str):
        return _label_key(value.item())
    return str(value)


def prepare_data(
    frame: pd.DataFrame, spec: Mapping[str, Any], *, max_rows: int, seed: int, uri: str = "", sha256: str = ""
) -> EvaluationData:
    """Drop rows without a label, sample down to ``max_rows`` (seeded), encode the truth.

    :raises DataError: the target column is missing, no labelled row is left, or a label is not one
        of the model's classes.
    """
    import numpy as np

    task, target, classes = _task_of(spec)
    if target not in frame.columns:
        raise DataError(
            f"The evaluation data has no target column {target!r}. Columns present: {sorted(map(str, frame.columns))}."
        )
    total = len(frame)
    labelled = frame[frame[target].notna()]
    if labelled.empty:
        raise DataError(f"The evaluation data has no row with a value in the target column {target!r} ({total} rows).")
    sampled = len(labelled) > max_rows
    if sampled:
        labelled = labelled.sample(n=max_rows, random_state=seed)
    labelled = labelled.reset_index(drop=True)
    info: dict[str, Any] = {
        "uri": uri,
        "sha256": sha256,
        "rows": len(labelled),
        "rows_total": total,
        "rows_without_label": int(total - int(frame[target].notna().sum())),
        "sampled": sampled,
        "target": target,
    }
    if task == "regression":
        try:
            y = labelled[target].astype("float64").to_numpy()
        except (TypeError, ValueError) as exc:
            raise DataError(f"The target column {target!r} must be numeric for a regression model: {exc}") from exc
        info.update(target_mean=float(y.mean()), target_std=float(y.std()))
    else:
        index = {_label_key(c): i for i, c in enumerate(classes)}
        keys = [_label_key(v) for v in labelled[target].tolist()]
        unknown = sorted({k for k in keys if k not in index})
        if unknown:
            raise DataError(
                f"The target column {target!r} holds label(s) {unknown[:10]} that are not among the model's "
                f"classes {list(map(str, classes))}."
            )
        y = np.fromiter((index[k] for k in keys), dtype=np.int64, count=len(keys))
        counts = np.bincount(y, minlength=len(classes))
        info["class_counts"] = {str(c): int(n) for c, n in zip(classes, counts, strict=True)}
    return EvaluationData(frame=labelled, y=y, info=info)


def _task_of(spec: Mapping[str, Any]) -> tuple[gm.Task, str, list[Any]]:
    task = spec.get("task")
    if task not in ("binary", "multiclass", "regression"):
        raise SpecError(
            f"The training spec's 'task' must be 'binary', 'multiclass' or 'regression'. Got {task!r} instead."
        )
    target = spec.get("target")
    if not isinstance(target, str) or not target:
        raise SpecError(f"The training spec must name its 'target' column. Got {target!r} instead.")
    classes = list(spec.get("classes") or [])
    if task != "regression":
        expected = 2 if task == "binary" else None
        if len(classes) < 2 or (expected and len(classes) != expected):
            raise SpecError(
                f"The training spec of a {task} model must list its 'classes' "
                f"({'exactly two' if expected else 'at least two'}). Got {classes!r} instead."
            )
    return cast(gm.Task, task), target, classes
