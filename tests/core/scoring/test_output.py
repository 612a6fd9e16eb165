"""What scoring writes: the schema of an empty partition, clashing passthrough columns, top-k contributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.onnx_model import OnnxModel
from airflow_mlops.core.scoring.output import CONTRIBUTION_FEATURE, CONTRIBUTION_VALUE
from airflow_mlops.core.scoring.run import score_partition
from airflow_mlops.core.serving.explanations import baseline_from_reference
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.scoring import serving, spec_for


def test_an_empty_partition_gives_an_empty_output_with_the_same_schema(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    model = serving(models.flights_classifier("sklearn"))
    february.to_parquet(tmp_path / "full.parquet", index=False)
    pq.write_table(pa.Table.from_pandas(february, preserve_index=False).slice(0, 0), tmp_path / "empty.parquet")
    full = score_partition(root, spec_for(tmp_path / "full.parquet", partition="full"), model)
    empty = score_partition(root, spec_for(tmp_path / "empty.parquet", partition="empty"), model)
    assert empty.rows_in == empty.rows_out == 0
    full_table, empty_table = pq.read_table(full.output_uri), pq.read_table(empty.output_uri)
    assert empty_table.num_rows == 0
    assert empty_table.schema.remove_metadata() == full_table.schema.remove_metadata()
    log = pq.read_table(empty.serving_log_uri)
    assert (
        log.num_rows == 0
        and log.schema.remove_metadata() == pq.read_table(full.serving_log_uri).schema.remove_metadata()
    )


def test_passthrough_columns_must_not_clash_with_outputs(
    root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    february.assign(prediction=1).to_parquet(tmp_path / "x.parquet", index=False)
    with pytest.raises(SpecError, match=r"\['prediction'\] clash"):
        score_partition(
            root,
            spec_for(tmp_path / "x.parquet", passthrough_columns=("prediction",)),
            serving(models.flights_classifier("sklearn")),
        )


def test_top_k_contributions_by_occlusion(root: StorageRoot, february_file: Path, february: pd.DataFrame) -> None:
    trained = models.flights_classifier("lightgbm")
    inputs = serving(trained).spec.inputs
    baseline = baseline_from_reference(pa.Table.from_pandas(trained.reference), inputs)
    assert baseline["distance"] == float(np.median(trained.reference["distance"]))
    assert baseline["carrier"] == trained.reference["carrier"].value_counts().idxmax()
    model = serving(trained, baseline=baseline)
    result = score_partition(root, spec_for(february_file, explain_top_k=3), model)
    out = pq.read_table(result.output_uri).to_pandas()
    names = [CONTRIBUTION_FEATURE.format(rank=r) for r in (1, 2, 3)]
    values = [CONTRIBUTION_VALUE.format(rank=r) for r in (1, 2, 3)]
    assert out.columns.tolist()[6:12] == [c for pair in zip(names, values, strict=True) for c in pair]
    magnitudes = out[values].abs().to_numpy()
    assert (magnitudes[:, :-1] >= magnitudes[:, 1:]).all()
    # Check row 5 by hand: occlude its top feature with the baseline and rescore.
    onnx = OnnxModel(trained.onnx_bytes, inputs)
    row = february.iloc[[5]].copy()
    top = out.loc[5, names[0]]
    occluded = row.assign(**{top: baseline[top]})
    expected = onnx.run(row)["probabilities"][0, 1] - onnx.run(occluded)["probabilities"][0, 1]
    assert out.loc[5, values[0]] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(SpecError, match="only 10 features"):
        score_partition(root, spec_for(february_file, explain_top_k=11), model)
    with pytest.raises(SpecError, match="without one"):
        score_partition(root, spec_for(february_file, explain_top_k=1), serving(trained))
