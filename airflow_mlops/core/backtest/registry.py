"""The model registry of a backtest, in memory: the versions trained during the replay and the
``champion`` alias, standing in for the MLflow registry the reference DAGs use.

A version keeps what the real registry would point at: the ONNX bytes and their sha256, the training
spec artifact, the reference sample the drift check compares batches with, and the feature importance.
Promotion moves the alias; every move is recorded, so the report can say which version served which
batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SourceNotFoundError

if TYPE_CHECKING:
    from airflow_mlops.core.training import TrainingResult


@dataclass(frozen=True)
class ModelVersion:
    """A registered version: the training result it came from, and the rows and batch it was trained on.

    :param trained_through: label of the newest batch in its training data ("initial" for the first).
    """

    version: str
    result: TrainingResult = field(repr=False)
    trained_rows: int
    trained_through: str

    @property
    def reference_id(self) -> str:
        """How the drift policy names this version's reference (as the DAG names ``model/vN``)."""
        return f"v{self.version}"

    def spec_artifact(self) -> dict[str, Any]:
        return self.result.spec_artifact()


@dataclass
class InMemoryRegistry:
    """Versions numbered from 1 in registration order, and the ``champion`` alias with its moves."""

    name: str
    versions: list[ModelVersion] = field(default_factory=list)
    champion_version: str | None = None
    promotions: list[dict[str, str]] = field(default_factory=list)

    def register(self, result: TrainingResult, trained_rows: int, trained_through: str) -> ModelVersion:
        version = ModelVersion(str(len(self.versions) + 1), result, trained_rows, trained_through)
        self.versions.append(version)
        return version

    def get(self, version: str) -> ModelVersion:
        for item in self.versions:
            if item.version == version:
                return item
        raise SourceNotFoundError(f"The backtest registry of {self.name!r} has no version {version!r}.")

    def promote(self, version: str, at: str) -> None:
        """Move the alias to ``version`` (``at``: the batch after which it serves)."""
        self.get(version)
        self.promotions.append({"version": version, "previous": self.champion_version or "", "at": at})
        self.champion_version = version

    @property
    def champion(self) -> ModelVersion:
        if self.champion_version is None:
            raise SourceNotFoundError(f"The backtest registry of {self.name!r} has no champion yet.")
        return self.get(self.champion_version)
