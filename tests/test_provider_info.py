"""Provider registration: what Airflow's providers manager sees matches what the package contains."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points

from airflow.sdk import BaseHook, BaseOperator, BaseOperatorLink
from airflow.triggers.base import BaseTrigger

import airflow_mlops
from airflow_mlops.get_provider_info import get_provider_info
from tests.support.imports import AIRFLOW_LAYERS, module_names


def _listed_modules(info: dict, key: str) -> set[str]:
    return {m for group in info[key] for m in group["python-modules"]}


def _classes_defined_in(module_name: str, base: type) -> set[str]:
    module = importlib.import_module(module_name)
    return {
        f"{module_name}.{name}"
        for name, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, base) and obj is not base and obj.__module__ == module_name and not inspect.isabstract(obj)
    }


def test_entry_point_returns_this_package() -> None:
    (ep,) = [e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("airflow_mlops.")]
    info = ep.load()()
    assert info["package-name"] == "airflow-mlops"  # must equal the normalised distribution name
    assert info["versions"] == [airflow_mlops.__version__]


def test_every_listed_module_imports() -> None:
    info = get_provider_info()
    listed = set()
    for key in ("hooks", "operators", "sensors", "triggers"):
        listed |= _listed_modules(info, key)
    for name in listed:
        importlib.import_module(name)
    for path in info["extra-links"]:
        module, _, cls = path.rpartition(".")
        assert hasattr(importlib.import_module(module), cls), path
    for conn in info["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert hook.conn_type == conn["connection-type"]


def test_every_module_of_each_layer_is_listed() -> None:
    info = get_provider_info()
    for layer in ("hooks", "operators", "sensors", "triggers"):
        assert set(module_names(layer)) == _listed_modules(info, layer), layer


def test_every_hook_trigger_and_link_class_is_listed() -> None:
    info = get_provider_info()
    hooks = {c["hook-class-name"] for c in info["connection-types"]}
    hook_modules = _listed_modules(info, "hooks")
    trigger_modules = _listed_modules(info, "triggers")
    links = set(info["extra-links"])
    for layer in AIRFLOW_LAYERS:
        for name in module_names(layer):
            for hook in _classes_defined_in(name, BaseHook):
                assert hook.rpartition(".")[0] in hook_modules, hook
                cls = getattr(importlib.import_module(name), hook.rpartition(".")[2])
                if cls.conn_type not in {"aws"}:  # aws belongs to the Amazon provider
                    assert hook in hooks, f"{hook} has its own connection type but is not in connection-types"
            for trigger in _classes_defined_in(name, BaseTrigger):
                assert trigger.rpartition(".")[0] in trigger_modules, trigger
            for link in _classes_defined_in(name, BaseOperatorLink):
                assert link in links, link


def test_operators_live_in_operator_or_sensor_modules() -> None:
    for layer in ("hooks", "triggers", "links"):
        for name in module_names(layer):
            assert not _classes_defined_in(name, BaseOperator), name


def _extras_read_by(hook: type) -> set[str]:
    module = importlib.import_module(hook.__module__)
    allowed = module.ALLOWED_EXTRAS
    names = {k for keys in allowed.values() for k in keys} if isinstance(allowed, dict) else set(allowed)
    return names | ({module.SCHEME_EXTRA} if hasattr(module, "SCHEME_EXTRA") else set())


def test_connection_forms_are_declared_in_metadata_only() -> None:
    for conn in get_provider_info()["connection-types"]:
        module, _, cls = conn["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), cls)
        assert conn["hook-name"] == hook.hook_name
        # One definition: Airflow reads the metadata; a hook method would be a second, deprecated one.
        assert "get_ui_field_behaviour" not in hook.__dict__, hook
        assert "get_connection_form_widgets" not in hook.__dict__, hook
        behaviour = conn["ui-field-behaviour"]
        assert set(behaviour) == {"hidden-fields", "relabeling", "placeholders"}
        # Every extra field of the form is an extra the hook reads (the allowlist), nothing else.
        assert set(conn["conn-fields"]) <= _extras_read_by(hook), conn["connection-type"]
