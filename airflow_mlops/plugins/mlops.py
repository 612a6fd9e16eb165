"""The Airflow plugin registered by the provider (``get_provider_info()["plugins"]`` and the
``airflow.plugins`` entry point): a FastAPI app under ``/mlops`` and a "Models" page in the UI's navigation.

Every Airflow component loads plugins (scheduler, workers, triggerer), but only the api-server serves the
app. The app is therefore built on its first request: importing this module stays cheap (the api-server's
security module alone takes seconds to import), and no other component pays for it.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops.links.urls import PLUGIN_PREFIX

URL_PREFIX = PLUGIN_PREFIX
Scope = MutableMapping[str, Any]
Message = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """An ASGI app that builds the plugin's FastAPI app when the first request arrives."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self.factory = factory
        self._app: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        if self._app is None:
            with self._lock:
                if self._app is None:
                    self._app = self.factory()
        return self._app

    async def __call__(self, scope: Scope, receive: Message, send: Send) -> None:
        await self.get()(scope, receive, send)

    def __repr__(self) -> str:
        return "airflow_mlops.plugins.app.create_app()"


def _create_app() -> Any:
    from airflow_mlops.plugins.app import create_app

    return create_app()


def base_path() -> str:
    """The path of ``[api] base_url`` (empty at the root), which the UI's links must carry."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    base_url = str(conf.get("api", "base_url", fallback="/") or "/")
    path = urlparse(base_url).path if base_url.startswith(("http://", "https://")) else base_url
    return path.rstrip("/")


class MlopsPlugin(AirflowPlugin):
    """Reports of the storage root and the MLOps model view, in the api-server and the UI."""

    name = "airflow_mlops"
    fastapi_apps = [{"app": LazyApp(_create_app), "url_prefix": URL_PREFIX, "name": "MLOps reports and models"}]
    external_views = [
        {
            "name": "MLOps models",
            "href": f"{base_path()}{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "mlops-models",
        }
    ]
