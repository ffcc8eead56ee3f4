"""Compatibility: every deprecated spelling that still works, what to write instead, and when it goes away.

:data:`REMOVALS` is the one removal table; ``tests/test_compat.py`` checks that every entry still works and
warns (the silent ones: still work) and that the current version is below each removal release. The
mechanisms that keep the old spellings working:

- :func:`legacy_positional` – calls written for an older positional signature, or with old keyword names;
- :func:`deprecated_alias` – an old attribute name of a result;
- :func:`install` – old module paths (``explainer.images`` …: 0.2 grouped the package by layer;
  ``explainer.attribution.cam`` and ``…captum_methods``: the methods moved into ``explainer.attribution.methods``)
  import from their new place, and :func:`renamed_function` – 0.1's ``explainer.anatomy(...)`` and
  ``explainer.activations(...)``;
- kept where they are, as they belong to one function or to the CLI: ``top_activating``'s old argument
  order (``_accept_old_order`` in :mod:`explainer.inside.features`), ``check_faithfulness``'s old images
  argument, the old functions ``explainer.models.anatomy.anatomy`` and
  ``explainer.inside.activations.activations``, the CLI's hidden old flags
  (:func:`explainer.commands._options.add_old_flag`) and ``evaluate``'s positional dataset name.

To remove an entry: delete the old spelling where the table's ``old`` names it, then its row here.
"""

from __future__ import annotations

import functools
import importlib
import importlib.abc
import importlib.machinery
import inspect
import sys
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from explainer.keywords import keyword_checker

F = TypeVar("F", bound=Callable[..., Any])

#: The release that drops what the warnings call deprecated ("goes away in 0.5"; 0.4 keeps all of it).
NEXT_REMOVAL = "0.5"

#: What each ``kind`` of :class:`Deprecated` is, and how the old spelling is kept working.
KINDS = {
    "module path": "an old module path: importing it warns and gives the module at its new place (install)",
    "function name": "an old function name: calling it warns and calls the new function",
    "positional arguments": "arguments that are keyword-only now: a positional call warns (legacy_positional)",
    "keyword name": "an old keyword name: passing it warns and passes the new one",
    "argument order": "an old order of the arguments: a call in it warns and is reordered",
    "call form": "an old extra argument: passing it warns, the call goes on without it",
    "attribute": "an old attribute name of a result: reading it warns (deprecated_alias)",
    "CLI flag": "an old command-line flag: it still works, with a one-line note on stderr (hidden and silent: removed_in None)",
    "CLI argument": "an old form of a command-line argument: it still works, with a one-line note on stderr",
    "re-export": "a name still importable from the module that held it before a split (silent)",
}


@dataclass(frozen=True)
class Deprecated:
    """One deprecated spelling: ``old`` still works, ``new`` is what to write instead (what the warning
    says), and ``removed_in`` the release without ``old`` (None: kept silently, no removal announced)."""

    kind: str
    old: str
    new: str
    removed_in: str | None = NEXT_REMOVAL


def _entries(kind: str, pairs: Mapping[str, str], removed_in: str | None = NEXT_REMOVAL) -> list[Deprecated]:
    return [Deprecated(kind, old, new, removed_in) for old, new in pairs.items()]


#: The removal table: every deprecated spelling → what to write instead → the release it goes away in.
REMOVALS: tuple[Deprecated, ...] = (
    # 0.2 grouped the flat package by layer; the old paths import with a warning
    *_entries("module path", {
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
    }),
    # every built-in attribution method lives in explainer.attribution.methods, one module per family
    *_entries("module path", {
        "explainer.attribution.captum_methods": "explainer.attribution.methods.captum",
        "explainer.attribution.cam": "explainer.attribution.methods.gradcam",
    }),
    # 0.1's functions whose names are module paths now
    *_entries("function name", {
        "explainer.anatomy(classifier)": "explainer.model_anatomy",
        "explainer.activations(classifier, images)": "explainer.layer_activations",
        "explainer.models.anatomy.anatomy(classifier)": "explainer.model_anatomy",
        "explainer.inside.activations.activations(classifier, images)": "explainer.layer_activations",
    }),
    # one vocabulary, (classifier, images, *, ...): 0.1's positional calls (legacy_positional)
    *_entries("positional arguments", {
        "explainer.Classifier.logits(images, batch_size)": "batch_size=...",
        "explainer.Classifier.predict(images, top_k)": "top_k=...",
        "explainer.model_anatomy(classifier, depth)": "depth=...",
        "explainer.layer_activations(classifier, images, layers)": "layers=...",
        "explainer.LayerActivation.top_channels(top_k, image)": "image=...",
        "explainer.ablate(classifier, images, layer, channels)": "layer=..., channels=...",
        "explainer.cam_channel_importance(classifier, images, layer, target)": "layer=..., target=...",
        "explainer.ChannelImportance.top(top_k, image)": "image=...",
        "explainer.visualize_channel(classifier, layer, channel)": "layer=..., channel=...",
        "explainer.conv_step(classifier, images, out_channel, row, col)": "out_channel=..., row=..., col=...",
        "explainer.embed_dataset(classifier, dataset, layer, method)": "layer=..., method=...",
        "explainer.build_mlp(input_shape, num_classes, hidden, activation)": "hidden=..., activation=...",
        "explainer.build_cnn(input_shape, num_classes, channels, kernel_size, hidden, activation, pool, padding)":
            "channels=..., kernel_size=..., hidden=..., activation=..., pool=..., padding=...",
        "explainer.count_flops(model, input_shape, num_samples)": "num_samples=...",
        "explainer.fit(model, dataset, epochs, lr, optimizer, batch_size, target_accuracy, l1, l2, device, seed, "
        "callback, telemetry, stats_every)": "epochs=..., lr=..., optimizer=..., batch_size=..., target_accuracy=..., "
                                             "l1=..., l2=..., device=..., seed=..., callback=..., telemetry=..., "
                                             "stats_every=...",
        "explainer.learning_step(model, batch, lr, loss)": "lr=..., loss=...",
        "explainer.train_playground(config, callback, snapshots, device, on_frame)":
            "callback=..., snapshots=..., device=..., on_frame=...",
    }),
    *_entries("keyword name", {
        "explainer.LayerActivation.top_channels(k=...)": "top_k=",
        "explainer.ChannelImportance.top(k=...)": "top_k=",
        "explainer.top_activating(k=...)": "top_k=",  # _accept_old_order in explainer.inside.features
    }),
    *_entries("argument order", {  # _accept_old_order in explainer.inside.features
        "explainer.top_activating(classifier, layer, channel, images, k)":
            "top_activating(classifier, images, layer=..., channel=..., top_k=...)",
    }),
    *_entries("call form", {  # the explanation carries its images
        "explainer.check_faithfulness(classifier, images, explanation)": "check_faithfulness(classifier, explanation)",
    }),
    # result fields named model_name everywhere (deprecated_alias)
    *_entries("attribute", {
        "explainer.Anatomy.model": "model_name",
        "explainer.Activations.model": "model_name",
        "explainer.Embedding.model": "model_name",
        "explainer.Intervention.model": "model_name",
        "explainer.ChannelImportance.model": "model_name",
    }),
    # the CLI's one vocabulary (explainer.commands._options.add_old_flag; explainer.commands.evaluate)
    *_entries("CLI flag", {
        "--top": "--top-k",  # every subcommand with --top-k except ablate
        "ablate --top": "--ablate",
        "--out": "--out-dir",  # every subcommand that writes into a folder
    }),
    Deprecated("CLI flag", "transfer --backbone", "--model", removed_in=None),  # hidden, silent
    *_entries("CLI argument", {"evaluate DATASET": "evaluate --dataset"}),
    # names the modules held before they were split, still importable from there (silent, not scheduled)
    *_entries("re-export", {
        "explainer.attribution.explanation.BASELINES": "explainer.baselines.BASELINES",
        "explainer.attribution.explanation.METHODS": "explainer.attribution.registry.METHODS",
        "explainer.attribution.explanation.Job": "explainer.attribution.registry.Job",
        "explainer.attribution.explanation.MethodSpec": "explainer.attribution.registry.MethodSpec",
        "explainer.attribution.explanation.Output": "explainer.attribution.registry.Output",
        "explainer.attribution.explanation.Param": "explainer.attribution.registry.Param",
        "explainer.attribution.explanation.get_method": "explainer.attribution.registry.get_method",
        "explainer.attribution.explanation.list_methods": "explainer.attribution.registry.list_methods",
        "explainer.attribution.explanation.register_method": "explainer.attribution.registry.register_method",
        "explainer.attribution.explanation.occlusion_window": "explainer.attribution.methods.captum.occlusion_window",
        "explainer.attribution.explanation.SampleMemory": "explainer.attribution.memory.SampleMemory",
        "explainer.attribution.explanation.sample_memory": "explainer.attribution.memory.sample_memory",
        "explainer.attribution.explanation._private_copy": "explainer.attribution.private_copy.private_copy",
        "explainer.learn.training.LOSSES": "explainer.learn.sgd_step.LOSSES",
        "explainer.learn.training.LearningStep": "explainer.learn.sgd_step.LearningStep",
        "explainer.learn.training.learning_step": "explainer.learn.sgd_step.learning_step",
        "explainer.learn.training.train_steps": "explainer.learn.stepping.train_steps",
        "explainer.learn.training.OPTIMIZERS": "explainer.learn.training_options.OPTIMIZERS",
        "explainer.learn.training.TELEMETRY": "explainer.learn.training_options.TELEMETRY",
        "explainer.learn.sweep.SETTING_HELP": "explainer.learn.sweep_grid.SETTING_HELP",
        "explainer.learn.sweep.SETTINGS": "explainer.learn.sweep_grid.SETTINGS",
        "explainer.learn.sweep.TrainingTask": "explainer.learn.sweep_grid.TrainingTask",
        "explainer.learn.sweep.parse_setting": "explainer.learn.sweep_grid.parse_setting",
        "explainer.learn.sweep.RESULT_FIELDS": "explainer.learn.sweep_results.RESULT_FIELDS",
        "explainer.learn.sweep.RUN_COLUMNS": "explainer.learn.sweep_results.RUN_COLUMNS",
        "explainer.learn.sweep.MIN_RUN_SECONDS": "explainer.learn.sweep_worker.MIN_RUN_SECONDS",
    }, removed_in=None),
)


def _name(spelling: str) -> str:
    """The dotted name of a spelling in the table: ``"explainer.anatomy(classifier)"`` → ``"explainer.anatomy"``."""
    return spelling.partition("(")[0]


#: old module path → where it lives now (0.2 grouped the flat package by layer).
MOVED = {entry.old: entry.new for entry in REMOVALS if entry.kind == "module path"}

#: 0.1's public functions whose names are now module paths: ``explainer.anatomy(...)`` → ``model_anatomy``.
RENAMED_FUNCTIONS = {
    _name(entry.old).removeprefix("explainer."): entry.new.removeprefix("explainer.")
    for entry in REMOVALS
    if entry.kind == "function name" and _name(entry.old).count(".") == 1
}


# ------------------------------------------------------------------ old signatures and names
def legacy_positional(*names: str, renamed: Mapping[str, str] | None = None) -> Callable[[F], F]:
    """Accept, for one release, calls written for an older signature of the decorated function.

    Positional arguments beyond the function's positional parameters are passed as the keywords
    ``names`` (in order), and old keyword names in ``renamed`` (old → new) as their new names; each such
    call warns with a DeprecationWarning that says how to write it now. Type checkers see only the
    new signature.
    """
    renames = dict(renamed or {})

    def decorate(function: F) -> F:
        parameters = inspect.signature(function).parameters.values()
        positional = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters)
        check = keyword_checker(function, extra=renames)

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            moved: list[str] = []
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(names):
                    raise TypeError(f"{function.__name__}() takes {positional} positional argument(s) "
                                    f"but {len(args)} were given.")
                for name, value in zip(names, extra):
                    if name in kwargs:
                        raise TypeError(f"{function.__name__}() got multiple values for argument {name!r}.")
                    kwargs[name] = value
                    moved.append(f"{name}=...")
                args = args[:positional]
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{function.__name__}() got both {old}= and {new}=; use {new}=.")
                    kwargs[new] = kwargs.pop(old)
                    moved.append(f"{new}= (not {old}=)")
            if moved:
                warnings.warn(
                    f"{function.__name__}(): pass {', '.join(moved)} by keyword; the old positional form or name "
                    "is deprecated and goes away in 0.5.",
                    DeprecationWarning,
                    stacklevel=2,
                )
            check(kwargs)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def deprecated_alias(old: str, new: str) -> property:
    """A read-only property ``old`` that returns attribute ``new`` with a DeprecationWarning."""

    def getter(self: Any) -> Any:
        warnings.warn(f"{type(self).__name__}.{old} is now .{new}; the old name goes away in 0.5.",
                      DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(getter, doc=f"Deprecated: use ``{new}``.")


# ------------------------------------------------------------------------ old module paths
def renamed_function(old: str) -> Any:
    """The function 0.1 called ``explainer.<old>``, wrapped to warn that it is now ``explainer.<new>``."""
    import explainer

    new = RENAMED_FUNCTIONS[old]
    function = getattr(explainer, new)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"explainer.{old}() is now explainer.{new}(); the old name goes away in 0.5.",
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
            "The old path goes away in 0.5.",
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
