"""Guards that leave the user's model as it was: context managers that restore on error too.

- :func:`eval_mode` (and :func:`train_mode`) – the module in eval (train) mode inside, every submodule's own
  ``training`` flag restored after;
- :func:`preserved_grads` – each parameter's ``.grad`` (tensor identity and values, or None) restored after;
- :func:`hook_guard` – any module hook added inside the block (forward, forward-pre, backward,
  backward-pre, on any submodule, or global) is removed after;
- :func:`user_state_guard` – the three together, the usual guard for running a user's model.

The random state has its guards in :mod:`explainer.rng`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager

import torch
from torch import nn


@contextmanager
def _mode(module: nn.Module, training: bool) -> Iterator[nn.Module]:
    flags = [(sub, sub.training) for sub in module.modules()]
    try:
        module.train(training)
        yield module
    finally:
        for sub, flag in flags:
            sub.training = flag


def eval_mode(module: nn.Module) -> AbstractContextManager[nn.Module]:
    """Run the block with ``module`` in eval mode; every submodule's ``training`` flag is restored after.

    A module whose submodules the user set to different modes (e.g. a frozen BatchNorm in eval inside a
    model in train mode) gets exactly those flags back, also when the block raises.
    """
    return _mode(module, False)


def train_mode(module: nn.Module) -> AbstractContextManager[nn.Module]:
    """Run the block with ``module`` in train mode; every submodule's ``training`` flag is restored after."""
    return _mode(module, True)


@contextmanager
def preserved_grads(module: nn.Module) -> Iterator[nn.Module]:
    """Run the block and give every parameter of ``module`` its ``.grad`` back afterwards.

    A gradient the user had accumulated is restored as the same tensor object with the same values
    (so ``zero_grad()`` or ``backward()`` inside the block cannot change it); a ``None`` stays ``None``.
    """
    saved: list[tuple[nn.Parameter, torch.Tensor | None, torch.Tensor | None]] = []
    for parameter in module.parameters():
        grad = parameter.grad
        saved.append((parameter, grad, None if grad is None else grad.detach().clone()))
    try:
        yield module
    finally:
        with torch.no_grad():
            for parameter, grad, values in saved:
                if grad is not None and values is not None:
                    grad.copy_(values)
                parameter.grad = grad


#: Per-module hook dictionaries (keyed by handle id) that register_*_hook fills.
_MODULE_HOOK_DICTS = (
    "_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
    "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks", "_backward_pre_hooks",
)
#: Process-wide module hook dictionaries (torch.nn.modules.module.register_module_*_hook).
_GLOBAL_HOOK_DICTS = (
    "_global_forward_hooks", "_global_forward_hooks_with_kwargs", "_global_forward_hooks_always_called",
    "_global_forward_pre_hooks", "_global_backward_hooks", "_global_backward_pre_hooks",
)


def _hook_dicts(module: nn.Module) -> list[tuple[object, str, dict]]:
    import torch.nn.modules.module as module_globals

    found: list[tuple[object, str, dict]] = []
    for sub in module.modules():
        found += [(sub, name, vars(sub)[name]) for name in _MODULE_HOOK_DICTS if isinstance(vars(sub).get(name), dict)]
    found += [(module_globals, name, getattr(module_globals, name)) for name in _GLOBAL_HOOK_DICTS
              if isinstance(getattr(module_globals, name, None), dict)]
    return found


@contextmanager
def hook_guard(module: nn.Module) -> Iterator[nn.Module]:
    """Run the block; every forward/backward (pre-)hook added inside it – on ``module``, any of its
    submodules or process-wide – is removed afterwards, also when the block raises.

    Hooks that existed before the block stay, and so do the modules' ``_is_full_backward_hook`` flags.
    """
    before = [(owner, name, hooks, set(hooks)) for owner, name, hooks in _hook_dicts(module)]
    full_backward = [(sub, vars(sub).get("_is_full_backward_hook")) for sub in module.modules()]
    try:
        yield module
    finally:
        for _owner, _name, hooks, keys in before:
            for key in [key for key in hooks if key not in keys]:
                del hooks[key]
        for sub, flag in full_backward:
            sub._is_full_backward_hook = flag


@contextmanager
def user_state_guard(module: nn.Module) -> Iterator[nn.Module]:
    """:func:`eval_mode`, :func:`preserved_grads` and :func:`hook_guard` together: the usual guard for
    running a user's model inside the library."""
    with ExitStack() as stack:
        for guard in (hook_guard, preserved_grads, eval_mode):
            stack.enter_context(guard(module))
        yield module
