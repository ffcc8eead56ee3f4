"""Shared plumbing: guards that leave the user's model and random state as they were, and one copy of
the small helpers every layer needs (targets, baselines, top-k predictions, JSON-ready results).

Guards (context managers, all restore on error too):

- :func:`eval_mode` (and :func:`train_mode`) – the module in eval (train) mode inside, every submodule's own
  ``training`` flag restored after;
- :func:`preserved_grads` – each parameter's ``.grad`` (tensor identity and values, or None) restored after;
- :func:`hook_guard` – any module hook added inside the block (forward, forward-pre, backward,
  backward-pre, on any submodule, or global) is removed after;
- :func:`isolated_rng` – for library code that insists on the global RNG (``nn.init``, Captum's noise):
  the global torch CPU and CUDA generators are seeded inside and restored after, and numpy's and
  Python's global states are restored too.

Prefer :func:`seeded_generator` (a private ``torch.Generator``) wherever a function takes a generator.

API evolution: :func:`legacy_positional` keeps calls written for the old positional signatures working,
with a DeprecationWarning, for one release.

Helpers: :func:`resolve_targets` (one class per image), :func:`baseline` (one vocabulary of reference
images: ``BASELINES``), :func:`top_k` (predictions), :func:`json_ready` (dataclasses, numpy and torch
values → JSON types, NaN/inf → None).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import inspect
import math
import random
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from explainer.errors import InputError

if TYPE_CHECKING:
    from explainer.models.classifier import Classifier, Prediction

#: The reference images ("what a removed pixel becomes"), in model-input space.
BASELINES = ("zero", "black", "white", "blur")
#: Older spellings still accepted by :func:`baseline` (and :func:`baseline_name`).
BASELINE_ALIASES = {"zeros": "zero"}
#: The blur baseline's Gaussian sigma as a fraction of the image's shorter side (at least 1 pixel).
BLUR_SIGMA_FRACTION = 1 / 20

Target = int | str | Sequence[int | str] | torch.Tensor | np.ndarray | None
F = TypeVar("F", bound=Callable[..., Any])


# ------------------------------------------------------------------------------------ guards
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


# --------------------------------------------------------------------------------------- RNG
def seeded_generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A private ``torch.Generator`` on ``device`` seeded with ``seed``; the global RNG is not touched."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}.")
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def _cuda_devices_in_use() -> list[int]:
    """CUDA devices whose generators exist already (forking others would initialize CUDA)."""
    if not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return []
    return list(range(torch.cuda.device_count()))


@contextmanager
def isolated_rng(seed: int) -> Iterator[None]:
    """Seed torch's global generators with ``seed`` inside the block; restore every global RNG after.

    For library code that only draws from the global RNG (``nn.init``, Captum's noise tunnel). The CPU
    generator and those of the CUDA devices in use are forked; numpy's and Python's global states are
    saved and restored as well. CUDA is not initialized here, and no lazy seeding is queued for later.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(f"seed must be an integer, got {seed!r}.")
    devices = _cuda_devices_in_use()
    numpy_state = np.random.get_state()
    python_state = random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            torch.default_generator.manual_seed(int(seed))
            for index in devices:
                torch.cuda.default_generators[index].manual_seed(int(seed))
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


# ------------------------------------------------------------------------------------ targets
def resolve_targets(
    classifier: Classifier, target: Target, logits: torch.Tensor | None = None, *, count: int | None = None
) -> list[int]:
    """One class index per image.

    ``target``: None (each image's predicted class, the argmax of ``logits``), a class index or label
    (for every image), or one per image as a list/tuple, a 1-D tensor or array. The number of images is
    ``logits.shape[0]`` or ``count`` (give ``count`` and no logits when ``target`` is not None and no
    forward pass is wanted).
    """
    if logits is not None:
        count = int(logits.shape[0])
    if target is None:
        if logits is None:
            raise InputError("resolve_targets needs the logits to pick the predicted class when target is None.")
        return [int(i) for i in logits.detach().argmax(dim=1).cpu()]
    if isinstance(target, (torch.Tensor, np.ndarray)):
        if target.ndim == 0:
            return resolve_targets(classifier, int(target.item()), logits, count=count)
        return resolve_targets(classifier, [int(t) for t in target.reshape(-1).tolist()], logits, count=count)
    if isinstance(target, (list, tuple)):
        if count is not None and len(target) != count:
            raise InputError(
                f"target has {len(target)} entries but {count} image(s) were given; give one target, or one per image."
            )
        return [classifier.class_index(t) for t in target]
    if count is None:
        raise InputError("resolve_targets needs logits or count to repeat one target for every image.")
    return [classifier.class_index(target)] * count  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- baselines
def baseline_name(kind: str) -> str:
    """The canonical name of a baseline (``"zeros"`` → ``"zero"``); unknown names raise InputError."""
    name = BASELINE_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if name not in BASELINES:
        raise InputError(f"baseline={kind!r} is not supported; choose one of: {', '.join(BASELINES)}.")
    return name


def blur_sigma(height: int, width: int) -> float:
    """The blur baseline's Gaussian sigma in pixels: 1/20 of the shorter side, at least 1."""
    return max(1.0, min(height, width) * BLUR_SIGMA_FRACTION)


def baseline(
    inputs: torch.Tensor,
    kind: str,
    *,
    mean: Sequence[float] | torch.Tensor | None = None,
    std: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """A reference image in model-input space, shaped like ``inputs`` ``(N, C, H, W)``.

    ``"zero"`` (alias ``"zeros"``): all zeros – the data mean for a normalized model; ``"black"`` /
    ``"white"``: pixels 0 / 1 normalized with ``mean`` and ``std`` (default 0 and 1: no normalization);
    ``"blur"``: a Gaussian blur of the inputs, sigma = :func:`blur_sigma` (1/20 of the shorter side).
    """
    name = baseline_name(kind)
    if name == "zero":
        return torch.zeros_like(inputs)
    if name in ("black", "white"):
        channels = inputs.shape[1]
        shift = _channel_values(mean, 0.0, channels, inputs)
        scale = _channel_values(std, 1.0, channels, inputs)
        value = 0.0 if name == "black" else 1.0
        return ((value - shift) / scale).expand_as(inputs).contiguous()
    from torchvision.transforms.functional import gaussian_blur

    height, width = (int(s) for s in inputs.shape[-2:])
    sigma = blur_sigma(height, width)
    # reflect padding needs kernel // 2 < side: the largest odd kernel that fits, at most 3 sigma each way
    kernel = min(2 * math.ceil(3 * sigma) + 1, 2 * (min(height, width) - 1) + 1)
    if kernel < 3:
        return inputs.detach().clone()
    return gaussian_blur(inputs.detach(), [kernel, kernel], [sigma, sigma])


def _channel_values(values: Sequence[float] | torch.Tensor | None, default: float, channels: int,
                    like: torch.Tensor) -> torch.Tensor:
    if values is None:
        return torch.full((1, channels, 1, 1), default, dtype=like.dtype, device=like.device)
    tensor = torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1)
    if tensor.numel() not in (1, channels):
        raise InputError(f"mean/std need 1 or {channels} values (one per channel), got {tensor.numel()}.")
    return tensor.expand(channels).reshape(1, channels, 1, 1)


# ------------------------------------------------------------------------------------- top-k
def top_k(probabilities: torch.Tensor, labels: Sequence[str], k: int) -> list[list[Prediction]]:
    """The ``k`` most probable classes of each row of ``probabilities`` ``(N, classes)``, best first.

    ``k`` is capped at the number of classes; below 1 raises InputError.
    """
    from explainer.models.classifier import Prediction

    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"top_k must be a positive integer, got {k!r}.")
    if probabilities.ndim != 2:
        raise InputError(f"probabilities must be (images, classes), got shape {tuple(probabilities.shape)}.")
    values, indices = probabilities.detach().float().cpu().topk(min(int(k), probabilities.shape[1]), dim=1)
    return [
        [Prediction(labels[int(i)], int(i), float(p)) for p, i in zip(row_values, row_indices)]
        for row_values, row_indices in zip(values, indices)
    ]


# ------------------------------------------------------------------------------- JSON-ready
def json_ready(obj: Any, *, exclude: Iterable[str] = ()) -> Any:
    """``obj`` as JSON types: dataclasses and mappings → dicts, sequences/arrays/tensors → lists, numpy and
    torch scalars → Python numbers, NaN/inf → None, paths/devices/dtypes/enums → strings, a DataFrame → a
    list of row dicts, an ``nn.Module`` → its class name. ``exclude`` names top-level fields to leave out.
    """
    skip = set(exclude)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: json_ready(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name not in skip}
    if isinstance(obj, Mapping):
        return {str(key): json_ready(value) for key, value in obj.items() if key not in skip}
    return _json_value(obj)


def _json_value(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, torch.Tensor):
        return _json_value(obj.detach().cpu().tolist() if obj.ndim else obj.item())
    if isinstance(obj, np.ndarray):
        return _json_value(obj.tolist())
    if isinstance(obj, enum.Enum):
        return json_ready(obj.value)
    if isinstance(obj, (PurePath, torch.device, torch.dtype)):
        return str(obj)
    if isinstance(obj, nn.Module):
        return type(obj).__name__
    if dataclasses.is_dataclass(obj) or isinstance(obj, Mapping):
        return json_ready(obj)
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # a pandas DataFrame
        return [json_ready(row) for row in obj.to_dict("records")]
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_json_value(item) for item in obj]
    if isinstance(obj, complex):
        return [_json_value(obj.real), _json_value(obj.imag)]
    return str(obj)


# ---------------------------------------------------------------------------- API evolution
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
                    "is deprecated and goes away in the next release.",
                    DeprecationWarning,
                    stacklevel=2,
                )
            check(kwargs)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def keyword_checker(function: Callable[..., Any], *, extra: Iterable[str] = ()) -> Callable[[Mapping[str, Any]], None]:
    """A check that the keyword arguments of a call are ``function``'s: a misspelled one (``topk``,
    ``method=`` for ``methods=``) raises an InputError naming the closest real one, not a bare TypeError."""
    parameters = inspect.signature(function).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return lambda kwargs: None
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    allowed = set(names) | set(extra)

    def check(kwargs: Mapping[str, Any]) -> None:
        for key in kwargs:
            if key not in allowed:
                close = difflib.get_close_matches(key.replace("-", "_"), names, n=1, cutoff=0.5)
                hint = f" Did you mean {close[0]}=?" if close else ""
                raise InputError(f"{function.__name__}() has no argument {key!r}.{hint} "
                                 f"It takes: {', '.join(names)}.")

    return check


def checked_keywords(function: F) -> F:
    """Decorator: misspelled keyword arguments raise an InputError with a "did you mean" (see :func:`keyword_checker`)."""
    check = keyword_checker(function)

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(kwargs)
        return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def deprecated_alias(old: str, new: str) -> property:
    """A read-only property ``old`` that returns attribute ``new`` with a DeprecationWarning."""

    def getter(self: Any) -> Any:
        warnings.warn(f"{type(self).__name__}.{old} is now .{new}; the old name goes away in the next release.",
                      DeprecationWarning, stacklevel=2)
        return getattr(self, new)

    return property(getter, doc=f"Deprecated: use ``{new}``.")


class JsonResult:
    """Mixin for result dataclasses: :meth:`to_dict` gives JSON-ready data (via :func:`json_ready`).

    Fields named in ``_not_in_dict`` (images, maps, models – large or not data) are left out.
    """

    _not_in_dict: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON types (NaN/inf → None), without the fields in ``_not_in_dict``."""
        data = json_ready(self, exclude=self._not_in_dict)
        for name in dir(type(self)):
            if isinstance(getattr(type(self), name, None), _Headline):
                data[name] = json_ready(getattr(self, name))
        return data


class _Headline(property):
    """A property that :meth:`JsonResult.to_dict` includes (derived headline numbers)."""


def headline(function: Callable[[Any], Any]) -> property:
    """Decorator: a read-only property whose value :meth:`JsonResult.to_dict` also reports."""
    return _Headline(function, doc=function.__doc__)
