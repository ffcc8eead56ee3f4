"""Old flat module paths (``explainer.attribution`` …) kept importable for one release, with a warning."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

#: old module path → where it lives now (0.2 grouped the flat package by layer).
MOVED = {
    "explainer.images": "explainer.data.images",
    "explainer.datasets": "explainer.data.datasets",
    "explainer.layers": "explainer.models.layers",
    "explainer.anatomy": "explainer.models.anatomy",
    "explainer.estimate": "explainer.attribution.estimate",
    "explainer.faithfulness": "explainer.evidence.faithfulness",
    "explainer.activations": "explainer.inside.activations",
    "explainer.features": "explainer.inside.features",
    "explainer.intervention": "explainer.inside.intervention",
    "explainer.embeddings": "explainer.inside.embeddings",
    "explainer.convolution": "explainer.inside.convolution",
    "explainer.architectures": "explainer.learn.architectures",
    "explainer.training": "explainer.learn.training",
    "explainer.playground": "explainer.learn.playground",
    "explainer.flops": "explainer.learn.flops",
    "explainer.feature_cache": "explainer.transfer.feature_cache",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old path to the module at its new place, warning once per import."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; import it from there (or from `explainer`). "
            "The old path goes away in the next release.",
            DeprecationWarning,
            stacklevel=2,
        )
        target = importlib.import_module(new)
        alias = ModuleType(spec.name, target.__doc__)
        alias.__getattr__ = lambda name: getattr(target, name)  # type: ignore[method-assign]
        return alias

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the alias forwards every attribute to the module at its new place."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
