"""The serving model checks its ONNX bytes and graph before anything is scored."""

from __future__ import annotations

import pytest

from airflow_mlops.core.errors import IntegrityError, SpecError
from airflow_mlops.core.serving.model import ServingModel
from tests.support import models


def test_model_integrity_and_contract_are_checked_before_scoring() -> None:
    trained = models.flights_classifier("sklearn")
    with pytest.raises(IntegrityError, match="was changed"):
        ServingModel.from_bytes(trained.onnx_bytes, trained.spec, name="m", version="1", expected_sha256="0" * 64)
    with pytest.raises(SpecError, match=r"lacks output\(s\) \['variable'\]"):
        ServingModel.from_bytes(
            trained.onnx_bytes, {**trained.spec, "task": "regression"}, name="m", version="1", expected_sha256=None
        )
    with pytest.raises(SpecError, match="exactly two 'classes'"):
        ServingModel.from_bytes(
            trained.onnx_bytes, {**trained.spec, "classes": [0, 1, 2]}, name="m", version="1", expected_sha256=None
        )
