"""Storage hook: turns the storage root URI and an AWS connection into a core ``StorageRoot``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from airflow_mlops import settings

if TYPE_CHECKING:
    from airflow_mlops.core.storage import StorageRoot


class StorageHook(BaseHook):
    """Reach the storage root: a local folder, or S3 through the Amazon provider's ``aws`` connection.

    Credentials come from the connection through the Amazon provider's ``S3Hook`` (which supports
    keys, profiles, assumed roles and ``endpoint_url`` in extras) and are handed to pyarrow explicitly;
    nothing is written to ``os.environ``.

    :param storage_root: root URI; the ``[mlops] storage_root`` setting when omitted.
    :param aws_conn_id: connection used for ``s3://`` roots; ``[mlops] storage_conn_id`` when omitted.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    conn_type = "aws"
    hook_name = "MLOps storage (S3 or local)"

    def __init__(self, storage_root: str | None = None, aws_conn_id: str | None = None) -> None:
        super().__init__()
        self.storage_root = storage_root or settings.storage_root()
        self.aws_conn_id = aws_conn_id or settings.storage_conn_id()

    def get_conn(self) -> StorageRoot:
        from airflow_mlops.core.storage import StorageRoot, s3_filesystem

        if not self.storage_root.startswith("s3://"):
            return StorageRoot(self.storage_root)
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        s3 = S3Hook(aws_conn_id=self.aws_conn_id)
        credentials = s3.get_credentials()
        filesystem = s3_filesystem(
            access_key=credentials.access_key,
            secret_key=credentials.secret_key,
            session_token=credentials.token,
            region=s3.conn_region_name,
            endpoint_url=s3.conn_config.get_service_endpoint_url("s3"),
        )
        return StorageRoot(self.storage_root, filesystem)

    def test_connection(self) -> tuple[bool, str]:
        try:
            root = self.get_conn()
            root.list_files(root.uri, recursive=False)
        except Exception as exc:  # test_connection reports, never raises
            return False, f"Storage root {self.storage_root!r} is not reachable: {exc}"
        return True, f"Storage root {self.storage_root!r} is reachable."
