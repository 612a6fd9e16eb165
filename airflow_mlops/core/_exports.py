"""Lazy re-exports for the stem packages' public API (PEP 562), so importing one light submodule of a
stem never imports its heavy siblings."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, names: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: each public name is imported from its submodule
    (``names[name]``) on first access."""

    def module_getattr(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    def module_dir() -> list[str]:
        return sorted(names)

    return module_getattr, module_dir
