"""Hooks for ingestion sources: an SQL connection as a SQLAlchemy engine; files through the storage hook."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

from airflow_mlops.core.errors import SourceNotFoundError, SpecError

if TYPE_CHECKING:
    import pyarrow.fs as pafs
    from sqlalchemy.engine import URL, Engine

# Connection types we know how to turn into a SQLAlchemy driver name. A conn_type that already is a
# SQLAlchemy drivername ("postgresql+psycopg2", from a URI connection) is used as it is.
DRIVERS = {
    "mlops_sql": "postgresql+psycopg2",
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "sqlite": "sqlite",
    "mysql": "mysql+pymysql",
    "mssql": "mssql+pymssql",
    "oracle": "oracle+oracledb",
}
# Extras forwarded to the driver, by dialect. Anything else in the connection's extra is ignored.
ALLOWED_EXTRAS = {
    "postgresql": (
        "sslmode", "sslrootcert", "sslcert", "sslkey", "connect_timeout", "application_name", "options",
        "target_session_attrs",
    ),
    "mysql": ("charset", "connect_timeout", "ssl_ca"),
}  # fmt: skip
SCHEME_EXTRA = "sqlalchemy_scheme"


class SqlSourceHook(BaseHook):
    """Read an SQL source: turn an Airflow connection into a SQLAlchemy engine.

    Any connection works: ``postgres``/``postgresql`` (PostgreSQL through psycopg2), ``sqlite``,
    ``mysql``, ``mssql``, ``oracle``, a connection whose type is a SQLAlchemy drivername (defined by a URI
    such as ``postgresql+psycopg2://user:pass@host/db``), or this provider's own ``mlops_sql`` type.
    The allowlisted extra ``sqlalchemy_scheme`` overrides the driver (``postgresql+psycopg``); a few
    driver options are forwarded by dialect (PostgreSQL: ``sslmode``, ``sslrootcert``, ``sslcert``,
    ``sslkey``, ``connect_timeout``, ``application_name``, ``options``, ``target_session_attrs``). Other
    extras are never forwarded. The password is registered with Airflow's secrets masker and never logged.

    The engine has no pool (``NullPool``): a task opens the one connection it needs and closes it.

    :param sql_conn_id: connection id; ``mlops_sql_default`` when omitted.
    """

    conn_name_attr = "sql_conn_id"
    default_conn_name = "mlops_sql_default"
    conn_type = "mlops_sql"
    hook_name = "MLOps SQL source (SQLAlchemy)"

    def __init__(self, sql_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.sql_conn_id = sql_conn_id

    @cached_property
    def sqlalchemy_url(self) -> URL:
        """The SQLAlchemy URL of the connection (render it with ``hide_password=True`` to show it)."""
        from sqlalchemy.engine import URL

        conn = self.get_connection(self.sql_conn_id)
        extra = conn.extra_dejson or {}
        conn_type = (conn.conn_type or "").strip().lower()
        driver = str(extra.get(SCHEME_EXTRA) or (conn_type if "+" in conn_type else DRIVERS.get(conn_type, "")))
        if not driver:
            raise SpecError(
                f"The connection {self.sql_conn_id!r} has type {conn.conn_type!r}, which is not a known SQL "
                f"source. Expected one of {sorted(DRIVERS)}, a SQLAlchemy drivername such as "
                f"'postgresql+psycopg2', or the extra {SCHEME_EXTRA!r}."
            )
        if conn.password:
            from airflow.sdk.log import mask_secret

            mask_secret(conn.password)
        dialect = driver.split("+", 1)[0]
        query = {key: str(extra[key]) for key in ALLOWED_EXTRAS.get(dialect, ()) if extra.get(key) not in (None, "")}
        return URL.create(
            driver,
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or None,
            port=conn.port or None,
            database=conn.schema or None,
            query=query,
        )

    @property
    def masked_url(self) -> str:
        return self.sqlalchemy_url.render_as_string(hide_password=True)

    @cached_property
    def engine(self) -> Engine:
        import sqlalchemy as sa

        try:
            return sa.create_engine(self.sqlalchemy_url, poolclass=sa.pool.NullPool)
        except (ImportError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
            raise SpecError(
                f"The connection {self.sql_conn_id!r} ({self.masked_url}) needs a SQLAlchemy driver that is not "
                f"available: {exc}"
            ) from exc

    def get_conn(self) -> Engine:
        """The SQLAlchemy engine of this connection (created once per hook)."""
        return self.engine

    def test_connection(self) -> tuple[bool, str]:
        try:
            import sqlalchemy as sa

            with self.get_conn().connect() as conn:
                conn.execute(sa.text("SELECT 1"))
        except Exception as exc:  # test_connection reports, never raises
            where = self.masked_url if "sqlalchemy_url" in self.__dict__ else repr(self.sql_conn_id)
            return False, f"SQL source {where} is not reachable: {exc}"
        return True, f"Connected to {self.masked_url}."


def sql_engine(sql_conn_id: str) -> Engine:
    """The SQLAlchemy engine of a connection, for a feature join whose dimension is a SQL table: operators
    hand this function to the core (``sql_engine``), which calls it once per connection a join names.

    :raises SourceNotFoundError: no connection has that id.
    """
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return SqlSourceHook(sql_conn_id).get_conn()
    except AirflowNotFoundException as exc:
        raise SourceNotFoundError(
            f"The SQL connection {sql_conn_id!r} that a feature join reads its dimension through does not exist: "
            f"define it (an Airflow connection, e.g. AIRFLOW_CONN_{sql_conn_id.upper()}) or fix the join's "
            "'connection'."
        ) from exc


def source_handles(
    source: str, path: str | None, *, sql_conn_id: str, aws_conn_id: str | None
) -> tuple[Engine | None, pafs.FileSystem | None]:
    """The engine (``sql``) or pyarrow filesystem (``s3``, ``local``) that reaches an ingestion source.

    S3 goes through :class:`~airflow_mlops.hooks.storage.StorageHook`, i.e. the Amazon provider's ``aws``
    connection, with credentials handed to pyarrow explicitly (nothing is written to ``os.environ``).
    """
    if source == "sql":
        return SqlSourceHook(sql_conn_id).get_conn(), None
    if source == "s3":
        from airflow_mlops.hooks.storage import StorageHook

        if not path or not path.startswith("s3://"):
            raise SpecError(f"An 's3' source needs an 's3://bucket/prefix' path. Got {path!r} instead.")
        return None, StorageHook(storage_root=path, aws_conn_id=aws_conn_id).get_conn().filesystem
    if source == "local":
        import pyarrow.fs as pafs

        return None, pafs.LocalFileSystem()
    raise SpecError(f"The source must be 'sql', 's3' or 'local'. Got {source!r} instead.")
