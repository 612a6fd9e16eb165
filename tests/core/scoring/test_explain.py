"""Single-prediction explanations of a real LightGBM champion, through the core and the CLI."""

from __future__ import annotations

import json
import math

import pytest

from airflow_mlops.cli import explain as cli
from airflow_mlops.core import contracts
from airflow_mlops.core.errors import DataError, SpecError
from airflow_mlops.core.scoring.explain import explain_row, read_row
from airflow_mlops.core.serving import resolve_model_version
from airflow_mlops.core.storage import StorageRoot
from airflow_mlops.hooks.mlflow import MlflowHook
from tests.operators.monitoring_support import MODEL, Champion, use_shared_champion
from tests.support.data import flights

FEATURES = ["hour", "minute", "sched_dep_time", "sched_arr_time", "distance", "carrier", "origin", "dest"]
# The shipped spec's feature transforms: a row gives the scheduled departure, the explanation the derived
# day of week and the weather joined as of it (docs/features.md).
INPUTS = [*FEATURES, "sched_dep_ts"]
PRODUCED = ["sched_dow", "temp", "visib", "precip", "wind_speed"]


@pytest.fixture
def champion_env(monkeypatch: pytest.MonkeyPatch) -> Champion:
    return use_shared_champion(monkeypatch)


def a_flight(index: int = 0) -> dict:
    return flights(months=[3], sample=50).iloc[index][INPUTS].to_dict()


def test_contributions_add_up_to_the_native_log_odds_and_onnx_agrees(champion_env: Champion) -> None:
    client = MlflowHook().get_conn()
    ref = resolve_model_version(client, MODEL, alias=contracts.ALIAS_CHAMPION)
    explanation = explain_row(client, ref, a_flight()).to_dict()
    json.dumps(explanation)
    assert explanation["method"] == "lightgbm_pred_contrib" and explanation["explained_output"] == "log-odds of class 1"
    assert {c["feature"] for c in explanation["contributions"]} == {*FEATURES, *PRODUCED}
    assert explanation["inputs"]["sched_dow"] == a_flight()["sched_dep_ts"].isoweekday()
    total = explanation["bias"] + sum(c["contribution"] for c in explanation["contributions"])
    assert total == pytest.approx(explanation["raw_score"], abs=1e-9)
    native_p1 = explanation["native"]["probabilities"]["1"]
    assert 1 / (1 + math.exp(-total)) == pytest.approx(native_p1, abs=1e-9)
    assert explanation["onnx"]["probabilities"]["1"] == pytest.approx(native_p1, abs=1e-5)
    assert explanation["native_onnx_difference"] < 1e-5
    # the carrier is one-hot encoded: its own column is 1, the others 0 (all 0 for a rare carrier)
    carrier = explanation["inputs"]["carrier"]
    one_hot = {k: v for k, v in explanation["transformed"].items() if k.startswith("categorical__carrier_")}
    assert len(one_hot) > 1 and sum(one_hot.values()) == (1.0 if f"categorical__carrier_{carrier}" in one_hot else 0.0)
    assert explanation["transformed"]["numeric__distance"] == pytest.approx(float(explanation["inputs"]["distance"]))


def test_a_missing_feature_is_named(champion_env: Champion) -> None:
    client = MlflowHook().get_conn()
    ref = resolve_model_version(client, MODEL, alias=contracts.ALIAS_CHAMPION)
    row = {k: v for k, v in a_flight().items() if k != "dest"}
    with pytest.raises(DataError, match=r"\['dest'\]"):
        explain_row(client, ref, row)


def test_cli_prints_a_summary_and_the_json(champion_env: Champion, capsys: pytest.CaptureFixture[str]) -> None:
    row = json.dumps(a_flight(3), default=str)
    assert cli.main(["--model", MODEL, "--row", row, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["model"]["version"] == champion_env.version and document["model"]["alias"] == "champion"
    assert cli.main(["--model", MODEL, "--version", champion_env.version, "--row", row]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Model {MODEL} v{champion_env.version} (binary)") and "(bias)" in out
    assert cli.main(["--model", MODEL, "--version", "99", "--row", row]) == 2
    assert "has no version 99" in capsys.readouterr().err


def test_read_row_takes_a_mapping_json_or_a_parquet_row(tmp_path) -> None:  # type: ignore[no-untyped-def]
    root = StorageRoot(str(tmp_path))
    path = tmp_path / "rows.parquet"
    flights(months=[3], sample=20).to_parquet(path, index=False)
    assert read_row(root, {"a": 1}, None) == ({"a": 1}, None)
    assert read_row(root, '{"a": 1}', None) == ({"a": 1}, None)
    row, index = read_row(root, None, str(path), "7")
    assert index == 7 and row["flight"] == int(flights(months=[3], sample=20).iloc[7]["flight"])
    with pytest.raises(SpecError, match="out of range"):
        read_row(root, None, str(path), 20)
    with pytest.raises(SpecError, match="either 'row'"):
        read_row(root, {"a": 1}, str(path))


def test_python_dash_m_in_a_fresh_process(champion_env: Champion, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    rows = tmp_path / "rows.parquet"
    flights(months=[3], sample=20).to_parquet(rows, index=False)
    done = subprocess.run(
        [sys.executable, "-m", "airflow_mlops", "explain", "--model", MODEL, "--input", str(rows), "--index", "5",
         "--json"],
        capture_output=True, text=True, timeout=180, env=dict(os.environ), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    document = json.loads(done.stdout)
    assert document["inputs"]["dest"] == flights(months=[3], sample=20).iloc[5]["dest"]
    assert document["model"]["version"] == champion_env.version


def test_without_a_native_model_it_explains_by_occlusion_through_onnx(champion_env: Champion) -> None:
    from tests.support import models

    hook = MlflowHook()
    client = hook.get_conn()
    trained = models.flights_classifier("sklearn")
    models.register(client, trained, "flights_onnx_only", experiment_id=hook.ensure_experiment("flights"))
    ref = resolve_model_version(client, "flights_onnx_only", alias=contracts.ALIAS_CHAMPION)
    row = {c: trained.reference.iloc[0][c] for c in models.FLIGHT_NUMERIC + models.FLIGHT_CATEGORICAL}
    explanation = explain_row(client, ref, row).to_dict()
    assert explanation["method"] == "onnx_occlusion" and explanation["native"] is None
    assert explanation["explained_output"] == "probability of class 1 (the positive class)"
    assert {c["feature"] for c in explanation["contributions"]} == set(row)
    assert any(c["contribution"] != 0.0 for c in explanation["contributions"])
    assert explanation["bias"] is None and explanation["transformed"] == {}
