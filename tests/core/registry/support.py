"""MLflow runs shaped like the training stem's, for registry tests that need no model training."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_mlops.core import contracts
from airflow_mlops.core.registry import Registration, register_version, registration_tags, version_description
from airflow_mlops.core.storage import sha256_bytes

_TEMPLATE: list[Path] = []


def fresh_store(path: Path) -> str:
    """Put an empty, already migrated MLflow SQLite store at ``path``; return its URI.

    Creating a store runs MLflow's schema migrations, which takes seconds; they run once per test
    session on a template that each test then copies.
    """
    import shutil

    if not _TEMPLATE:
        from mlflow import MlflowClient

        template = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
        MlflowClient(tracking_uri=f"sqlite:///{template}").search_experiments()
        _TEMPLATE.append(template)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE[0], path)
    return f"sqlite:///{path}"


def client_for(tmp_path: Path) -> Any:
    """An MlflowClient on a fresh SQLite store with artifacts under ``tmp_path``."""
    from mlflow import MlflowClient

    uri = fresh_store(tmp_path / "registry.db")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def tracking_folder(client: Any) -> str:
    """The folder of a SQLite tracking store."""
    return str(Path(str(client.tracking_uri).removeprefix("sqlite:///")).parent)


def training_run(client: Any, artifact_root: Path | None = None, *, onnx: bytes = b"onnx-bytes",
                 spec: dict[str, Any] | None = None, tags: dict[str, str] | None = None,
                 experiment: str = "flights") -> str:  # fmt: skip
    """A finished run with the contract's ONNX and spec artifacts and lineage tags; returns its id."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        if artifact_root is None and not str(client.tracking_uri).startswith("http"):
            # never MLflow's default ./mlruns in whatever folder the tests run from
            artifact_root = Path(tracking_folder(client)) / "mlartifacts"
        location = None if artifact_root is None else str(artifact_root / experiment)
        experiment_id = client.create_experiment(experiment, artifact_location=location)
    else:
        experiment_id = found.experiment_id
    run_tags = {
        contracts.TAG_ONNX_SHA256: sha256_bytes(onnx),
        contracts.TAG_DATASET_URI: "/data/flights/snapshots/2013-03/data.parquet",
        contracts.TAG_DATASET_SHA256: "d" * 64,
        contracts.TAG_PIPELINE: "flights",
        "unrelated": "not copied",
        **(tags or {}),
    }
    run = client.create_run(experiment_id, tags=run_tags)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / contracts.ARTIFACT_ONNX).parent.mkdir(parents=True)
        (folder / contracts.ARTIFACT_ONNX).write_bytes(onnx)
        (folder / contracts.ARTIFACT_SPEC).parent.mkdir(parents=True)
        (folder / contracts.ARTIFACT_SPEC).write_text(json.dumps(spec or {"task": "binary"}))
        client.log_artifacts(run.info.run_id, str(folder))
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


def gate_receipt(run_id: str, *, passed: bool = True, champion_version: str | None = None) -> dict[str, Any]:
    return {
        "passed": passed,
        "verdict": "passed" if passed else "rejected",
        "forced": False,
        "candidate_run_id": run_id,
        "champion_version": champion_version,
        "primary_metric": "roc_auc",
        "candidate_metrics": {"roc_auc": 0.71},
        "champion_metrics": {"roc_auc": 0.69} if champion_version else None,
        "reasons": [{"name": "floor:roc_auc", "passed": True, "observed": 0.71, "threshold": 0.6}],
        "evidence_uri": f"/storage/flights/evidence/2013-04-01/gate/{run_id}/decision.json",
    }


NAME = "flights_delay"


class Flaky:
    """A real MlflowClient whose chosen calls fail, the way a registry that went away fails."""

    def __init__(self, client: Any, failures: dict[str, Callable[[tuple[Any, ...]], bool]]) -> None:
        self._client = client
        self._failures = failures
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            should_fail = self._failures.get(name)
            if should_fail is not None and should_fail(args):
                raise ConnectionError(f"registry unreachable during {name}")
            return real(*args, **kwargs)

        return call


def register(client: Any, run_id: str, **kwargs: Any) -> Registration:
    """Register ``run_id`` as a version of :data:`NAME` the way the operator does, gated and tagged."""
    tags = registration_tags(dict(client.get_run(run_id).data.tags), run_id, gate_receipt(run_id))
    return register_version(
        client, NAME, run_id, source=f"runs:/{run_id}/onnx", tags=tags,
        description=version_description(run_id, gate_receipt(run_id)), **kwargs,
    )  # fmt: skip


def versions(client: Any) -> list[Any]:
    return sorted(client.search_model_versions(f"name = '{NAME}'"), key=lambda v: int(v.version))


def aliases(client: Any) -> dict[str, str]:
    return {k: str(v) for k, v in client.get_registered_model(NAME).aliases.items()}
