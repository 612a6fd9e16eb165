"""The ``python_function`` loader of the MLflow models training logs: what makes
``mlflow.pyfunc.load_model("models:/<name>@champion")`` and ``mlflow models serve`` predict what batch
scoring predicts.

Training saves each exported graph as an MLflow model (:mod:`airflow_mlops.core.training.mlflow_model`):
the ``onnx`` flavor holds the graph unchanged, and the ``python_function`` flavor names this module as
its loader. MLflow's own ONNX pyfunc cannot feed our graphs: it passes each DataFrame column as a 1-D
array (the graph takes ``[None, 1]``), leaves missing categories as NaN and integer columns as int64,
and flattens the ``(rows, classes)`` probabilities into one column. Here a frame goes through the same
:func:`~airflow_mlops.core.onnx_model.feed` and :class:`~airflow_mlops.core.serving.model.ServingModel`
as every other path of this package, after the graph's sha256 is checked against the one recorded in
the MLmodel metadata; nothing is unpickled.

The output is a frame shaped like the scorer's: ``prediction``, and for classifiers one
``probability_<class>`` column per class (float32, classes in the training spec's order).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts
from airflow_mlops.core.errors import ArtifactError
from airflow_mlops.core.onnx_model import feed
from airflow_mlops.core.serving.model import Prediction, ServingModel

if TYPE_CHECKING:
    import pandas as pd

MLMODEL_FILE = "MLmodel"


def prediction_frame(prediction: Prediction, model: ServingModel, index: Any = None) -> pd.DataFrame:
    """``prediction`` as the scorer's output columns: ``prediction`` and ``probability_<class>``."""
    import pandas as pd

    columns: dict[str, Any] = {contracts.PREDICTION_COLUMN: prediction.values}
    if prediction.probabilities is not None:
        for position, name in enumerate(model.spec.probability_columns):
            columns[name] = prediction.probabilities[:, position]
    return pd.DataFrame(columns, index=index)


class OnnxPyfunc:
    """The model ``mlflow.pyfunc.load_model`` wraps: one checked ONNX graph, fed from frames."""

    def __init__(self, model: ServingModel) -> None:
        self.model = model

    def predict(self, data: Any, params: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Predictions for a frame (or anything ``pandas.DataFrame`` accepts) of raw feature columns.

        :raises DataError: a feature column is missing or not numeric, or a row got no valid prediction.
        """
        import pandas as pd

        frame = data if isinstance(data, pd.DataFrame) else pd.DataFrame(data)
        prediction = self.model.predict(feed(frame, self.model.spec.inputs))
        return prediction_frame(prediction, self.model, index=frame.index)

    def get_raw_model(self) -> ServingModel:
        return self.model


def model_metadata(folder: Path) -> Mapping[str, Any]:
    """The ``mlops`` metadata of the MLflow model in ``folder`` (see :data:`contracts.MLMODEL_METADATA_KEY`).

    :raises ArtifactError: there is no MLmodel, or it carries no such metadata.
    """
    from mlflow.models import Model

    path = folder / MLMODEL_FILE
    if not path.is_file():
        raise ArtifactError(f"{folder} is not an MLflow model folder: it has no {MLMODEL_FILE} file.")
    metadata = (Model.load(str(path)).metadata or {}).get(contracts.MLMODEL_METADATA_KEY)
    if not isinstance(metadata, Mapping) or not metadata.get("onnx_sha256"):
        raise ArtifactError(
            f"The MLmodel in {folder} has no {contracts.MLMODEL_METADATA_KEY!r} metadata with an 'onnx_sha256': "
            "it was not saved by this package's trainer."
        )
    return metadata


def _load_pyfunc(path: str, model_config: Any = None) -> OnnxPyfunc:
    """Called by ``mlflow.pyfunc.load_model`` with the path of the flavor's data, the ONNX file.

    :raises IntegrityError: the file does not hash to the sha256 recorded when the model was saved.
    """
    data = Path(path)
    metadata = model_metadata(data.parent)
    sha256 = str(metadata["onnx_sha256"])
    model = ServingModel.from_bytes(
        data.read_bytes(), metadata, name=str(data.parent), version=sha256[:12], expected_sha256=sha256
    )
    return OnnxPyfunc(model)
