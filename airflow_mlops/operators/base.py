"""What every operator of the provider shares: its hooks, the run's partition and batch time, model resolution.

Modelled on the Amazon provider's ``AwsBaseOperator``: the hooks are cached properties built from the
operator's own connection arguments, so constructors still only assign and nothing is reached before
``execute``. Each operator keeps its public arguments (``storage_root``, ``aws_conn_id``,
``mlflow_conn_id``, ``partition``); the base only reads them.

The run's partition is defined here once (:func:`default_partition`): one DAG run's snapshot,
validation suite, test split, gate evidence, predictions and drift report all land in folders of the
same name unless a task is given its own ``partition``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_mlops.hooks.mlflow import MlflowHook
from airflow_mlops.hooks.storage import StorageHook

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_mlops.core.serving import ModelReference
    from airflow_mlops.core.storage import StorageRoot


def run_moment(context: Context) -> dt.datetime:
    """The moment a run's partition stands for: data interval start, else logical date, else ``run_after``.

    A run without a logical date (a manual run in Airflow 3) still has its ``run_after``, fixed for the
    run, so a retry names the same partition.
    """
    from airflow_mlops.core.errors import SpecError

    dag_run = context.get("dag_run")
    for value in (context.get("data_interval_start"), context.get("logical_date"), getattr(dag_run, "run_after", None)):
        if isinstance(value, dt.datetime):
            return value
    raise SpecError("The run has no data interval, logical date or run_after to name its partition; pass 'partition'.")


def partition_key(value: dt.datetime | str) -> str:
    """A partition key: a moment in UTC ISO 8601, or a string checked to be one safe path segment."""
    from airflow_mlops.core.ingestion.snapshot import partition_key as core_partition_key

    return core_partition_key(value)


def default_partition(context: Context) -> str:
    """The run's partition key: :func:`run_moment` in UTC ISO 8601 (``2013-02-01T00:00:00+00:00``)."""
    return partition_key(run_moment(context))


def batch_time(context: Context) -> dt.datetime:
    """The time a run's batch stands for (the monitoring clock): data interval end, logical date, or when
    the run was due."""
    moment = context.get("data_interval_end") or context.get("logical_date")
    if moment is not None:
        return moment
    dag_run = context.get("dag_run")
    return getattr(dag_run, "run_after", None) or dt.datetime.now(dt.UTC)


@contextlib.contextmanager
def model_failures() -> Iterator[None]:
    """Turn a model that cannot be trusted or an argument that cannot work into a failure without retries.

    An ``IntegrityError`` (an ONNX file or tag that does not match what was recorded at registration)
    becomes :class:`~airflow_mlops.exceptions.ModelIntegrityFailure`; a ``SpecError`` (no model name,
    neither alias nor version) becomes :class:`~airflow_mlops.exceptions.MlopsVerdictFailure`. Anything
    else, such as a version or alias that does not exist yet or is not READY, stays retryable.
    """
    from airflow_mlops.core.errors import IntegrityError, SpecError
    from airflow_mlops.exceptions import MlopsVerdictFailure, ModelIntegrityFailure

    try:
        yield
    except IntegrityError as exc:
        raise ModelIntegrityFailure(str(exc)) from exc
    except SpecError as exc:
        raise MlopsVerdictFailure(str(exc)) from exc


@contextlib.contextmanager
def input_failures() -> Iterator[None]:
    """Turn input data that cannot work (a ``DataError``: a missing column, an empty reference, text in a
    numeric column) into :class:`~airflow_mlops.exceptions.DataValidationFailed`, a failure without
    retries: the same data fails the same way on every try."""
    from airflow_mlops.core.errors import DataError
    from airflow_mlops.exceptions import DataValidationFailed

    try:
        yield
    except DataError as exc:
        raise DataValidationFailed(str(exc)) from exc


class MlopsHookMixin:
    """The storage and MLflow hooks of an operator or sensor, built once from its connection arguments.

    Reads the attributes ``storage_root``, ``mlflow_conn_id`` and the one ``storage_conn_attr`` names
    (``aws_conn_id`` unless a class says otherwise); a missing attribute means the ``[mlops]`` default.
    """

    storage_conn_attr = "aws_conn_id"

    @cached_property
    def storage_hook(self) -> StorageHook:
        return StorageHook(getattr(self, "storage_root", None), getattr(self, self.storage_conn_attr, None))

    @cached_property
    def storage(self) -> StorageRoot:
        """The storage root (local folder or S3) this task reads and writes."""
        return self.storage_hook.get_conn()

    @cached_property
    def mlflow_hook(self) -> MlflowHook:
        return MlflowHook(getattr(self, "mlflow_conn_id", None))

    @cached_property
    def mlflow_client(self) -> Any:
        """An ``MlflowClient`` bound to the task's MLflow connection."""
        return self.mlflow_hook.get_conn()


class MlopsBaseOperator(BaseOperator, MlopsHookMixin):
    """Base of the provider's operators: cached hooks, the run's partition and batch time, model resolution.

    Subclasses assign their own arguments; this class adds no constructor argument.
    """

    def run_partition(self, context: Context) -> str:
        """This task's partition: its ``partition`` argument when given, else :func:`default_partition`.

        Only ``None`` means "not given": a template that rendered empty is refused by the partition key's
        check rather than silently replaced by the default, which would write somewhere else.
        """
        explicit = getattr(self, "partition", None)
        return default_partition(context) if explicit is None else partition_key(explicit)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs, outputs and facets for Airflow's OpenLineage provider (:mod:`.lineage`), from the receipt."""
        from airflow_mlops.operators.lineage import operator_lineage

        return operator_lineage(self, task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """As on completion: a verdict (a rejected gate, failed validation) pushes its receipt before failing."""
        from airflow_mlops.operators.lineage import operator_lineage

        return operator_lineage(self, task_instance)

    def resolve_model(
        self, model_name: str, *, alias: str | None = None, version: str | int | None = None
    ) -> ModelReference:
        """Pin a registered model version (``version`` wins over ``alias``), with :func:`model_failures`."""
        from airflow_mlops.core.serving import resolve_model_version

        with model_failures():
            return resolve_model_version(self.mlflow_client, model_name, alias=alias, version=version)
