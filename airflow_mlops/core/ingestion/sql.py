"""SQL sources: templates whose every expression is a bound parameter, and streaming reads.

:func:`render_sql_template` renders a Jinja SQL template so that values reach the database as bound
parameters, never formatted into the SQL text. :func:`_sql_tables` streams a query or table through a
server-side cursor (psycopg2) or SQLAlchemy's ``stream_results``, ``chunk_rows`` rows at a time, fetching
the next chunk on a background thread while the current one is converted. Errors of the database and
its driver are classified (not found, access refused, bad query, transient).
"""

from __future__ import annotations

import queue
import re
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

import pyarrow as pa

from airflow_mlops.core.errors import DataError, MlopsError, SourceNotFoundError, SpecError
from airflow_mlops.core.ingestion.errors import SourceAccessError, SourceUnavailableError
from airflow_mlops.core.ingestion.spec import _SPEC_OWNER, IngestSpec, _bindable, _table_name
from airflow_mlops.core.ingestion.types import _PG_KINDS, _Conformer, _rows_to_table

if TYPE_CHECKING:
    import jinja2
    from sqlalchemy.engine import Connection, Engine

TEMPLATE_BIND_PREFIX = "mlops_t"
_RESERVED_BINDS = ("mlops_since", "mlops_until")  # bounds on the watermark column


# -- SQL templates: every {{ expression }} becomes a bound parameter -------------------------------
def render_sql_template(
    template: str, context: Mapping[str, Any], base_env: jinja2.Environment | None = None
) -> tuple[str, dict[str, Any]]:
    """Render a Jinja SQL template so that each ``{{ ... }}`` becomes a ``:mlops_tN`` bind placeholder.

    ``WHERE ts >= {{ data_interval_start }}`` renders to ``WHERE ts >= :mlops_t0`` with
    ``{"mlops_t0": datetime(...)}``: the value reaches the database as a bound parameter and is never
    formatted into the SQL text. Control blocks (``{% if %}``) still shape the text. Filters and globals
    of ``base_env`` (the DAG's environment: ``ds``, macros ...) are available; undefined names are errors.

    :return: the SQL text and the values to bind.
    """
    import jinja2
    import jinja2.sandbox

    values: dict[str, Any] = {}

    def finalize(value: Any) -> str:
        if isinstance(value, jinja2.Undefined):
            str(value)  # StrictUndefined raises, naming the variable
        name = f"{TEMPLATE_BIND_PREFIX}{len(values)}"
        values[name] = _bindable(value, f"{{{{ ... }}}} expression #{len(values) + 1}")
        return f":{name}"

    env = jinja2.sandbox.SandboxedEnvironment(
        loader=base_env.loader if base_env else None,
        undefined=jinja2.StrictUndefined,
        finalize=finalize,
        autoescape=False,
        cache_size=0,
    )
    if base_env is not None:
        env.filters.update(base_env.filters)
        env.tests.update(base_env.tests)
        env.globals.update(base_env.globals)
    try:
        sql = env.from_string(template).render(**dict(context))
    except jinja2.UndefinedError as exc:
        raise SpecError(f"The SQL template uses an undefined name: {exc}.") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise SpecError(f"The SQL template is not valid Jinja (line {exc.lineno}): {exc.message}.") from exc
    quoted = _placeholders_in_literals(sql)
    if quoted:
        raise SpecError(
            f"The SQL template puts {{{{ ... }}}} inside a quoted SQL literal ({', '.join(quoted)}). Each "
            "{{ ... }} is sent as a bound parameter, so write it where a value goes, without quotes: "
            "WHERE day = {{ ds }}, not WHERE day = '{{ ds }}'."
        )
    return sql, values


def _placeholders_in_literals(sql: str) -> list[str]:
    """Template placeholders that ended up inside '...' or "..." (they would not be bound)."""
    found: list[str] = []
    for literal in re.finditer(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"", sql):
        found += re.findall(rf":{TEMPLATE_BIND_PREFIX}\d+", literal.group(0))
    return found


# -- reading -------------------------------------------------------------------------------------
def _sql_error(exc: Exception, what: str, url: str) -> MlopsError:
    """Classify a SQLAlchemy/DBAPI error: not found, access refused, bad query, or transient."""
    from sqlalchemy import exc as sa_exc

    orig = getattr(exc, "orig", None) or exc  # SQLAlchemy wraps the driver's error; the fast path does not
    code = str(getattr(orig, "pgcode", "") or "")
    text = str(orig).strip()
    lowered = text.lower()
    if isinstance(exc, sa_exc.NoSuchTableError) or code == "42P01":
        return SourceNotFoundError(f"{what} at {url}: the table does not exist ({text}).")
    refused = ("authentication failed", "no pg_hba.conf entry", "permission denied", "access denied")
    unknown_role = "role" in lowered and "does not exist" in lowered
    if code in ("42501", "28000", "28P01") or unknown_role or any(m in lowered for m in refused):
        return SourceAccessError(f"{what} at {url}: access refused, check the connection's credentials ({text}).")
    if code == "25006":
        return SpecError(f"{what} at {url} tried to change data; a source query must only read: {text}")
    if "database" in lowered and "does not exist" in lowered:
        return SourceNotFoundError(f"{what} at {url}: the database does not exist ({text}).")
    if code.startswith("42") or code == "0A000":
        return SpecError(f"{what} at {url} is not valid SQL for this database: {text}")
    if code.startswith("22"):
        return DataError(f"{what} at {url}: the database rejected a value ({text}).")
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError) or code.startswith("08"):
        return SourceUnavailableError(f"{what} at {url} could not be reached: {text}")
    return DataError(f"{what} at {url} failed: {text}")


def _url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _query_placeholders(query: str) -> set[str]:
    import sqlalchemy as sa

    return set(sa.text(query).compile().params)


def _check_params(query: str, params: Mapping[str, Any], provided: Iterable[str]) -> None:
    wanted = _query_placeholders(query)
    missing = sorted(wanted - set(provided))
    if missing:
        raise SpecError(f"The SQL query has placeholder(s) {[':' + m for m in missing]} without a value in 'params'.")
    unused = sorted(set(params) - wanted)
    if unused:
        raise SpecError(f"The 'params' {unused} have no ':name' placeholder in the SQL query; it has {sorted(wanted)}.")
    reserved = sorted(set(params) & set(_RESERVED_BINDS))
    if reserved:
        raise SpecError(f"The SQL parameter names {list(_RESERVED_BINDS)} are reserved. Got {reserved} in 'params'.")


def _clean_query(query: str) -> str:
    return query.strip().rstrip(";").strip()


def _sql_statement(spec: IngestSpec, conn: Connection, since: Any, until: Any) -> tuple[Any, dict[str, Any]]:
    """The statement to stream and its bound parameters; table columns are checked by reflection."""
    import sqlalchemy as sa

    quote = conn.dialect.identifier_preparer.quote
    bounds: list[str] = []
    params: dict[str, Any] = {}
    wm = spec.watermark_column
    if since is not None:
        bounds.append(f"{quote(str(wm))} > :mlops_since")
        params["mlops_since"] = since
    if until is not None:
        bounds.append(f"{quote(str(wm))} <= :mlops_until")
        params["mlops_until"] = until
    order = ", ".join(quote(c) for c in spec.order_by)
    if spec.table is not None:
        schema_name, name = _table_name(spec.table, _SPEC_OWNER)
        columns = [c["name"] for c in sa.inspect(conn).get_columns(name, schema=schema_name)]
        declared = [c for c, _ in spec.schema]
        missing = [c for c in declared if c not in columns]
        if missing:
            raise DataError(
                f"The declared column(s) {missing} are missing from SQL table {spec.table!r}. It has {columns}; "
                f"expected every column of the schema {declared}."
            )
        for what, needed in (("watermark column", [wm] if wm else []), ("'order_by' column", list(spec.order_by))):
            absent = [c for c in needed if c not in columns]
            if absent:
                raise DataError(f"The {what}(s) {absent} are not in SQL table {spec.table!r}. It has {columns}.")
        selected = columns if spec.keep_extra_columns else declared
        source = ".".join(quote(p) for p in ([schema_name] if schema_name else []) + [name])
        sql = f"SELECT {', '.join(quote(c) for c in selected)} FROM {source}"
    else:
        query = _clean_query(str(spec.query))
        _check_params(query, spec.params, spec.params)
        params.update(spec.params)
        sql = query if not bounds and not order else f"SELECT * FROM ({query}) AS mlops_src"
    if bounds:
        sql += " WHERE " + " AND ".join(bounds)
    if order:
        sql += f" ORDER BY {order}"
    return sa.text(sql), params


def _sql_rows(spec: IngestSpec, engine: Engine, since: Any, until: Any) -> Iterator[Any]:
    """Run the statement on a server-side cursor; yield its column header, then row chunks.

    The first item is ``(names, kinds)``; every later one is a non-empty sequence of at most
    ``chunk_rows`` rows. With psycopg2 the statement (compiled by SQLAlchemy, values bound by the driver)
    runs on a named cursor of the SQLAlchemy-managed connection, which hands over plain tuples; other
    drivers go through SQLAlchemy's ``stream_results``/``yield_per``. The connection lives and dies
    inside this generator, which :func:`_prefetched` runs on one thread.
    """
    with engine.connect() as conn:
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            conn = conn.execution_options(postgresql_readonly=True)  # a query can never change the source
        statement, params = _sql_statement(spec, conn, since, until)
        if postgres and engine.dialect.driver == "psycopg2":
            compiled = statement.compile(dialect=conn.dialect)
            driver = cast(Any, conn.connection.driver_connection)
            cursor = driver.cursor(name=f"mlops_ingest_{uuid.uuid4().hex[:12]}")
            try:
                cursor.itersize = spec.chunk_rows
                cursor.execute(str(compiled), compiled.construct_params(params))
                rows = cursor.fetchmany(spec.chunk_rows)  # a named cursor describes itself after a fetch
                yield [d[0] for d in cursor.description], [_PG_KINDS.get(d[1]) for d in cursor.description]
                while rows:
                    yield rows
                    rows = cursor.fetchmany(spec.chunk_rows)
            finally:
                cursor.close()
            return
        # yield_per on the statement: the connection-level option does not size partitions().
        result = conn.execution_options(stream_results=True).execute(
            statement.execution_options(yield_per=spec.chunk_rows), params
        )
        names = list(result.keys())
        description = getattr(result.cursor, "description", None) or []
        codes = [d[1] for d in description] if postgres and len(description) == len(names) else [None] * len(names)
        yield names, [_PG_KINDS.get(c) if isinstance(c, int) else None for c in codes]
        yield from result.partitions(spec.chunk_rows)


_DONE = object()


def _prefetched(items: Iterator[Any], depth: int = 1) -> Iterator[Any]:
    """Iterate ``items`` on a background thread, at most ``depth`` items ahead of the consumer.

    Fetching the next chunk (waiting on the server, parsing in the driver) then overlaps with converting
    and writing the current one. Memory stays bounded: one chunk being fetched, ``depth`` waiting, one
    being converted. Errors raised by ``items`` are re-raised in the consumer; when the consumer stops
    early, the producer stops and closes ``items`` (and with it the connection) on its own thread.
    """
    channel: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                channel.put((kind, value), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put("item", item):
                    return
            put("done", _DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            put("error", exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="mlops-ingest-fetch", daemon=True)
    thread.start()
    try:
        while True:
            kind, value = channel.get()
            if kind == "done":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        thread.join()


def _sql_tables(spec: IngestSpec, engine: Engine, since: Any, until: Any, conformer: _Conformer) -> Iterator[pa.Table]:
    """Stream the SQL source through a server-side cursor, one Arrow table per ``chunk_rows`` rows."""
    from sqlalchemy import exc as sa_exc

    what = spec.describe()
    url = _url(engine)
    driver_error = getattr(engine.dialect.loaded_dbapi, "Error", sa_exc.SQLAlchemyError)
    try:
        chunks = _prefetched(_sql_rows(spec, engine, since, until))
        names, kinds = next(chunks)
        conformer.check_declared(names, what)
        for rows in chunks:
            yield _rows_to_table(rows, names, kinds, what, conformer.declared)
    except (sa_exc.SQLAlchemyError, driver_error) as exc:
        raise _sql_error(exc, what, url) from exc


def read_sql(spec: IngestSpec, engine: Engine) -> pa.Table:
    """The whole of a SQL table or query as one Arrow table, through the same read as a snapshot's (for a
    table small enough to hold: a join's dimension). Errors are classified as :func:`ingest` classifies them.

    :raises SourceNotFoundError: the table (or the database) does not exist.
    :raises DataError: the source has no rows (its columns cannot be known), or a value is rejected.
    """
    what = spec.describe()
    conformer = _Conformer(spec, what)
    tables = [conformer.conform(t, what) for t in _sql_tables(spec, engine, spec.since, spec.until, conformer)]
    if not tables:
        raise DataError(f"{what} at {_url(engine)} has no rows; expected at least one.")
    return pa.concat_tables(tables)
