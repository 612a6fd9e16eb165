"""What a backtest replays with: the pipeline file's training spec (optionally overridden, e.g. a
smaller search for a quick run), gate policy, drift spec, drift policy and business metric."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow_mlops.core.errors import SpecError

if TYPE_CHECKING:
    from airflow_mlops.core.training import TrainingSpec


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, mapping by mapping; a ``None`` in ``override`` removes the key."""
    out = dict(base)
    for key, value in override.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass(frozen=True)
class BacktestSettings:
    """The pipeline's settings as the DAGs read them. Build it with :meth:`from_pipeline_file`."""

    pipeline: str
    model_name: str
    training_spec: TrainingSpec
    time_column: str | None
    gate_policy: Mapping[str, Any] = field(default_factory=dict)
    drift_spec: Mapping[str, Any] = field(default_factory=dict)
    drift_policy: Mapping[str, Any] = field(default_factory=dict)
    business_metric: Mapping[str, Any] | None = None
    training_override: Mapping[str, Any] = field(default_factory=dict)
    transformer: Any = field(default=None, compare=False)  # the feature transforms bound to their dimensions

    @classmethod
    def from_pipeline_file(
        cls,
        path: str | Path,
        *,
        training_override: Mapping[str, Any] | None = None,
        time_column: str | None = None,
        root: Any = None,
        sql_engine: Any = None,
    ) -> BacktestSettings:
        """Read the pipeline file; check the (overridden) training spec against its feature requirements.

        :param time_column: the column batches are cut by; the file's ``data.watermark_column``, else
            the training split's time column, when omitted.
        :param root: the storage root whose ``{pipeline}/`` folder holds the dimension tables the feature
            transforms join (the current folder when omitted; sources under ``include/`` do not need it).
        :param sql_engine: a connection id -> a SQLAlchemy engine, for joins whose dimension is a SQL table.
        """
        import yaml

        from airflow_mlops.core.pipeline.file import PipelineFile
        from airflow_mlops.core.training import load_spec

        pipeline = PipelineFile.from_yaml(path, _project_of(Path(path)))
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        training = document.get("training") if isinstance(document, Mapping) else None
        if not isinstance(training, Mapping):
            raise SpecError(f"The pipeline file {str(path)!r} has no 'training' section.")
        override = dict(training_override or {})
        spec = load_spec(merge(training, override))
        where = f"The training spec of pipeline {pipeline.name!r}"
        pipeline.feature_requirements.check(spec.features, where=where, transforms=spec.transforms)
        transformer = None
        if spec.transforms:
            from airflow_mlops.core.features.apply import bind
            from airflow_mlops.core.storage import StorageRoot

            # Sources under include/ are read from the project folder; others under {root}/{pipeline}/.
            transformer = bind(
                spec.transforms, root if root is not None else StorageRoot("."), pipeline.name, sql_engine
            )
        return cls(
            pipeline=pipeline.name,
            model_name=pipeline.model_name,
            training_spec=spec,
            time_column=time_column or pipeline.watermark_column or spec.split.column,
            gate_policy=dict(pipeline.gate_policy),
            drift_spec=dict(pipeline.drift_spec),
            drift_policy=dict(pipeline.drift_policy),
            business_metric=dict(pipeline.business_metric) or None,
            training_override=override,
            transformer=transformer,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "model_name": self.model_name,
            "time_column": self.time_column,
            "training_spec": self.training_spec.to_dict(),
            "training_override": dict(self.training_override),
            "gate_policy": dict(self.gate_policy),
            "drift_spec": dict(self.drift_spec),
            "drift_policy": dict(self.drift_policy),
        }


def _project_of(path: Path) -> Path:
    """The project a pipeline file's relative paths (its expectation suite) are under: the folder above
    ``include/``, as the DAGs find it; the file's folder when it is not under an ``include/`` folder."""
    resolved = path.resolve()
    for parent in resolved.parents:
        if parent.name == "include":
            return parent.parent
    return resolved.parent
