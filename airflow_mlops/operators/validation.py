"""Validate a dataset snapshot with Great Expectations before it is trained on or scored."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_mlops import settings
from airflow_mlops.links.validation import ValidationReportLink
from airflow_mlops.operators.base import MlopsBaseOperator

if TYPE_CHECKING:
    from airflow.sdk import Context


class ValidateDatasetOperator(MlopsBaseOperator):
    """Run an expectation suite on a Parquet snapshot; stop on schema skew, warn on value skew.

    The suite is a GX suite file (``suite_uri``), or inferred from a reference snapshot
    (``reference_uri``), or the suite logged with a model version (``model_name``: the suite its training
    snapshot passed, for a serving batch it will score); the latter two are saved as
    ``{root}/{pipeline}/validation/{partition}/expectation_suite.json``.
    Every failed expectation is classified: a missing or unexpected column, a type change, a column of
    nulls only, an empty snapshot or an expectation GX could not evaluate blocks; ranges, quantiles,
    domains, null rates and row counts only warn. The GX result JSON and an HTML report are written next to
    the suite, the report is linked from the task ("Validation report"), and when ``mlflow_run_id`` is
    given the suite, the receipt and the report are logged to that run.

    The receipt (``ValidationResult.to_dict()`` plus ``report_url``) is the return value. On a blocking
    failure it is pushed to XCom first, then :class:`~airflow_mlops.exceptions.DataValidationFailed`
    fails the task without retries; its message lists every blocking failure. With value skew only the
    task succeeds with ``severity="warn"``, so a branch can read it.

    :param snapshot_uri: the Parquet snapshot to validate (file or folder, inside the storage root or a
        local path). (templated)
    :param pipeline: pipeline name, the first segment of the storage layout. (templated)
    :param partition: partition key of this run; the run's partition when omitted (the snapshot's: data
        interval start, else logical date, else ``run_after``). (templated)
    :param suite_uri: a GX suite JSON file (storage root or local path, e.g. under ``include/``). (templated)
    :param reference_uri: a snapshot to infer the suite from; give this or ``suite_uri``. (templated)
    :param model_name: without ``suite_uri`` and ``reference_uri``: use the suite logged with this registered
        model's version ``model_version`` (its ``champion`` when omitted). (templated)
    :param model_version: the model version whose suite is used. (templated)
    :param inference: settings of :class:`~airflow_mlops.core.validation.InferenceSpec` for an inferred
        suite, e.g. ``{"schema_only_columns": ["event_ts"], "expected_rows": 30000}``. (templated)
    :param snapshot_sha256: sha256 recorded when the snapshot was written; checked before reading. (templated)
    :param mlflow_run_id: MLflow run to log the suite and the summary to. (templated)
    :param report_base_url: browser address of the storage root, used for the report link;
        ``[mlops] report_base_url`` when omitted, and without either a ``file://`` URL for local roots and
        the S3 console page for S3 roots. (templated)
    :param max_failures: failed expectations listed in the receipt; the JSON result has all of them.
    :param storage_root: storage root URI; ``[mlops] storage_root`` when omitted.
    :param aws_conn_id: AWS connection for an S3 root; ``[mlops] storage_conn_id`` when omitted.
    :param mlflow_conn_id: MLflow connection; ``[mlops] mlflow_conn_id`` when omitted.
    """

    template_fields: Sequence[str] = (
        "snapshot_uri",
        "pipeline",
        "partition",
        "suite_uri",
        "reference_uri",
        "model_name",
        "model_version",
        "inference",
        "snapshot_sha256",
        "mlflow_run_id",
        "report_base_url",
    )
    template_fields_renderers = {"inference": "json"}
    operator_extra_links = (ValidationReportLink(),)
    ui_color = "#e7f0fa"

    def __init__(
        self,
        *,
        snapshot_uri: str,
        pipeline: str,
        partition: str | None = None,
        suite_uri: str | None = None,
        reference_uri: str | None = None,
        model_name: str | None = None,
        model_version: str | None = None,
        inference: dict[str, Any] | None = None,
        snapshot_sha256: str | None = None,
        mlflow_run_id: str | None = None,
        report_base_url: str | None = None,
        max_failures: int = 25,
        storage_root: str | None = None,
        aws_conn_id: str | None = None,
        mlflow_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.snapshot_uri = snapshot_uri
        self.pipeline = pipeline
        self.partition = partition
        self.suite_uri = suite_uri
        self.reference_uri = reference_uri
        self.model_name = model_name
        self.model_version = model_version
        self.inference = inference
        self.snapshot_sha256 = snapshot_sha256
        self.mlflow_run_id = mlflow_run_id
        self.report_base_url = report_base_url
        self.max_failures = max_failures
        self.storage_root = storage_root
        self.aws_conn_id = aws_conn_id
        self.mlflow_conn_id = mlflow_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_mlops.core import validation as core
        from airflow_mlops.core.errors import DataError, IntegrityError
        from airflow_mlops.exceptions import DataValidationFailed

        root = self.storage
        try:
            suite, suite_uri, result, page = self._validate(self.run_partition(context))
        except (DataError, IntegrityError) as exc:  # unreadable or altered data: retrying cannot help
            raise DataValidationFailed(str(exc)) from exc
        receipt: dict[str, Any] = result.to_dict()
        base_url = self.report_base_url or settings.reports_url() or None
        receipt["report_url"] = core.report_url(root, str(result.report_uri), base_url)
        ValidationReportLink.persist_uri(context, str(result.report_uri), root.uri)
        self.log.info("Validated %s with suite %s: %s", self.snapshot_uri, suite_uri, result.summary())
        if not result.passed:
            context["ti"].xcom_push(key="return_value", value=receipt)
        if self.mlflow_run_id:
            self._log_to_mlflow(suite, result, page)
        if not result.passed:
            raise DataValidationFailed(result.failure_message())
        return receipt

    def _validate(self, partition: str) -> tuple[Any, str, Any, str]:
        """Prepare the suite, check the snapshot's sha256, run the suite, save an inferred or model suite."""
        from airflow.sdk.exceptions import AirflowFailException

        from airflow_mlops.core import contracts
        from airflow_mlops.core import validation as core
        from airflow_mlops.core.errors import SourceNotFoundError

        root = self.storage
        if self.model_name and not self.suite_uri and not self.reference_uri:
            root.layout(self.pipeline, contracts.KIND_VALIDATION, partition)  # refuse bad names before any work
            try:
                suite, suite_uri = core.model_suite(self.mlflow_client, self.model_name, self.model_version or None)
            except SourceNotFoundError as exc:  # no such version, or it was logged without a suite
                raise AirflowFailException(str(exc)) from exc
        else:
            suite, suite_uri = core.prepare_suite(
                root,
                pipeline=self.pipeline,
                partition=partition,
                suite_uri=self.suite_uri or None,
                reference_uri=self.reference_uri or None,
                inference=self.inference or None,
                save=False,
            )
        # Check the snapshot before writing anything: an altered or unreadable snapshot leaves no
        # suite or report behind that would look like the evidence of a validation.
        if self.snapshot_sha256:
            root.verify_sha256(self.snapshot_uri, self.snapshot_sha256)
        result, page = core.validate_snapshot(
            root,
            self.snapshot_uri,
            suite,
            pipeline=self.pipeline,
            partition=partition,
            suite_uri=suite_uri,
            max_failures=int(self.max_failures),
        )
        if not self.suite_uri:
            core.save_suite(root, suite, self.pipeline, partition)
        return suite, suite_uri, result, page

    def _log_to_mlflow(self, suite: Any, result: Any, page: str) -> None:
        from airflow_mlops.core import validation as core

        client = self.mlflow_client
        core.log_suite(client, str(self.mlflow_run_id), suite)
        core.log_validation(client, str(self.mlflow_run_id), result, page)
