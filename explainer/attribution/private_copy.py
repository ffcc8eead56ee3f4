"""Private model copies for methods that cannot run on the user's model as it is (DeepLIFT, guided backprop).

Captum's backward hooks fail on in-place activations and its rules only recognise ``nn.ReLU``;
a spec with ``private_copy=True`` runs on a cached copy made for it, so the user's model is
never changed.
"""

from __future__ import annotations

import copy
import weakref
from typing import TYPE_CHECKING

import torch
from torch import nn

from explainer.errors import ExplainerError

if TYPE_CHECKING:
    from explainer.attribution.registry import MethodSpec
    from explainer.models import Classifier

_COPIES: weakref.WeakKeyDictionary[nn.Module, nn.Module] = weakref.WeakKeyDictionary()
#: Elementwise activations Captum's DeepLIFT and guided-backprop rules do not recognise.
_ACTIVATIONS: tuple[type[nn.Module], ...] = (nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Mish, nn.Hardtanh)


def private_copy(module: nn.Module) -> nn.Module:
    """A cached copy of ``module`` for DeepLIFT and guided backprop, with the user's current weights.

    In the copy every ``inplace`` flag is off (Captum's backward hooks fail on in-place
    activations) and activations Captum does not know (ReLU6, GELU, SiLU, ...) are presented as
    ``nn.ReLU`` modules that compute the original function, so Captum applies its rescale rule
    (DeepLIFT) or its negative-gradient stop (guided backprop) to them instead of passing them as
    plain gradients. The copy is rebuilt when the model's structure or device changes and its
    weights are refreshed from the model on every call.
    """
    layout = [(name, tuple(t.shape), t.dtype, t.device) for name, t in module.state_dict().items()]
    cached = _COPIES.get(module)
    if cached is None or getattr(cached, "_explainer_layout", None) != layout:
        cached = copy.deepcopy(module)
        for name, sub in list(cached.named_modules()):
            if isinstance(getattr(sub, "inplace", None), bool):
                sub.inplace = False
            if name and (type(sub) in _ACTIVATIONS or _is_timm_activation(sub)):
                cached.set_submodule(name, _relu_surrogate(sub))
        cached.requires_grad_(False)
        setattr(cached, "_explainer_layout", layout)  # noqa: B010  (a plain attribute, not a submodule)
        _COPIES[module] = cached
    with torch.no_grad():
        for source, target in zip(module.state_dict().values(), cached.state_dict().values()):
            target.copy_(source)
    return cached.eval()


def copy_for(spec: MethodSpec, classifier: Classifier) -> nn.Module:
    """:func:`private_copy` of the classifier's module; ExplainerError naming the method when copying fails."""
    try:
        return private_copy(classifier.module)
    except Exception as exc:  # deepcopy of exotic modules (compiled, with unpicklable attributes)
        raise ExplainerError(
            f"{spec.title} needs a private copy of {classifier.name} (to switch off in-place operations) and "
            f"copy.deepcopy failed: {type(exc).__name__}: {exc}. Use a method that runs on the model itself, "
            "such as integrated_gradients or input_x_gradient."
        ) from None


def _is_timm_activation(module: nn.Module) -> bool:
    return type(module).__module__.startswith("timm.layers.activations") and not list(module.children())


def _relu_surrogate(activation: nn.Module) -> nn.ReLU:
    """An ``nn.ReLU`` instance whose forward computes ``activation`` (for Captum's type checks)."""
    surrogate = nn.ReLU()
    surrogate.forward = activation.forward  # type: ignore[method-assign]
    return surrogate

