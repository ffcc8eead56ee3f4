"""The package layout keeps its promises: no name shadows a submodule, imports point down, no import cycles
(old paths: tests/test_compat.py)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
from pathlib import Path

import explainer

PACKAGE = Path(explainer.__file__).parent


def test_no_function_or_class_shadows_a_submodule():
    shadowed = []
    for module in pkgutil.walk_packages(explainer.__path__, "explainer."):
        parent, _, child = module.name.rpartition(".")
        value = getattr(importlib.import_module(parent), child, None)
        if value is not None and not isinstance(value, types.ModuleType):
            shadowed.append(f"{module.name} is hidden by {type(value).__name__} {parent}.{child}")
    assert shadowed == []


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_imports_point_down_only():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        layer = path.relative_to(PACKAGE).parts[0]
        for name in _imported_modules(path):
            if name.startswith(("dashboards", "streamlit")):
                upward.append(f"{path}: {name}")
            if layer not in ("commands", "cli.py") and name.startswith(("explainer.commands", "explainer.cli")):
                upward.append(f"{path}: {name}")
            if layer not in ("commands", "plots") and name.startswith("explainer.plots"):
                upward.append(f"{path}: {name}")
    assert upward == []


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_time_imports(statements: list[ast.stmt]) -> list[ast.Import | ast.ImportFrom]:
    """The imports that run when the module is imported: not those inside functions or ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []
    for statement in statements:
        if isinstance(statement, (ast.Import, ast.ImportFrom)):
            found.append(statement)
        elif isinstance(statement, ast.If) and _is_type_checking(statement.test):
            found += _import_time_imports(statement.orelse)
        elif not isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for child in ast.iter_child_nodes(statement):  # class bodies and the blocks of if, try, with, for
                if isinstance(child, ast.stmt):
                    found += _import_time_imports([child])
                elif isinstance(child, (ast.excepthandler, ast.match_case)):
                    found += _import_time_imports(child.body)
    return found


def _import_graph() -> dict[str, set[str]]:
    """``explainer`` module → the ``explainer`` modules its import runs.

    ``from explainer.x import y`` is an edge to ``explainer.x.y`` where that is a module, else to
    ``explainer.x``; importing a module also runs the ``__init__`` of each package above it, so those are
    edges too – except the packages above the importer itself (a package importing its children is fine;
    a child importing its package's ``__init__`` by name, while that imports the child, is a cycle).
    """
    paths = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _import_time_imports(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
                continue
            module = node.module or ""
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, module] if module else base)
            targets.update(f"{module}.{alias.name}" if f"{module}.{alias.name}" in paths else module
                           for alias in node.names)
        edges = set()
        for target in targets:
            parts = target.split(".")
            for end in range(1, len(parts) + 1):
                above = ".".join(parts[:end])
                is_own_package = f"{name}.".startswith(f"{above}.")
                if above in paths and not is_own_package:
                    edges.add(above)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = [stack.pop()]
            while component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_explainer_modules():
    graph = _import_graph()
    assert {"explainer.models.classifier", "explainer.models.predictions"} <= graph.keys()
    assert "explainer.models.predictions" in graph["explainer.models.classifier"]
    cycles = [" ↔ ".join(component) + " (" + "; ".join(f"{name} → {', '.join(sorted(graph[name] & set(component)))}"
                                                     for name in component) + ")"
              for component in _cycles(graph)]
    assert cycles == [], "import cycles at module level:\n" + "\n".join(cycles)
