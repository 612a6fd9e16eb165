"""Every ``template_fields`` entry of every operator is an ``__init__`` argument and an attribute."""

from __future__ import annotations

import importlib
import inspect

from airflow.sdk import BaseOperator

from tests.support.imports import module_names


def _constructors(cls: type) -> tuple[set[str], str]:
    """The arguments and source of ``cls.__init__`` and of the package's base constructors it forwards
    ``**kwargs`` to (a sensor that extends another sensor of ours)."""
    params: set[str] = set()
    sources = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if not klass.__module__.startswith("airflow_mlops.") and klass is not cls:
            break
        signature = inspect.signature(init).parameters
        params.update(signature)
        sources.append(inspect.getsource(init))
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
            break
    return params, "\n".join(sources)


def template_field_problems(cls: type) -> list[str]:
    """What is wrong with ``cls.template_fields`` (empty when nothing is)."""
    problems = []
    params, source = _constructors(cls)
    for field in getattr(cls, "template_fields", ()):
        if field not in params:
            problems.append(f"{cls.__name__}.{field} is templated but not an __init__ argument")
        if f"self.{field} = " not in source and f"self.{field}: " not in source:
            problems.append(f"{cls.__name__}.{field} is templated but __init__ does not assign self.{field}")
    return problems


def _operators() -> list[type]:
    found = []
    for layer in ("operators", "sensors"):
        for name in module_names(layer):
            module = importlib.import_module(name)
            for _, obj in inspect.getmembers(module, inspect.isclass):
                if issubclass(obj, BaseOperator) and obj.__module__ == name:
                    found.append(obj)
    return found


def test_template_fields_are_init_arguments_and_attributes() -> None:
    problems = [p for cls in _operators() for p in template_field_problems(cls)]
    assert problems == []


def test_the_check_catches_a_templated_field_that_is_not_an_argument() -> None:
    class Careless(BaseOperator):
        template_fields = ("query", "uri")

        def __init__(self, *, query: str, **kwargs: object) -> None:
            super().__init__(**kwargs)
            self.query = query

    assert template_field_problems(Careless) == [
        "Careless.uri is templated but not an __init__ argument",
        "Careless.uri is templated but __init__ does not assign self.uri",
    ]
