"""The package layout keeps its promises: no name shadows a submodule, imports point down, old paths still import."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import types
import warnings
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


def test_old_flat_paths_import_with_a_deprecation_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from explainer.faithfulness import check_faithfulness
        from explainer.training import fit
    assert check_faithfulness is explainer.check_faithfulness and fit is explainer.fit
    assert any("moved to explainer.evidence.faithfulness" in str(w.message) for w in caught)
    from explainer.attribution import METHODS, explain  # the 0.1 path of the registry, now its package
    assert explain is explainer.explain and "gradcam" in METHODS
