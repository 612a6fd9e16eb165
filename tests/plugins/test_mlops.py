"""The plugin is registered the two ways Airflow finds a provider's plugin, and costs other components nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib

from airflow.plugins_manager import AirflowPlugin

from airflow_mlops.get_provider_info import get_provider_info
from airflow_mlops.plugins import mlops
from tests.support.imports import REPO


def test_the_provider_lists_the_plugin_and_the_entry_point_names_the_same_class() -> None:
    (listed,) = get_provider_info()["plugins"]
    assert listed == {"name": "airflow_mlops", "plugin-class": "airflow_mlops.plugins.mlops.MlopsPlugin"}
    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    assert entry_points["airflow.plugins"] == {"airflow_mlops": "airflow_mlops.plugins.mlops:MlopsPlugin"}
    assert issubclass(mlops.MlopsPlugin, AirflowPlugin) and mlops.MlopsPlugin.name == listed["name"]


def test_the_plugin_mounts_one_app_and_adds_a_page_to_the_navigation() -> None:
    (app,) = mlops.MlopsPlugin.fastapi_apps
    assert app["url_prefix"] == "/mlops" and isinstance(app["app"], mlops.LazyApp)
    (view,) = mlops.MlopsPlugin.external_views
    assert (view["destination"], view["href"], view["url_route"]) == ("nav", "/mlops/", "mlops-models")


def test_importing_the_plugin_does_not_import_the_api_server() -> None:
    """Schedulers, workers and triggerers load plugins too; only the api-server's first request builds the app."""
    probe = (
        "import sys, json, airflow_mlops.plugins.mlops as m; "
        "print(json.dumps(['airflow.api_fastapi.core_api.security' in sys.modules, m.MlopsPlugin.fastapi_apps[0]"
        "['app']._app is None]))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [False, True]


def test_the_lazy_app_is_built_once() -> None:
    built: list[object] = []

    def factory() -> object:
        built.append(object())
        return built[-1]

    lazy = mlops.LazyApp(factory)
    assert lazy.get() is lazy.get() and len(built) == 1
