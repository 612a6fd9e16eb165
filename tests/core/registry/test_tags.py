"""What a version's description says: the gate's verdict, and where its model card opens."""

from __future__ import annotations

from airflow_mlops.core import contracts
from airflow_mlops.core.registry import model_card_url, version_description
from tests.core.registry.support import gate_receipt


def test_the_card_opens_in_the_mlflow_ui_or_at_its_artifact_uri() -> None:
    assert contracts.ARTIFACT_MODEL_CARD == "gate/model_card.html"
    ui = model_card_url("https://mlflow.example.com/", "7", "abc", "s3://bucket/7/abc/artifacts")
    assert ui == "https://mlflow.example.com/#/experiments/7/runs/abc/artifacts/gate/model_card.html"
    direct = model_card_url("", "7", "abc", "mlflow-artifacts:/7/abc/artifacts/")
    assert direct == "mlflow-artifacts:/7/abc/artifacts/gate/model_card.html"


def test_the_description_links_the_card_of_a_gated_run() -> None:
    url = "https://mlflow.example.com/#/experiments/7/runs/abc/artifacts/gate/model_card.html"
    text = version_description("abc", gate_receipt("abc"), url)
    assert f"**[Model card]({url})**" in text and "**Gate: passed**" in text
    assert "Model card" not in version_description("abc", gate_receipt("abc"))
    assert "Model card" not in version_description("abc", None, url)
