"""OpenLineage for every operator of the provider, built in one place from the task's receipt.

Airflow's OpenLineage provider calls ``get_openlineage_facets_on_complete`` (and ``..._on_failure``) on
the operator when a task ends; :class:`~airflow_mlops.operators.base.MlopsBaseOperator` answers with
:func:`operator_lineage`, which reads the receipt the task returned (its ``return_value`` XCom, pushed
before a verdict fails the task too) and maps it, by operator class, to datasets and facets:

* datasets are named as OpenLineage names files and objects (``file`` + path, ``s3://bucket`` + key);
  Parquet datasets carry a schema facet (from the receipt, else read from the file's footer);
* a registered model version is a dataset of its own (namespace ``mlflow://<server>``, name
  ``models/<name>/versions/<version>``, with a version facet): an output of register and promote, an
  input of scoring;
* validation results are a data-quality assertions facet on the validated snapshot;
* the drift check's figures are a custom run facet ``mlops_drift``; the gate's verdict ``mlops_gate``.

Nothing here imports OpenLineage at module level (operator modules stay light): the classes are
imported when the provider asks, and only the provider asks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

RECEIPT_KEY = "return_value"


@dataclass(frozen=True)
class Data:
    """One dataset: where it is, its columns (name -> type) when known, a version, quality assertions."""

    uri: str
    schema: Mapping[str, str] | None = None
    version: str | None = None
    assertions: tuple[Mapping[str, Any], ...] = ()
    rows: int | None = None


@dataclass(frozen=True)
class Lineage:
    """What a task read and wrote, and the run facets it adds (facet name -> JSON-able fields)."""

    inputs: tuple[Data, ...] = ()
    outputs: tuple[Data, ...] = ()
    run_facets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


# -- naming ----------------------------------------------------------------------------------------
def dataset_name(uri: str) -> tuple[str, str]:
    """OpenLineage's (namespace, name) of a URI: ``s3://bucket`` + key, ``file`` + absolute path, and for
    anything else with a scheme, ``scheme://authority`` + path."""
    if uri.startswith("s3://"):
        bucket, _, key = uri[len("s3://") :].partition("/")
        return f"s3://{bucket}", key
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path if parts.scheme else uri
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def mlflow_uri(tracking_uri: str, path: str) -> str:
    """The URI of something MLflow keeps, in lineage: ``mlflow://<server>/<path>``.

    The server is the tracking server's host (``local`` for an embedded store), so the same model
    version or run artifact seen by two tasks is one dataset.
    """
    host = urlsplit(tracking_uri).netloc if tracking_uri.startswith(("http://", "https://")) else "local"
    return f"mlflow://{host}/{path.lstrip('/')}"


def model_version_uri(tracking_uri: str, name: str, version: str | int) -> str:
    """A registered model version: ``mlflow://<server>/models/<name>/versions/<version>``."""
    return mlflow_uri(tracking_uri, f"models/{name}/versions/{version}")


def _artifact_uri(op: Any, uri: str) -> str:
    """A run artifact (``runs:/<run id>/<path>``) as ``mlflow://<server>/runs/<run id>/<path>``."""
    if uri.startswith("runs:/"):
        return mlflow_uri(op.mlflow_hook.tracking_uri, "runs/" + uri[len("runs:/") :].lstrip("/"))
    return uri


# -- one builder per operator class ------------------------------------------------------------------
def _ingest(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    snapshot = Data(receipt["uri"], receipt.get("schema"), receipt.get("sha256"), rows=receipt.get("rows"))
    return Lineage(outputs=(snapshot,))


def _validate(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    assertions = [
        {"assertion": f"expectation_suite:{receipt.get('suite_name')}", "success": bool(receipt.get("passed"))},
        *(
            {
                "assertion": str(f.get("expectation_type")),
                "success": False,
                "column": f.get("column"),
                "severity": "error" if f.get("blocking") else "warn",
                "expected": _text(f.get("expected")),
                "actual": _text(f.get("observed")),
                "description": f.get("reason"),
            }
            for f in receipt.get("failed_expectations") or []
        ),
    ]
    snapshot = Data(receipt["snapshot_uri"], assertions=tuple(assertions), rows=receipt.get("rows"))
    outputs = tuple(Data(receipt[k]) for k in ("result_uri", "report_uri") if receipt.get(k))
    return Lineage(inputs=(snapshot,), outputs=outputs)


def _train(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    inputs = (Data(receipt["dataset_uri"], version=receipt.get("dataset_sha256")),)
    onnx = receipt.get("onnx_uri")
    outputs = [Data(_artifact_uri(op, onnx), version=receipt.get("onnx_sha256"))] if onnx else []
    if receipt.get("test_split_uri"):
        outputs.append(Data(receipt["test_split_uri"], version=receipt.get("test_split_sha256")))
    facets = {"mlops_training": {"run_id": receipt.get("run_id"), "metrics": dict(receipt.get("metrics") or {})}}
    return Lineage(inputs=inputs, outputs=tuple(outputs), run_facets=facets)


def _gate(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    inputs = (
        (Data(receipt["evaluation_uri"], rows=receipt.get("evaluation_rows")),) if receipt.get("evaluation_uri") else ()
    )
    outputs = tuple(Data(receipt[k]) for k in ("evidence_uri", "model_card_uri") if receipt.get(k))
    keys = ("passed", "verdict", "forced", "primary_metric", "reasons", "candidate_run_id", "champion_version")
    return Lineage(inputs=inputs, outputs=outputs, run_facets={"mlops_gate": {k: receipt.get(k) for k in keys}})


def _model_version(op: Any, receipt: Mapping[str, Any], name_key: str = "name") -> Data | None:
    name, version = receipt.get(name_key) or getattr(op, "model_name", None), receipt.get("version")
    if not name or version in (None, ""):
        return None
    return Data(model_version_uri(op.mlflow_hook.tracking_uri, str(name), version), version=str(version))


def _register(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    model = _model_version(op, receipt)
    return Lineage(outputs=(model,) if model else ())


def _score(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    model = _model_version(op, {"name": receipt.get("model_name"), "version": receipt.get("model_version")})
    inputs = tuple(d for d in (Data(receipt["input_uri"]) if receipt.get("input_uri") else None, model) if d)
    outputs = [Data(receipt["output_uri"], rows=receipt.get("rows_out"))] if receipt.get("output_uri") else []
    outputs += [Data(receipt[k]) for k in ("serving_log_uri", "shadow_report_uri") if receipt.get(k)]
    return Lineage(inputs=inputs, outputs=tuple(outputs))


def _drift(op: Any, receipt: Mapping[str, Any]) -> Lineage:
    inputs = [Data(receipt["current_uri"])] if receipt.get("current_uri") else []
    reference = receipt.get("reference") or {}
    if reference.get("version") and reference.get("model_name"):
        inputs.append(Data(model_version_uri(op.mlflow_hook.tracking_uri, reference["model_name"],
                                             reference["version"]), version=str(reference["version"])))  # fmt: skip
    keys = ("verdict", "decision", "retrain", "drift_share", "weighted_drift_share", "drifted_columns")
    facet = {k: receipt.get(k) for k in keys}
    outputs = tuple(Data(receipt[k]) for k in ("summary_uri", "report_uri") if receipt.get(k))
    return Lineage(inputs=tuple(inputs), outputs=outputs, run_facets={"mlops_drift": facet})


BUILDERS: dict[str, Callable[[Any, Mapping[str, Any]], Lineage]] = {
    "IngestDatasetOperator": _ingest,
    "ValidateDatasetOperator": _validate,
    "TrainModelOperator": _train,
    "EvaluateModelGateOperator": _gate,
    "RegisterModelOperator": _register,
    "PromoteModelOperator": _register,
    "ScoreBatchOperator": _score,
    "CheckDriftOperator": _drift,
}


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def lineage_of(operator: Any, receipt: Any) -> Lineage:
    """The lineage of ``operator``'s receipt; empty for an operator (or a receipt) this module does not know."""
    if not isinstance(receipt, Mapping):
        return Lineage()
    for cls in type(operator).__mro__:  # a subclass of ours reports as its parent does
        builder = BUILDERS.get(cls.__name__)
        if builder is not None:
            return builder(operator, receipt)
    return Lineage()


# -- to OpenLineage's classes (imported here, when the provider asks) ------------------------------------
def operator_lineage(operator: Any, task_instance: Any) -> Any:
    """``OperatorLineage`` of the task that just ended, from its receipt in XCom."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    receipt = task_instance.xcom_pull(
        task_ids=task_instance.task_id, key=RECEIPT_KEY, map_indexes=getattr(task_instance, "map_index", -1)
    )
    lineage = lineage_of(operator, receipt)
    root = _storage_root(operator)
    return OperatorLineage(
        inputs=[_dataset(d, root, output=False) for d in lineage.inputs],
        outputs=[_dataset(d, root, output=True) for d in lineage.outputs],
        run_facets={name: _custom_facet(name, fields) for name, fields in lineage.run_facets.items()},
    )


def _storage_root(operator: Any) -> Any:
    try:
        return operator.storage
    except Exception:  # lineage never fails a task: without a root, schemas come from receipts only
        return None


def _schema(data: Data, root: Any) -> Mapping[str, str] | None:
    if data.schema is not None or root is None or not data.uri.endswith(".parquet"):
        return data.schema
    from airflow_mlops.core.monitoring import parquet_schema

    try:
        return parquet_schema(root, data.uri)
    except Exception:  # a file outside the root, or gone: the dataset is still named, without columns
        return None


def _dataset(data: Data, root: Any, *, output: bool) -> Any:
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import (
        data_quality_assertions_dataset as dq,
    )
    from openlineage.client.facet_v2 import (
        dataset_version_dataset,
        schema_dataset,
    )

    namespace, name = dataset_name(data.uri)
    facets: dict[str, Any] = {}
    schema = _schema(data, root)
    if schema:
        fields = [schema_dataset.SchemaDatasetFacetFields(name=c, type=str(t)) for c, t in schema.items()]
        facets["schema"] = schema_dataset.SchemaDatasetFacet(fields=fields)
    if data.version:
        facets["version"] = dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=data.version)
    if output:
        return OutputDataset(namespace=namespace, name=name, facets=facets)
    input_facets: dict[str, Any] = {}
    if data.assertions:
        assertions = [dq.Assertion(**{k: v for k, v in a.items() if v is not None}) for a in data.assertions]
        input_facets["dataQualityAssertions"] = dq.DataQualityAssertionsDatasetFacet(assertions=assertions)
    return InputDataset(namespace=namespace, name=name, facets=facets, inputFacets=input_facets)


@functools.cache
def _facet_class(name: str, keys: tuple[str, ...]) -> type:
    """An attrs ``RunFacet`` class whose fields are ``keys``, so the facet's JSON is flat."""
    import attr
    from openlineage.client.facet_v2 import RunFacet

    class_name = "".join(part.title() for part in name.split("_")) + "RunFacet"
    return attr.make_class(class_name, {k: attr.field(default=None, kw_only=True) for k in keys}, bases=(RunFacet,))


def _custom_facet(name: str, fields: Mapping[str, Any]) -> Any:
    import json

    values = json.loads(json.dumps(dict(fields), default=str))
    return _facet_class(name, tuple(sorted(values)))(**values)
