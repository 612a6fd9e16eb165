"""The package's import graph, read from source: no cycle, and every import goes down the layer order
core -> hooks -> operators/sensors/triggers/links/notifiers (-> dags, outside the package).

The graph (``tests/support/import_graph.py``) counts every import: module level and inside functions,
relative ones, ``from x import y`` where ``y`` is a submodule, TYPE_CHECKING blocks, and a stem package's
lazy re-exports as edges from the package to the submodules it names.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.import_graph import PACKAGE, ImportGraph, cyclic_groups, shortest_cycle
from tests.support.imports import REPO

# Cycles being removed while this test lands: each entry is the set of modules of one known cycle. A
# strongly connected group of modules passes only when it lies inside one entry. Empty this when they go.

# What each part of the package may import from the package. The root package (``__version__`` only) is
# a leaf everyone may import; settings and exceptions are leaves that the Airflow side shares.
AIRFLOW_SIDE = frozenset({"operators", "sensors", "triggers", "links", "notifiers"})
LEAVES = frozenset({"", "settings", "exceptions"})
MAY_IMPORT: dict[str, frozenset[str]] = {
    "": frozenset(),
    "core": frozenset({"", "core"}),
    "settings": frozenset({""}),
    "exceptions": frozenset({"", "core"}),
    "get_provider_info": frozenset({""}),
    "hooks": LEAVES | {"core", "hooks"},
    **{side: LEAVES | AIRFLOW_SIDE | {"core", "hooks"} for side in AIRFLOW_SIDE},
    "cli": LEAVES | {"core", "hooks", "cli"},
    # the plugin resolves the extra links when they are clicked, with the addresses links.urls builds
    "plugins": LEAVES | {"core", "hooks", "links", "plugins"},
    "__main__": frozenset({"", "cli"}),
}
# Top-level names outside the package that no module of it may import: the checkout around it is not
# there once the wheel is installed, and the core never imports Airflow.
NEVER_IMPORTED = frozenset({"dags", "tests", "scripts", "benchmarks"})
CORE_NEVER_IMPORTS = "airflow"


def part(module: str) -> str:
    """``airflow_mlops.core.gating.card`` -> ``core``; the root package -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def import_cycles(graph: ImportGraph) -> list[str]:
    """Each group of modules importing each other, described."""
    found = []
    adjacency = graph.adjacency()
    for group in cyclic_groups(adjacency):
        inside = sorted(
            f"{e.source} -> {e.target} ({f'line {e.line}' if e.line else 'lazy re-export'})"
            for e in graph.edges
            if e.source in group and e.target in group and e.source != e.target
        )
        cycle = graph.describe(shortest_cycle(adjacency, group))
        found.append(f"{cycle}\n    all imports among these modules: {'; '.join(inside)}")
    return found


def layer_violations(graph: ImportGraph) -> list[str]:
    found = []
    for edge in graph.edges:
        source, target = part(edge.source), part(edge.target)
        allowed = MAY_IMPORT.get(source)
        if allowed is None:
            found.append(f"{edge.source}: '{source}' has no place in the layer order (add it to MAY_IMPORT)")
        elif target not in allowed:
            found.append(f"{edge.source} imports {edge.target} (line {edge.line}): {source} may not import {target}")
    for edge in graph.external:
        top = edge.target.split(".")[0]
        if top in NEVER_IMPORTED or (part(edge.source) == "core" and top == CORE_NEVER_IMPORTS):
            found.append(f"{edge.source} imports {edge.target} (line {edge.line}), outside what it may import")
    return sorted(set(found))


@pytest.fixture(scope="module")
def graph() -> ImportGraph:
    return ImportGraph()


def test_the_graph_sees_every_kind_of_import(graph: ImportGraph) -> None:
    """Sanity: a known module-level import, a function-level one and a TYPE_CHECKING one are all edges."""
    assert len(graph.modules) > 50 and f"{PACKAGE}.core.storage" in graph.modules
    pairs = {(e.source, e.target): e for e in graph.edges}
    assert (f"{PACKAGE}.__main__", f"{PACKAGE}.cli.main") in pairs
    assert (f"{PACKAGE}.core.training.tracking", f"{PACKAGE}.core.training.plots") in pairs  # in a function
    assert pairs[(f"{PACKAGE}.core.training.tracking", f"{PACKAGE}.core.training.spec")].typing_only is False


def test_no_import_cycle(graph: ImportGraph) -> None:
    found = import_cycles(graph)
    assert not found, "import cycles:\n" + "\n".join(found)


def test_imports_follow_the_layer_order(graph: ImportGraph) -> None:
    found = layer_violations(graph)
    assert not found, "imports against the layer order:\n" + "\n".join(found)


def _copy_package(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / PACKAGE, root / PACKAGE, ignore=shutil.ignore_patterns("__pycache__"))
    return root


LAZY_INIT = '''"""Careless."""
from airflow_mlops.core._exports import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {"Thing": "impl"})
'''


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "core/careless_a.py": "from airflow_mlops.core import careless_b\n",
                "core/careless_b.py": "def late():\n    from . import careless_a\n",
            },
            "airflow_mlops.core.careless_a -> airflow_mlops.core.careless_b (line 1) -> "
            "airflow_mlops.core.careless_a (line 2)",
        ),
        (
            {
                "core/careless/__init__.py": LAZY_INIT,
                "core/careless/impl.py": "from airflow_mlops.core import careless\n\nclass Thing: ...\n",
            },
            "airflow_mlops.core.careless -> airflow_mlops.core.careless.impl (lazy re-export) -> "
            "airflow_mlops.core.careless (line 1)",
        ),
    ],
    ids=["function-level-relative", "lazy-re-export"],
)
def test_an_injected_cycle_is_reported(tmp_path: Path, files: dict[str, str], expected: str) -> None:
    root = _copy_package(tmp_path)
    for name, text in files.items():
        (root / PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
        (root / PACKAGE / name).write_text(text)
    found = import_cycles(ImportGraph(root))
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_name_from_a_lazy_package_is_an_edge_to_its_submodule(tmp_path: Path) -> None:
    """``from pkg import Name`` reaches the module that defines Name, not every sibling of it."""
    root = _copy_package(tmp_path)
    stem = root / PACKAGE / "core" / "careless"
    stem.mkdir()
    (stem / "__init__.py").write_text(LAZY_INIT)
    (stem / "impl.py").write_text("from ..careless.user import helper\nclass Thing: ...\n")
    (stem / "user.py").write_text("def helper(): ...\n")
    (stem / "caller.py").write_text("from airflow_mlops.core.careless import Thing\n")
    graph = ImportGraph(root)
    adjacency = graph.adjacency()
    assert adjacency[f"{PACKAGE}.core.careless.caller"] == {f"{PACKAGE}.core.careless.impl"}
    assert adjacency[f"{PACKAGE}.core.careless.impl"] == {f"{PACKAGE}.core.careless.user"}
    assert adjacency[f"{PACKAGE}.core.careless"] == {f"{PACKAGE}.core._exports", f"{PACKAGE}.core.careless.impl"}
    assert import_cycles(graph) == []


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "core/careless.py",
            "def f():\n    from airflow_mlops.hooks.mlflow import MlflowHook\n",
            "airflow_mlops.core.careless imports airflow_mlops.hooks.mlflow (line 2): core may not import hooks",
        ),
        (
            "hooks/careless.py",
            "from airflow_mlops.operators import training\n",
            "airflow_mlops.hooks.careless imports airflow_mlops.operators.training (line 1): hooks may not import "
            "operators",
        ),
        (
            "operators/careless.py",
            "from dags import continuous_training\n",
            "airflow_mlops.operators.careless imports dags (line 1), outside what it may import",
        ),
        (
            "core/careless.py",
            "def f():\n    from airflow.sdk import BaseOperator\n",
            "airflow_mlops.core.careless imports airflow.sdk (line 2), outside what it may import",
        ),
    ],
    ids=["core-to-hooks", "hooks-to-operators", "operators-to-dags", "core-to-airflow-in-a-function"],
)
def test_an_injected_layer_violation_is_reported(tmp_path: Path, name: str, text: str, expected: str) -> None:
    root = _copy_package(tmp_path)
    (root / PACKAGE / name).write_text(text)
    assert expected in layer_violations(ImportGraph(root))
