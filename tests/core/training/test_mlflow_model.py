"""A registered version is a real MLflow model: ``mlflow.pyfunc.load_model("models:/<name>@champion")``
predicts what batch scoring writes, on a real month of flights, and the version shows its signature.
Against a real MLflow server (artifacts proxied), as a deployment runs it."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import IntegrityError
from airflow_mlops.core.onnx_model import feed
from airflow_mlops.core.registry import register_version, registration_tags, version_description, version_source
from airflow_mlops.core.scoring import score_partition
from airflow_mlops.core.serving import load_serving_model, resolve_model_version
from airflow_mlops.core.storage import StorageRoot, sha256_bytes
from airflow_mlops.core.training import TrainingReceipt, parquet_bytes, run_training
from tests.core.training.support import FLIGHTS, spec_of
from tests.support.data import flights
from tests.support.scoring import spec_for
from tests.support.services import MlflowServer

NAME = "flights_delay_pyfunc"  # the server is shared by the session: a name no other test registers


@dataclass(frozen=True)
class Champion:
    client: Any
    receipt: TrainingReceipt
    version: str
    url: str


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory, mlflow_server: MlflowServer) -> Iterator[Champion]:
    """January flights trained and logged by the real training path, registered and aliased champion."""
    base = tmp_path_factory.mktemp("mlflow-model")
    client = mlflow.MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    experiment_id = client.create_experiment("pyfunc-flights")
    root = StorageRoot(str(base / "storage"))
    frame = flights(months=[1], sample=6000)
    snapshot_uri = root.layout("flights", contracts.KIND_SNAPSHOT, "2013-01", "snapshot.parquet")
    sha256 = root.write_bytes(snapshot_uri, parquet_bytes(frame))
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    receipt = run_training(
        spec_of(FLIGHTS), root=root, snapshot_uri=snapshot_uri, snapshot_sha256=sha256,
        pipeline="flights", partition="2013-01", experiment_id=experiment_id,
    )  # fmt: skip
    tags = client.get_run(receipt.run_id).data.tags
    registered = register_version(
        client,
        NAME,
        receipt.run_id,
        source=version_source(client.get_run(receipt.run_id).info.artifact_uri, contracts.ARTIFACT_ONNX_MODEL),
        tags=registration_tags(tags, receipt.run_id, None),
        description=version_description(receipt.run_id, None),
    )
    client.set_registered_model_alias(NAME, contracts.ALIAS_CHAMPION, registered.version)
    yield Champion(client, receipt, registered.version, mlflow_server.url)
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]


@pytest.fixture
def champion(registered: Champion) -> Champion:
    """The registered champion, its server the active one (the conftest resets MLflow after every test)."""
    mlflow.set_tracking_uri(registered.url)
    mlflow.set_registry_uri(registered.url)
    return registered


def test_pyfunc_from_the_registry_predicts_what_batch_scoring_writes(champion: Champion, tmp_path: Path) -> None:
    february = flights(months=[2])  # the whole month, as scoring reads it
    path = tmp_path / "in" / "february.parquet"
    path.parent.mkdir()
    february.to_parquet(path, index=False)
    served = load_serving_model(champion.client, resolve_model_version(champion.client, NAME, alias="champion"))
    root = StorageRoot(str(tmp_path / "storage"))
    result = score_partition(root, spec_for(path), served)
    scored = pq.read_table(result.output_uri).to_pandas()

    pyfunc = mlflow.pyfunc.load_model(f"models:/{NAME}@{contracts.ALIAS_CHAMPION}")
    predicted = pyfunc.predict(february)

    columns = [contracts.PREDICTION_COLUMN, *served.spec.probability_columns]
    assert list(predicted.columns) == columns == ["prediction", "probability_0", "probability_1"]
    assert len(predicted) == len(scored) == len(february) > 20_000
    difference = np.abs(predicted[columns[1:]].to_numpy() - scored[columns[1:]].to_numpy()).max()
    assert difference == 0.0, difference  # the same graph, fed the same float32 and string tensors
    assert (predicted["prediction"].to_numpy() == scored["prediction"].to_numpy()).all()
    assert pyfunc.metadata.metadata[contracts.MLMODEL_METADATA_KEY]["onnx_sha256"] == served.sha256


def test_missing_categories_and_integer_columns_are_fed_as_scoring_feeds_them(champion: Champion) -> None:
    rows = flights(months=[3], sample=300)
    rows.loc[::7, "carrier"] = None
    rows["hour"] = rows["hour"].astype("int64")
    served = load_serving_model(champion.client, resolve_model_version(champion.client, NAME, alias="champion"))
    expected = served.predict(feed(rows, served.spec.inputs))
    predicted = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(rows)
    assert expected.probabilities is not None
    np.testing.assert_array_equal(predicted[served.spec.probability_columns].to_numpy(), expected.probabilities)


def test_the_version_is_an_mlflow_model_with_a_signature(champion: Champion) -> None:
    version = champion.client.get_model_version(NAME, champion.version)
    # the folder in the run's artifact root, as mlflow.register_model resolves runs:/<run>/onnx
    receipt = champion.receipt
    assert version.source == f"mlflow-artifacts:/{receipt.experiment_id}/{receipt.run_id}/artifacts/onnx"
    info = mlflow.models.get_model_info(f"models:/{NAME}/{champion.version}")
    assert {"onnx", "python_function"} <= set(info.flavors)
    assert info.flavors["python_function"]["loader_module"] == "airflow_mlops.core.serving.pyfunc"
    inputs = {spec.name: spec.type.name for spec in info.signature.inputs.inputs}
    assert inputs == {
        "hour": "long", "minute": "long", "distance": "long",  # as in the flights data
        "carrier": "string", "origin": "string", "dest": "string",
    }  # fmt: skip
    assert [spec.name for spec in info.signature.outputs.inputs] == ["prediction", "probability_0", "probability_1"]
    folder = Path(mlflow.artifacts.download_artifacts(f"models:/{NAME}/{champion.version}"))
    assert sha256_bytes((folder / "model.onnx").read_bytes()) == champion.receipt.onnx_sha256
    assert (folder / "input_example.json").is_file() and (folder / "serving_input_example.json").is_file()
    requirements = (folder / "requirements.txt").read_text().split()
    assert requirements and all("==" in line for line in requirements), requirements
    assert any(line.startswith("airflow-mlops==") for line in requirements)
    # what the MLflow UI reads to show the version's "Inputs" and "Outputs"
    query = urllib.parse.urlencode({"path": "MLmodel", "name": NAME, "version": champion.version})
    with urllib.request.urlopen(f"{champion.url}/model-versions/get-artifact?{query}", timeout=30) as answer:
        shown = yaml.safe_load(answer.read())
    assert [column["name"] for column in json.loads(shown["signature"]["inputs"])] == list(inputs)
    raw = mlflow.onnx.load_model(f"models:/{NAME}/{champion.version}")  # the onnx flavor: the graph as exported
    assert [o.name for o in raw.graph.output] == ["label", "probabilities"]


def test_the_selection_model_is_an_mlflow_model_too(champion: Champion) -> None:
    run_id = champion.receipt.run_id
    selection = mlflow.pyfunc.load_model(f"runs:/{run_id}/{contracts.ARTIFACT_ONNX_SELECTION_MODEL}")
    sha256 = champion.client.get_run(run_id).data.tags[contracts.TAG_SELECTION_ONNX_SHA256]
    assert selection.metadata.metadata[contracts.MLMODEL_METADATA_KEY]["onnx_sha256"] == sha256
    assert len(selection.predict(flights(months=[2], sample=50))) == 50


def test_a_changed_graph_is_refused_by_the_pyfunc_loader(champion: Champion, tmp_path: Path) -> None:
    folder = Path(
        mlflow.artifacts.download_artifacts(f"models:/{NAME}/{champion.version}", dst_path=str(tmp_path / "copy"))
    )
    graph = folder / "model.onnx"
    graph.write_bytes(graph.read_bytes().replace(b"probabilities", b"probabilitiez"))
    with pytest.raises(IntegrityError, match="sha256"):
        mlflow.pyfunc.load_model(str(folder))
    frame = pd.DataFrame({"hour": [5]})
    with pytest.raises(Exception, match="carrier"):
        mlflow.pyfunc.load_model(f"models:/{NAME}/{champion.version}").predict(frame)


def test_a_regressor_is_saved_with_its_value_as_the_prediction(tmp_path: Path) -> None:
    from airflow_mlops.core.serving.model import ServingModel
    from airflow_mlops.core.training import train_model
    from airflow_mlops.core.training.mlflow_model import save_onnx_model

    spec = spec_of(FLIGHTS, task="regression", target="arr_delay", estimator={"params": {"n_estimators": 30}})
    result = train_model(flights(months=[4], sample=3000), spec)
    save_onnx_model(tmp_path / "onnx", result.onnx_bytes, result)
    pyfunc = mlflow.pyfunc.load_model(str(tmp_path / "onnx"))
    assert [c.name for c in pyfunc.metadata.signature.outputs.inputs] == ["prediction"]
    rows = flights(months=[5], sample=200)
    served = ServingModel.from_bytes(
        result.onnx_bytes, result.spec_artifact(), name="delay", version="1", expected_sha256=result.onnx_sha256
    )
    predicted = pyfunc.predict(rows)
    assert list(predicted.columns) == ["prediction"]
    np.testing.assert_array_equal(
        predicted["prediction"].to_numpy(), served.predict(feed(rows, served.spec.inputs)).values
    )
