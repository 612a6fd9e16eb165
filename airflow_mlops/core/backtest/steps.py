"""The steps of a replayed batch, each one call into the stem the reference DAGs run it with:
training (:func:`~airflow_mlops.core.training.train_model`), serving (the champion's ONNX graph through
:class:`~airflow_mlops.core.serving.ServingModel`, fed as scoring feeds it), the drift check's core
(:func:`~airflow_mlops.core.drift.report.compute_drift` against the champion's training reference), and
the gate (:func:`~airflow_mlops.core.gating.evaluate`). Nothing here re-implements a step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_mlops.core import contracts

if TYPE_CHECKING:
    import pandas as pd

    from airflow_mlops.core.backtest.registry import ModelVersion
    from airflow_mlops.core.drift import DriftResult
    from airflow_mlops.core.features.apply import Transformer
    from airflow_mlops.core.gating import GateDecision, ModelUnderTest
    from airflow_mlops.core.serving import ServingModel
    from airflow_mlops.core.training import TrainingResult, TrainingSpec


def train(frame: pd.DataFrame, spec: TrainingSpec, transformer: Transformer | None = None) -> TrainingResult:
    """Train as the training task does, without MLflow: a parity-checked ONNX model in memory (the feature
    transforms run through ``transformer``, which holds the dimensions of their joins)."""
    from airflow_mlops.core.training import train_model

    return train_model(frame, spec, transformer=transformer)


def serving_model(version: ModelVersion, model_name: str) -> ServingModel:
    """The version as serving loads it: the ONNX bytes held to their sha256, checked against the contract."""
    from airflow_mlops.core.serving import ServingModel

    result = version.result
    return ServingModel.from_bytes(
        result.onnx_bytes, version.spec_artifact(), name=model_name, version=version.version,
        expected_sha256=result.onnx_sha256, alias=contracts.ALIAS_CHAMPION,
    )  # fmt: skip


def serve(
    model: ServingModel, batch: pd.DataFrame, target: str, transformer: Transformer | None = None
) -> pd.DataFrame:
    """The batch's features and label with the model's outputs: the serving log of a labelled batch.

    The version's feature transforms run first (through ``transformer``), then the rows go through Arrow as
    scoring streams them (``feed_arrow``), so coercion is scoring's.
    """
    import pyarrow as pa

    from airflow_mlops.core.onnx_model import feed_arrow

    if model.spec.transforms and transformer is not None:
        raw = list(dict.fromkeys([*model.spec.input_columns, target]))
        batch = transformer.apply_frame(batch[[c for c in raw if c in batch.columns]].reset_index(drop=True))
    columns = list(dict.fromkeys([*model.spec.feature_columns, target]))
    served = batch[[c for c in columns if c in batch.columns]].reset_index(drop=True)
    table = pa.Table.from_pandas(served[model.spec.feature_columns], preserve_index=False)
    prediction = model.predict(feed_arrow(table, model.spec.inputs))
    served[contracts.PREDICTION_COLUMN] = prediction.values
    if prediction.probabilities is not None:
        for index, name in enumerate(model.spec.probability_columns):
            served[name] = prediction.probabilities[:, index]
    return served


def check_drift(
    version: ModelVersion, served: pd.DataFrame, drift_spec: Mapping[str, Any], business: Mapping[str, Any] | None
) -> DriftResult:
    """The drift check of a labelled serving log against the version's training reference, with the
    pipeline file's drift spec filled in from the version's training spec and the drift share weighed
    by the version's feature importance (as the drift task does with the champion's run)."""
    from airflow_mlops.core.drift import DriftSpec, compute_drift

    extra = {"business_metric": dict(business)} if business else {}
    spec = DriftSpec.from_mapping({**dict(drift_spec), **extra, "html_report": False}, version.spec_artifact())
    return compute_drift(version.result.reference, served, spec, importance=version.result.importance or None)


def model_under_test(version: ModelVersion, role: str) -> ModelUnderTest:
    """The version as the gate receives it from the registry: ONNX bytes, spec artifact, recorded
    sha256 and logged parity; a candidate also brings its training sample for the baseline.

    The gate judges a candidate on its own test split, so a candidate refitted on every row is judged
    by its selection model (which never saw those rows), as the live gate does; the champion is the
    model it registered."""
    from airflow_mlops.core.gating import ModelUnderTest
    from airflow_mlops.core.storage import sha256_bytes

    result, fit = version.result, version.result.fit
    selection = fit.selection_onnx_bytes if role == "candidate" else None
    judged = selection is not None
    onnx_bytes = selection if selection is not None else result.onnx_bytes
    parity = fit.selection_parity if judged and fit.selection_parity is not None else result.parity
    sample = fit.selection_reference if judged and fit.selection_reference is not None else result.reference
    return ModelUnderTest(
        role="candidate" if role == "candidate" else "champion",
        onnx_bytes=onnx_bytes,
        spec=version.spec_artifact(),
        run_id=f"backtest-v{version.version}",
        version=version.version,
        expected_sha256=sha256_bytes(onnx_bytes) if judged else result.onnx_sha256,
        logged_parity=parity.value,
        training_sample=sample if role == "candidate" else None,
    )


def gate(candidate: ModelVersion, champion: ModelVersion, policy: Mapping[str, Any]) -> GateDecision:
    """The gate's decision for the candidate against the champion with the pipeline's policy, on the
    candidate's out-of-time test split, as ``continuous_training`` gates (no evaluation snapshot)."""
    from airflow_mlops.core.gating import GatePolicy, evaluate

    return evaluate(
        model_under_test(candidate, "candidate"), model_under_test(champion, "champion"),
        candidate.result.test_frame, GatePolicy.from_mapping(policy), data_uri="backtest:candidate-test-split",
    )  # fmt: skip
