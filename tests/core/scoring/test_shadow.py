"""Shadow scoring: the challenger compared on the same batches, never touching the served output."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from airflow_mlops.core.scoring.run import score_partition
from airflow_mlops.core.storage import StorageRoot
from tests.support import models
from tests.support.scoring import serving, spec_for


def test_shadow_report_compares_without_touching_the_served_output(
    root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    champion_model = models.flights_classifier("sklearn")
    challenger_model = models.flights_classifier("lightgbm")
    champion, challenger = serving(champion_model, "3"), serving(challenger_model, "4", alias="challenger")
    alone = score_partition(root, spec_for(february_file, partition="alone"), champion)
    shadowed = score_partition(root, spec_for(february_file, partition="shadowed"), champion, shadow=challenger)
    served = pq.read_table(shadowed.output_uri)
    assert served.replace_schema_metadata(None).equals(pq.read_table(alone.output_uri).replace_schema_metadata(None))
    assert shadowed.shadow_report_uri == root.layout("flights", "shadow", "shadowed", "report.json")
    report = json.loads(root.read_bytes(shadowed.shadow_report_uri))
    native = champion_model.native_frame(february)
    a = champion_model.native.predict_proba(native)[:, 1]
    b = challenger_model.native.predict_proba(native)[:, 1]
    assert report["status"] == "ok" and report["rows"] == len(february)
    assert report["champion"]["version"] == "3" and report["challenger"]["version"] == "4"
    assert report["challenger"]["onnx_sha256"] == challenger_model.sha256
    assert report["agreement_rate"] == pytest.approx(np.mean((a >= 0.5) == (b >= 0.5)), abs=2e-3)
    assert report["score"]["champion"]["mean"] == pytest.approx(a.mean(), abs=1e-5)
    assert report["score"]["challenger"]["quantiles"]["p50"] == pytest.approx(np.median(b), abs=1e-4)
    assert report["score"]["mean_abs_difference"] == pytest.approx(np.abs(a - b).mean(), abs=1e-5)
    assert 0 < report["score"]["ks_statistic"] < 1 and report["score"]["psi"] >= 0
    assert sum(report["label_share"]["champion"].values()) == pytest.approx(1.0)
    assert shadowed.shadow == {
        "status": "ok", "challenger_version": "4", "agreement_rate": report["agreement_rate"], "reason": None,
        "labelled_rows": len(february),
    }  # fmt: skip
    # The input carries the label: both models' quality on the same rows, as the gate computes it.
    from sklearn.metrics import roc_auc_score

    truth = february["arr_delayed_15"].astype(int)
    assert report["quality"]["label"] == "arr_delayed_15" and report["quality"]["rows"] == len(february)
    assert report["quality"]["champion"]["roc_auc"] == pytest.approx(roc_auc_score(truth, a), abs=1e-4)
    assert report["quality"]["challenger"]["roc_auc"] == pytest.approx(roc_auc_score(truth, b), abs=1e-4)
    unlabelled = february.drop(columns=["arr_delayed_15"])
    unlabelled.to_parquet(february_file, index=False)
    blind = score_partition(root, spec_for(february_file, partition="blind"), champion, shadow=challenger)
    assert "quality" not in json.loads(root.read_bytes(blind.shadow_report_uri))
    assert blind.shadow is not None and blind.shadow["labelled_rows"] == 0


def test_each_model_is_shadowed_through_its_own_feature_transforms(
    root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    """The challenger's graph reads ``distance_miles``, a column only its own version's transforms produce
    (from ``distance``): scored through them it agrees with the same graph fed ``distance`` directly."""
    trained = models.flights_classifier("lightgbm")
    spec = copy.deepcopy(trained.spec)
    for graph_input in spec["onnx_inputs"]:
        if graph_input["column"] == "distance":
            graph_input["column"] = "distance_miles"
    spec["numeric_features"] = ["distance_miles" if c == "distance" else c for c in spec["numeric_features"]]
    spec["transforms"] = {"derived": {"distance_miles": "distance * 1"}}
    champion = serving(trained, "1")
    challenger = serving(dataclasses.replace(trained, spec=spec), "2", alias="challenger")
    assert challenger.spec.transforms != champion.spec.transforms
    result = score_partition(root, spec_for(february_file, partition="own"), champion, shadow=challenger)
    report = json.loads(root.read_bytes(result.shadow_report_uri))
    assert report["status"] == "ok", report["error"]
    assert report["agreement_rate"] == 1.0 and report["score"]["max_abs_difference"] == 0.0
    assert report["quality"]["champion"] == report["quality"]["challenger"]
    # And the other way round: the champion's transforms run on the batches, the challenger reads raw columns.
    back = score_partition(root, spec_for(february_file, partition="back"), challenger, shadow=champion)
    assert json.loads(root.read_bytes(back.shadow_report_uri))["agreement_rate"] == 1.0


def test_a_broken_or_missing_challenger_only_shows_in_the_report(
    root: StorageRoot, february_file: Path, february: pd.DataFrame
) -> None:
    champion = serving(models.flights_classifier("sklearn"))
    origin = serving(models.flights_origin_classifier(), "9")  # needs no column the input lacks...
    bike = serving(models.bike_regressor(), "10")  # ...this one needs columns flights do not have
    failed = score_partition(root, spec_for(february_file, partition="a"), champion, shadow=bike)
    report = json.loads(root.read_bytes(failed.shadow_report_uri))
    assert report["status"] == "failed" and "lacks column(s)" in report["error"] and "'hum'" in report["error"]
    assert failed.rows_out == len(february)
    skipped = score_partition(root, spec_for(february_file, partition="b"), champion, shadow_skipped="no alias")
    assert json.loads(root.read_bytes(skipped.shadow_report_uri))["status"] == "skipped"
    assert skipped.shadow == {
        "status": "skipped",
        "challenger_version": None,
        "agreement_rate": None,
        "reason": "no alias",
        "labelled_rows": 0,
    }
    other_task = score_partition(root, spec_for(february_file, partition="c"), champion, shadow=origin)
    assert json.loads(root.read_bytes(other_task.shadow_report_uri))["status"] == "ok"
