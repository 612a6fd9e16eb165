"""The plugin's FastAPI app, mounted by the api-server at ``/mlops``: reports of the storage root, the
predictions' table preview, the model view, and the ``go`` route extra links lead to (resolved when clicked,
:func:`airflow_mlops.links.urls.resolve`), every route behind the api-server's own authentication and
authorization.

A plugin's FastAPI app is not protected by Airflow by itself: each route here depends on the same
``requires_access_dag`` dependency as the core REST API's DAG routes, which resolves the user from the
``Authorization: Bearer`` header or the UI's ``_token`` cookie and asks the configured auth manager.
Reading (the view, the reports) needs read access to DAGs; a rollback needs the right to trigger DAG runs.
"""

# No ``from __future__ import annotations``: FastAPI reads the route annotations, some of which are
# names local to create_app (the api-server's security module is imported there, not at module level).
import uuid
from collections.abc import Callable
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qs, urlparse

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from airflow_mlops.plugins import pages

T = TypeVar("T")

# Reports are written by pipelines, not by Airflow: they run scripts (Evidently's HTML does), so they are
# served sandboxed: scripts run in an opaque origin that cannot call the Airflow API as the viewing user.
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox allow-scripts allow-popups allow-downloads",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}


def storage_root() -> Any:
    """The deployment's storage root (``[mlops] storage_root``, S3 through ``[mlops] storage_conn_id``)."""
    from airflow_mlops.hooks.storage import StorageHook

    return StorageHook().get_conn()


def mlflow_client() -> Any:
    """The registry client of the deployment's MLflow connection (or the embedded store)."""
    from airflow_mlops.hooks.mlflow import MlflowHook

    return MlflowHook().get_conn()


def _base(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _report_link(request: Request, root: Any) -> pages.ReportLink:
    from airflow_mlops.plugins.reports import report_link

    return lambda uri: report_link(root, uri, f"{_base(request)}/reports")


def _history(client: Any, name: str) -> Any:
    from airflow_mlops.core.errors import SpecError
    from airflow_mlops.core.registry import validate_model_name
    from airflow_mlops.core.registry.errors import _error_code, _mlflow_exception
    from airflow_mlops.plugins.history import model_history

    try:
        validate_model_name(name)
    except SpecError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
    try:
        return model_history(client, name)
    except _mlflow_exception() as exc:
        if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"No registered model {name!r}.") from exc
        raise


def _read(reader: Callable[[Any, str], T], root: Any, path: str) -> T:
    """``reader(root, path)`` with the reports' refusals as HTTP answers."""
    from airflow_mlops.core.errors import SourceNotFoundError
    from airflow_mlops.plugins import reports

    try:
        return reader(root, path)
    except reports.ReportOutsideRoot as exc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, str(exc)) from exc
    except reports.NotAReport as exc:
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, str(exc)) from exc
    except reports.ReportPathRefused as exc:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
    except SourceNotFoundError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc


def _same_origin(request: Request) -> None:
    """A state-changing form post must come from a page of this server (no cross-site form post)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if origin and urlparse(origin).netloc != request.url.netloc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "Cross-origin form post refused.")


def create_app() -> FastAPI:
    """Build the app; imports the api-server's security module (seconds), so only the api-server calls it."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag

    app = FastAPI(title="airflow-mlops", description="MLOps reports and model view", docs_url=None, redoc_url=None)
    read = [Depends(requires_access_dag("GET"))]
    decide = [Depends(requires_access_dag("POST", DagAccessEntity.RUN))]
    Root = Annotated[Any, Depends(storage_root)]  # noqa: N806 - a type alias the routes annotate with
    Client = Annotated[Any, Depends(mlflow_client)]  # noqa: N806

    @app.get("/reports/{path:path}", dependencies=read)
    def report(path: str, root: Root) -> Response:
        from airflow_mlops.plugins import reports

        found = _read(reports.read_report, root, path)
        return Response(found.content, media_type=found.content_type, headers=REPORT_HEADERS)

    @app.get("/tables/{path:path}", dependencies=read, response_class=HTMLResponse)
    def table(path: str, root: Root) -> str:
        from airflow_mlops.plugins import reports

        return pages.table_page(_read(reports.read_table_preview, root, path))

    @app.get("/go/{kind}", dependencies=read)
    def go(request: Request, kind: str) -> Response:
        """Where an extra link leads, resolved now with the deployment's settings (``links.urls.resolve``)."""
        from airflow_mlops.links import urls

        try:
            target = urls.resolve(kind, dict(request.query_params), _base(request))
        except urls.LinkRefused as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from exc
        except urls.NoAddress as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from exc
        return RedirectResponse(target, status_code=status.HTTP_302_FOUND, headers={"Cache-Control": "no-store"})

    @app.get("/", dependencies=read, response_class=HTMLResponse)
    def index(request: Request, client: Client) -> str:
        from airflow_mlops.core import contracts
        from airflow_mlops.core.registry import alias_version
        from airflow_mlops.plugins.history import model_names

        models = [(n, alias_version(client, n, contracts.ALIAS_CHAMPION)) for n in model_names(client)]
        return pages.index_page(_base(request), models)

    @app.get("/models/{name}", dependencies=read, response_class=HTMLResponse)
    def model(request: Request, name: str, client: Client, root: Root) -> str:
        from airflow_mlops.plugins.drift_chart import DriftSeries, drift_series

        history = _history(client, name)
        series = drift_series(root, history.pipeline, name) if history.pipeline else DriftSeries("", [], None)
        return pages.model_page(_base(request), history, series, _report_link(request, root))

    @app.get("/models/{name}/rollback", dependencies=decide, response_class=HTMLResponse)
    def confirm_rollback(request: Request, name: str, client: Client, user: GetUserDep) -> str:
        return pages.rollback_page(_base(request), _history(client, name), user.get_name())

    @app.post("/models/{name}/rollback", dependencies=decide)
    async def rollback(request: Request, name: str, client: Client, user: GetUserDep) -> Response:
        _same_origin(request)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        back = pages.model_url(_base(request), name)
        if form.get("confirm") != "yes" or not form.get("expected") or not form.get("target"):
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "A rollback needs confirm=yes, expected and target.")
        return _roll_back(client, name, form, user.get_name(), back)

    return app


def _roll_back(client: Any, name: str, form: dict[str, str], who: str, back: str) -> Response:
    from airflow_mlops.core import contracts, registry

    conflict = status.HTTP_409_CONFLICT
    if registry.alias_version(client, name, contracts.ALIAS_PREVIOUS_CHAMPION) != form["target"]:
        text = f"The previous champion of {name!r} is no longer version {form['target']}: nothing changed."
        return HTMLResponse(pages.message_page("Rollback refused", text, back), status_code=conflict)
    try:
        registry.rollback(client, name, expected=form["expected"], key=f"mlops-view:{uuid.uuid4().hex}", by=who)
    except (registry.ChampionMoved, registry.VersionNotPromotable) as exc:
        return HTMLResponse(pages.message_page("Rollback refused", str(exc), back), status_code=conflict)
    except registry.RegistryLockTimeout as exc:
        return HTMLResponse(pages.message_page("Rollback not done", str(exc), back), status_code=503)
    return RedirectResponse(back, status_code=status.HTTP_303_SEE_OTHER)
