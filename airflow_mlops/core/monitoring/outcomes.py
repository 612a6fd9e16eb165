"""What the proxy correlation check reads to measure a business outcome after serving: the served
predictions of a run's partitions (scoring receipts), and the measured value per row, from the same
output (a column passed through by scoring) or joined from a file that arrived later on the row's keys.
The measure itself is :meth:`airflow_mlops.core.pipeline.outcome.Outcome.evaluate`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError
from airflow_mlops.core.monitoring.facts import locate
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.pipeline.business import BusinessValue
    from airflow_mlops.core.pipeline.outcome import Outcome


def measure_outcomes(root: StorageRoot, receipts: Sequence[Mapping[str, Any]], outcome: Outcome) -> dict[str, Any]:
    """Per serving version, ``outcome`` over every row it served in ``receipts`` (partitions scoring
    skipped are left out): ``{version: BusinessValue}``, with the rows still waiting for their outcome.

    :raises DataError: an output lacks the positive-class probability, the outcome column or a key, or the
        outcome source holds a key twice.
    """
    import numpy as np
    import pandas as pd

    source = None if outcome.source is None else _read_source(root, outcome)
    gathered: dict[str, list[Any]] = {}
    for receipt in receipts:
        if receipt.get("skipped") or not receipt.get("output_uri"):
            continue
        frame = _served(root, str(receipt["output_uri"]), outcome, source)
        gathered.setdefault(str(receipt["model_version"]), []).append(frame)
    measured: dict[str, Any] = {}
    for version, frames in gathered.items():
        both = pd.concat(frames, ignore_index=True)
        value: BusinessValue = outcome.evaluate(
            both["outcome"].to_numpy(dtype="float64"), both["probability"].to_numpy(dtype="float64")
        )
        pending = int(np.isnan(both["outcome"].to_numpy(dtype="float64")).sum())
        measured[version] = {**value.to_dict(), "pending_rows": pending, "description": outcome.describe()}
    return measured


def _served(root: StorageRoot, uri: str, outcome: Outcome, source: pd.DataFrame | None) -> pd.DataFrame:
    """One output's positive-class probability and outcome per row (NaN while the outcome is unknown)."""
    import pandas as pd

    from airflow_mlops.core.monitoring.facts import parquet_schema

    schema = parquet_schema(root, uri)
    probabilities = [c for c in schema if c.startswith(contracts.PROBABILITY_COLUMN_PREFIX)]
    if len(probabilities) != 2:
        raise DataError(f"{uri!r} holds no binary class probabilities ({probabilities}): an outcome needs them.")
    wanted = [*outcome.keys] if source is not None else [outcome.column]
    missing = [c for c in wanted if c not in schema]
    if missing:
        raise DataError(
            f"The served output {uri!r} lacks {missing}, which the outcome {outcome.name!r} needs: pass them "
            "through scoring (serving.passthrough_columns)."
        )
    where, path = locate(root, uri)
    frame = pd.read_parquet(where.fs_path(path), filesystem=where.filesystem, columns=[probabilities[-1], *wanted])
    frame = frame.rename(columns={probabilities[-1]: "probability"})
    if source is None:
        return frame.rename(columns={outcome.column: "outcome"})
    joined = frame.merge(source, on=list(outcome.keys), how="left", validate="many_to_one")
    return joined[["probability", "outcome"]]


def _read_source(root: StorageRoot, outcome: Outcome) -> pd.DataFrame:
    """The outcome source's keys and value, one row per key."""
    import pandas as pd

    uri = str(outcome.source)
    if not uri.startswith(("s3://", "/", "file://")):
        uri = root.join(uri)  # relative: under the storage root
    where, path = locate(root, uri)
    try:
        frame = pd.read_parquet(
            where.fs_path(path), filesystem=where.filesystem, columns=[*outcome.keys, outcome.column]
        )
    except (OSError, KeyError, ValueError) as exc:
        columns = [*outcome.keys, outcome.column]
        raise DataError(f"The outcome source {uri!r} cannot be read with {columns}: {exc}") from exc
    duplicated = int(frame.duplicated(list(outcome.keys)).sum())
    if duplicated:
        raise DataError(f"The outcome source {uri!r} holds {duplicated} key(s) {list(outcome.keys)} more than once.")
    return frame.rename(columns={outcome.column: "outcome"})
