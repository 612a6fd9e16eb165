"""Occlusion explanations: one implementation, one score, whichever path asks.

For a binary model the explained score is the probability of the positive class (the larger of the
two sorted classes), whatever the row's predicted label: the scored file's top-k columns and
``explain_row`` give the same row the same contributions, sign included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import SpecError
from airflow_mlops.core.onnx_model import OnnxModel, feed
from airflow_mlops.core.scoring import CONTRIBUTION_FEATURE, CONTRIBUTION_VALUE, explain_row, score_partition
from airflow_mlops.core.serving import (
    baseline_from_reference,
    explained_output,
    load_serving_model,
    occlusion_contributions,
    resolve_model_version,
)
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.scoring import serving, spec_for


def with_baseline(trained: models.TrainedModel) -> Any:
    inputs = serving(trained).spec.inputs
    return serving(trained, baseline=baseline_from_reference(pa.Table.from_pandas(trained.reference), inputs))


def test_binary_contributions_explain_the_positive_class_whatever_the_label(february: pd.DataFrame) -> None:
    trained = models.flights_classifier("sklearn")
    model = with_baseline(trained)
    rows = february.head(400)
    fed = feed(rows, model.spec.inputs)
    prediction = model.predict(fed)
    assert set(prediction.values.tolist()) == {0, 1}  # both labels occur, so the sign rule is exercised
    contributions = occlusion_contributions(model, fed, prediction)
    onnx = OnnxModel(trained.onnx_bytes, model.spec.inputs)
    for j, item in enumerate(model.spec.inputs):
        occluded = rows.assign(**{item.column: model.baseline[item.name]})
        expected = onnx.run(rows)["probabilities"][:, 1] - onnx.run(occluded)["probabilities"][:, 1]
        np.testing.assert_allclose(contributions[:, j], expected, atol=1e-6, err_msg=item.column)
    assert explained_output(model.spec) == "probability of class 1 (the positive class)"
    with pytest.raises(SpecError, match="need a baseline row"):
        occlusion_contributions(serving(trained), fed, prediction)


def test_the_scored_file_and_explain_row_agree_on_a_binary_model(
    registry: tuple[Any, str], root: StorageRoot, tmp_path: Path, february: pd.DataFrame
) -> None:
    client, experiment_id = registry
    trained = models.flights_classifier("sklearn")
    models.register(client, trained, "flights_explained", experiment_id=experiment_id)
    ref = resolve_model_version(client, "flights_explained", alias=contracts.ALIAS_CHAMPION)
    model = load_serving_model(client, ref, with_baseline=True)
    rows = february.head(200).reset_index(drop=True)
    rows.to_parquet(tmp_path / "rows.parquet", index=False)
    top_k = len(model.spec.inputs)
    result = score_partition(root, spec_for(tmp_path / "rows.parquet", explain_top_k=top_k), model)
    scored = pq.read_table(result.output_uri).to_pandas()
    negative = int(np.flatnonzero(scored["prediction"].to_numpy() == 0)[0])
    positive = int(np.flatnonzero(scored["prediction"].to_numpy() == 1)[0])
    for index in (negative, positive):
        from_file = {
            scored.loc[index, CONTRIBUTION_FEATURE.format(rank=r)]: scored.loc[index, CONTRIBUTION_VALUE.format(rank=r)]
            for r in range(1, top_k + 1)
        }
        explanation = explain_row(client, ref, rows.iloc[index][model.spec.feature_columns].to_dict()).to_dict()
        assert explanation["method"] == "onnx_occlusion"
        from_cli = {c["feature"]: c["contribution"] for c in explanation["contributions"]}
        assert set(from_cli) == set(from_file)
        assert any(abs(v) > 1e-4 for v in from_cli.values())
        for feature, value in from_file.items():
            assert np.sign(from_cli[feature]) == np.sign(value), (index, feature)
            assert from_cli[feature] == pytest.approx(float(value), abs=1e-6), (index, feature)
