"""One path from training to inspection: a bare ``nn.Module`` or a ``Classifier`` → a ``Classifier``.

``fit`` and ``build_model`` remember which dataset a module was made for (a weak reference, so nothing is
kept alive); :func:`as_classifier` then wraps such a module with that dataset's input shape, channels and
labels. Every inspection call goes through it, so ``layer_activations(run.model, x)`` works after
``fit`` and an unknown module gets a message that says how to wrap it.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from explainer.errors import InputError
from explainer.models.classifier import Classifier, _first_conv_channels


@dataclass(frozen=True)
class TrainedOn:
    """What a module was built or trained for: the dataset's name, one example's shape and class names."""

    dataset: str
    input_shape: tuple[int, ...]
    class_names: tuple[str, ...]


_TRAINED_ON: weakref.WeakKeyDictionary[nn.Module, TrainedOn] = weakref.WeakKeyDictionary()


def remember_dataset(module: nn.Module, dataset: Any) -> None:
    """Record that ``module`` was built or trained for ``dataset`` (an image :class:`~explainer.Dataset`)."""
    shape = tuple(int(n) for n in dataset.input_shape)
    if len(shape) == 3:
        _TRAINED_ON[module] = TrainedOn(str(dataset.name), shape, tuple(dataset.class_names))


def trained_on(module: nn.Module) -> TrainedOn | None:
    """The dataset ``module`` was built or trained for, if explainer made or trained it."""
    return _TRAINED_ON.get(module)


def for_dataset(module: nn.Module, dataset: Any, *, name: str | None = None) -> Classifier:
    """Wrap ``module`` for ``dataset``'s images: its input size, channels and class names, no normalization
    (datasets hold pixels in [0, 1], which is what ``fit`` trains on)."""
    if len(dataset.input_shape) != 3:
        raise InputError(f"{dataset.name} holds {dataset.input_shape}-shaped points, not images; "
                         "the inspection calls need an image dataset.")
    with _flags_kept(module):
        return Classifier.from_module(module, dataset=dataset, name=name or f"{type(module).__name__} ({dataset.name})")


def as_classifier(model: Classifier | nn.Module, *, dataset: Any = None, caller: str = "this call") -> Classifier:
    """``model`` as a :class:`Classifier`: itself, or a bare module wrapped for the dataset it was trained on.

    A module that ``fit``/``build_model`` made or trained is wrapped with that dataset's shape and labels
    (or with ``dataset``'s, when given). Any other module raises an :class:`InputError` that shows the
    ``Classifier.from_module(...)`` call to write. The module's ``training`` flags are left as they were.
    """
    if isinstance(model, Classifier):
        return model
    if not isinstance(model, nn.Module):
        raise InputError(f"{caller} needs an explainer.Classifier or a torch nn.Module, got {type(model).__name__}. "
                         "Load one with explainer.load_model(...) or wrap yours with Classifier.from_module(net, ...).")
    if dataset is not None:
        return for_dataset(model, dataset)
    known = trained_on(model)
    if known is not None:
        return for_dataset(model, _Known(known))
    raise InputError(
        f"{caller} got a bare {type(model).__name__} that explainer did not build or train, so its input size, "
        f"channels and labels are unknown. Wrap it: {wrap_hint(model)} "
        "(labels=[...] names the classes)."
    )


def wrap_hint(module: nn.Module, input_size: Sequence[int] | None = None) -> str:
    """The ``Classifier.from_module(...)`` call for ``module``, with the channels its first layer expects."""
    channels = _first_conv_channels(module)
    size = f"({input_size[0]}, {input_size[1]})" if input_size else "(H, W)"
    chans = f", in_chans={channels}" if channels is not None else ""
    return f"Classifier.from_module(net, input_size={size}{chans})"


@dataclass(frozen=True)
class _Known:
    """A :class:`TrainedOn` seen as a dataset by :func:`for_dataset`."""

    info: TrainedOn

    @property
    def name(self) -> str:
        return self.info.dataset

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names


class _flags_kept:
    """Restore every ``training`` flag of a module on exit (wrapping puts a module in eval mode)."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module
        self.flags = [(sub, sub.training) for sub in module.modules()]

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        for sub, flag in self.flags:
            sub.training = flag
