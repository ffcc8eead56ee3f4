"""Old flat module paths (``explainer.attribution`` …) kept importable for one release, with a warning."""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

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


#: 0.1's public functions whose names are now module paths: ``explainer.anatomy(...)`` → ``model_anatomy``.
RENAMED_FUNCTIONS = {"anatomy": "model_anatomy", "activations": "layer_activations"}


def renamed_function(old: str) -> Any:
    """The function 0.1 called ``explainer.<old>``, wrapped to warn that it is now ``explainer.<new>``."""
    import explainer

    new = RENAMED_FUNCTIONS[old]
    function = getattr(explainer, new)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"explainer.{old}() is now explainer.{new}(); the old name goes away in the next release.",
                      DeprecationWarning, stacklevel=2)
        return function(*args, **kwargs)

    return call


class _CallableAlias(ModuleType):
    """An old module path that is also 0.1's function of the same name (``explainer.anatomy``)."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return renamed_function(self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


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
        kind = _CallableAlias if spec.name.rsplit(".", 1)[1] in RENAMED_FUNCTIONS else ModuleType
        alias = kind(spec.name, target.__doc__)
        alias.__getattr__ = lambda name: getattr(target, name)  # type: ignore[method-assign]
        return alias

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the alias forwards every attribute to the module at its new place."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` once."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())
