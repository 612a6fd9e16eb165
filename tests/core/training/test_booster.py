"""The LightGBM text model training logs for serving.runtime 'compiled': its bytes and sha256 tag."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from airflow_mlops.core import contracts
from airflow_mlops.core.training.booster import write_lightgbm_text
from tests.support import models


def test_a_lightgbm_pipeline_logs_its_text_model_with_the_sha256_tag(tmp_path: Path) -> None:
    import lightgbm

    trained = models.flights_onehot_lightgbm()
    tags = write_lightgbm_text(trained.native, tmp_path)
    text = (tmp_path / contracts.ARTIFACT_LIGHTGBM_TEXT).read_bytes()
    assert tags == {contracts.TAG_LIGHTGBM_SHA256: hashlib.sha256(text).hexdigest()}
    booster = lightgbm.Booster(model_str=text.decode())
    rows = trained.native_frame(trained.reference)
    encoded = trained.native[:-1].transform(rows)
    np.testing.assert_allclose(booster.predict(encoded), trained.native.predict_proba(rows)[:, 1], atol=1e-12)


def test_other_estimators_log_nothing(tmp_path: Path) -> None:
    assert write_lightgbm_text(models.flights_classifier("sklearn").native, tmp_path) == {}
    assert not list(tmp_path.iterdir())
