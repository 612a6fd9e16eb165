"""The import graph of the package, read from source with ``ast`` (nothing is imported).

Every ``import`` statement counts, at module level or inside a function, absolute or relative, and
those under ``if TYPE_CHECKING:`` too: two modules that need each other's types are a cycle in the design
even when the interpreter never runs one side (the cure is a leaf module for the shared types).

A stem package's lazy re-exports (``lazy_exports(__name__, {"Name": "module"})``) are edges from the
package to each submodule they name. A name taken from such a package
(``from airflow_mlops.core.gating import GateSpec``) is an edge to the submodule that defines it, which is
what runs when the name is first read; importing the package object itself
(``from airflow_mlops.core import gating``) reaches every submodule through the package's edges.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.imports import REPO

PACKAGE = "airflow_mlops"


@dataclass(frozen=True)
class Edge:
    """``source`` imports ``target`` at ``line``; ``typing_only`` when under ``if TYPE_CHECKING:``."""

    source: str
    target: str
    line: int
    typing_only: bool = False


@dataclass(frozen=True)
class ModuleSource:
    name: str
    path: Path
    is_package: bool

    @property
    def package(self) -> str:
        """The package relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]


def package_modules(root: Path = REPO) -> dict[str, ModuleSource]:
    """Every module of the package under ``root``, by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        is_package = parts[-1] == "__init__"
        name = ".".join(parts[:-1] if is_package else parts)
        found[name] = ModuleSource(name, path, is_package)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(node: ast.AST, typing_only: bool = False) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement under ``node`` (functions and classes included), with its TYPE_CHECKING flag."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child, typing_only
        elif isinstance(child, ast.If) and _is_type_checking(child.test):
            yield from (item for stmt in child.body for item in _imports_in(stmt, True))
            yield from (item for stmt in child.orelse for item in _imports_in(stmt, typing_only))
        elif isinstance(child, ast.stmt | ast.excepthandler | ast.match_case):  # imports are statements
            yield from _imports(child, typing_only)


def _imports_in(stmt: ast.stmt, typing_only: bool) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        yield stmt, typing_only
    else:
        yield from _imports(stmt, typing_only)


def lazy_exports(tree: ast.Module) -> dict[str, str]:
    """``{name: submodule}`` from a ``lazy_exports(__name__, {...})`` call of a package ``__init__``."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "lazy_exports"
            and len(node.args) == 2
            and isinstance(node.args[1], ast.Dict)
        ):
            mapping = node.args[1]
            return {
                k.value: v.value
                for k, v in zip(mapping.keys, mapping.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
    return {}


def _absolute(module: ModuleSource, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.package.split(".")
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


class ImportGraph:
    """Edges among the modules of the package, and the imports that leave it (``external``)."""

    def __init__(self, root: Path = REPO) -> None:
        self.modules = package_modules(root)
        trees = {name: ast.parse(m.path.read_text(), str(m.path)) for name, m in self.modules.items()}
        self.exports = {name: lazy_exports(tree) for name, tree in trees.items() if self.modules[name].is_package}
        self.edges: list[Edge] = []
        self.external: list[Edge] = []
        for name, tree in trees.items():
            for submodule in sorted(set(self.exports.get(name, {}).values())):
                self.edges.append(Edge(name, f"{name}.{submodule}", 0))
            for node, typing_only in _imports(tree):
                for target in self._targets(self.modules[name], node):
                    edge = Edge(name, target, node.lineno, typing_only)
                    (self.edges if target.split(".")[0] == PACKAGE else self.external).append(edge)

    def _known(self, dotted: str) -> str:
        """The longest prefix of ``dotted`` that is a module of the package (``dotted`` when outside it)."""
        if dotted.split(".")[0] != PACKAGE:
            return dotted
        parts = dotted.split(".")
        while len(parts) > 1 and ".".join(parts) not in self.modules:
            parts.pop()
        return ".".join(parts)

    def _targets(self, module: ModuleSource, node: ast.Import | ast.ImportFrom) -> Iterator[str]:
        if isinstance(node, ast.Import):
            yield from (self._known(alias.name) for alias in node.names)
            return
        base = _absolute(module, node)
        for alias in node.names:
            if f"{base}.{alias.name}" in self.modules:
                yield f"{base}.{alias.name}"
            elif alias.name in self.exports.get(base, {}):
                yield f"{base}.{self.exports[base][alias.name]}"
            else:
                yield self._known(base)

    def adjacency(self) -> dict[str, set[str]]:
        """``{module: modules it imports}`` (self-imports left out)."""
        graph: dict[str, set[str]] = {name: set() for name in self.modules}
        for edge in self.edges:
            if edge.target != edge.source and edge.target in graph:
                graph[edge.source].add(edge.target)
        return graph

    def describe(self, cycle: list[str]) -> str:
        """``a -> b (line 12) -> a (line 40, TYPE_CHECKING)``: the cycle, with where each step is written."""
        steps = [cycle[0]]
        for source, target in itertools.pairwise(cycle):
            edge = min(
                (e for e in self.edges if e.source == source and e.target == target),
                key=lambda e: (e.typing_only, e.line),
            )
            where = "lazy re-export" if edge.line == 0 else f"line {edge.line}"
            steps.append(f"{target} ({where}{', TYPE_CHECKING' if edge.typing_only else ''})")
        return " -> ".join(steps)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each group of modules that import each other (see ``cyclic_groups``)."""
    return [shortest_cycle(graph, group) for group in cyclic_groups(graph)]


def cyclic_groups(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module, ordered by their first module."""
    return sorted((frozenset(c) for c in _components(graph)), key=min)


def shortest_cycle(graph: dict[str, set[str]], group: frozenset[str]) -> list[str]:
    """A shortest cycle inside ``group`` from its first module (sorted) back to it, following sorted
    edges, so the same graph always prints the same cycle."""
    return _cycle_through(graph, set(group), min(group))


def _components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components (iterative), those with more than one node."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[set[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    result.append(component)
    return result


def _cycle_through(graph: dict[str, set[str]], component: set[str], start: str) -> list[str]:
    """A shortest path from ``start`` back to itself inside ``component`` (breadth-first)."""
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & component):
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start] if node != start else [start, start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in a strongly connected component but has no cycle")
