"""What the staleness impact reads: the versions to compare, where each one's training data ends, and
each one's quality on the same labelled batch, scored through the serving path.

Each version is loaded as serving loads it (:func:`~airflow_mlops.core.serving.load.load_serving_model`:
the ONNX bytes checked against the sha256 recorded at registration; nothing is unpickled) and scores the
whole batch with :func:`~airflow_mlops.core.scoring.run.score_partition` into a scratch folder, with its
own feature transforms. Every version's output must carry the same labels in the same order: the rows
compared are the same rows, or the measurement stops.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, ModelVersionError
from airflow_mlops.core.monitoring.arguments import parse_timestamp
from airflow_mlops.core.monitoring.facts import ModelVersionFacts, model_version_facts, snapshot_watermark
from airflow_mlops.core.storage import StorageRoot

if TYPE_CHECKING:
    import numpy as np

_SCRATCH_PARTITION = "staleness-impact"


def versions_to_compare(client: Any, champion: ModelVersionFacts, limit: int) -> list[ModelVersionFacts]:
    """The champion and the newest earlier versions still registered, at most ``limit`` in all, newest
    first. An earlier version the registry cannot serve (no recorded sha256, not READY) is left out."""
    found = client.search_model_versions(f"name = '{champion.name}'")
    earlier = sorted(
        (int(v.version) for v in found if str(v.version).isdigit() and int(v.version) < int(champion.version)),
        reverse=True,
    )
    chosen = [champion]
    for version in earlier:
        if len(chosen) >= limit:
            break
        try:
            chosen.append(model_version_facts(client, champion.name, version=version))
        except ModelVersionError:
            continue
    return chosen


def data_end(facts: ModelVersionFacts, root: StorageRoot) -> tuple[datetime, str]:
    """When ``facts``' training data ends, and where that came from: the ``mlops.data_end`` tag training
    records for a time split (``tag``), else the watermark of the snapshot's ingestion receipt (``receipt``),
    else the registration time (``registered``)."""
    tagged = parse_timestamp(facts.run_tags.get(contracts.TAG_DATA_END), contracts.TAG_DATA_END)
    if tagged is not None:
        return tagged, "tag"
    if facts.dataset_uri:
        watermark = parse_timestamp(snapshot_watermark(root, facts.dataset_uri), "source_watermark")
        if watermark is not None:
            return watermark, "receipt"
    return facts.created_at, "registered"


def quality_on_batch(
    client: Any, root: StorageRoot, batch_uri: str, versions: list[ModelVersionFacts], metric: str
) -> tuple[dict[str, float | None], int]:
    """Each version's ``metric`` on the labelled rows of ``batch_uri`` (the rows whose label, the versions'
    target, is known), and how many rows that is: the same rows for every version.

    :raises DataError: the batch lacks the target column, or two versions' outputs disagree on the rows.
    """
    import numpy as np
    import pandas as pd

    target = str(versions[0].spec.get("target", ""))
    labels: np.ndarray | None = None
    outputs: dict[str, dict[str, Any]] = {}
    for facts in versions:
        if str(facts.spec.get("target", "")) != target:
            raise DataError(f"v{facts.version} predicts {facts.spec.get('target')!r}, the champion {target!r}.")
        scored = _score(client, root, batch_uri, facts, target)
        if labels is not None and not _same(labels, scored["labels"]):
            raise DataError(f"v{facts.version} scored other rows of {batch_uri} than v{versions[0].version}.")
        labels = scored["labels"]
        outputs[facts.version] = scored
    assert labels is not None
    known = ~np.asarray(pd.isna(labels), dtype=bool)  # None, NaN and pd.NA alike: no label yet
    quality = {version: _metric(scored, known, metric) for version, scored in outputs.items()}
    return quality, int(known.sum())


def _same(left: np.ndarray, right: np.ndarray) -> bool:
    """The same labels in the same order (missing ones in the same places)."""
    import pandas as pd

    return bool(pd.Series(left, dtype=object).equals(pd.Series(right, dtype=object)))


def _score(client: Any, root: StorageRoot, batch_uri: str, facts: ModelVersionFacts, target: str) -> dict[str, Any]:
    """``facts``' version scoring every row of the batch in a scratch folder: its outputs and the labels."""
    import pandas as pd

    from airflow_mlops.core.scoring import ScoringSpec, input_filesystem, score_partition
    from airflow_mlops.core.serving import load_serving_model, resolve_model_version, run_transformer

    ref = resolve_model_version(client, facts.name, version=facts.version)
    model = load_serving_model(client, ref)
    transformer = run_transformer(client, ref.run_id, model, root)
    with tempfile.TemporaryDirectory(prefix="mlops-staleness-") as folder:
        spec = ScoringSpec(
            pipeline=str(facts.run_tags.get(contracts.TAG_PIPELINE) or "staleness"),
            partition=_SCRATCH_PARTITION,
            input_uri=batch_uri,
            scored_at=datetime(1970, 1, 1, tzinfo=UTC),
            serving_log_rows=0,
            passthrough_columns=(target,),
        )
        result = score_partition(
            StorageRoot(folder), spec, model, input_fs=input_filesystem(batch_uri, root), transformer=transformer
        )
        frame = pd.read_parquet(result.output_uri)
    columns = model.spec.probability_columns if model.spec.is_classifier else []
    return {
        "labels": frame[target].to_numpy(dtype=object),
        "prediction": frame[contracts.PREDICTION_COLUMN].to_numpy(),
        "probabilities": frame[columns].to_numpy(dtype="float64") if columns else None,
        "task": model.spec.task,
        "classes": tuple(model.spec.classes),
    }


def _metric(scored: dict[str, Any], known: np.ndarray, metric: str) -> float | None:
    """``metric`` of one version's outputs on the ``known`` rows (None when undefined there)."""
    import math

    import numpy as np

    from airflow_mlops.core.metrics import Predictions, compute_metrics

    labels = scored["labels"][known]
    if scored["task"] == "regression":
        predictions = Predictions(values=np.asarray(scored["prediction"][known], dtype="float64"), probabilities=None,
                                  labels=None)  # fmt: skip
        truth = np.asarray(labels, dtype="float64")
    else:
        probabilities = scored["probabilities"][known]
        predictions = Predictions(values=None, probabilities=probabilities, labels=scored["prediction"][known])
        truth = _as_classes(labels, scored["classes"])
    value = compute_metrics(scored["task"], truth, predictions, scored["classes"]).get(metric)
    return None if value is None or not math.isfinite(value) else float(value)


def _as_classes(labels: np.ndarray, classes: tuple[Any, ...]) -> np.ndarray:
    """Labels as the model's classes: a label read back as ``True`` or ``1.0`` is the class ``1``."""
    import numpy as np

    by_text = {str(c): c for c in classes}
    by_number = {}
    for c in classes:
        try:
            by_number[float(c)] = c
        except (TypeError, ValueError):
            continue
    out = []
    for value in labels.tolist():
        if str(value) in by_text:
            out.append(by_text[str(value)])
        elif isinstance(value, bool | int | float) and float(value) in by_number:
            out.append(by_number[float(value)])
        else:
            raise DataError(f"The label {value!r} is none of the model's classes {list(classes)}.")
    return np.asarray(out, dtype=object)
