"""Small networks from a short spec: MLPs and CNNs (or any timm architecture) for a dataset."""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from torch import nn

from explainer.compat import legacy_positional
from explainer.data.datasets import Dataset, load_dataset
from explainer.errors import InputError, ModelLoadError
from explainer.models.coerce import remember_dataset
from explainer.rng import isolated_rng

#: Activation name → module class. ``linear`` is the identity (no non-linearity).
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "linear": nn.Identity,
}
POOLING = ("end", "each", "none")
PADDING = ("same", "valid")


def activation_layer(name: str) -> nn.Module:
    """A fresh activation module for ``name`` (one of :data:`ACTIVATIONS`)."""
    if name not in ACTIVATIONS:
        raise InputError(f"Unknown activation {name!r}; choose one of: {', '.join(ACTIVATIONS)}.")
    return ACTIVATIONS[name]()


def _widths(name: str, widths: int | Sequence[int] | None) -> tuple[int, ...]:
    if widths is None:
        return ()
    values = (widths,) if isinstance(widths, int) else tuple(widths)
    for width in values:
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise InputError(f"{name} must be positive integers, got {values!r}; e.g. {name}=(64,).")
    return values


def _check_output(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise InputError(f"num_classes must be a positive integer, got {num_classes!r}.")


@legacy_positional("hidden", "activation")
def build_mlp(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    hidden: int | Sequence[int] | None = (64,),
    activation: str = "relu",
) -> nn.Sequential:
    """A multi-layer perceptron: flatten → (linear → activation) per hidden width → linear.

    Layers are named ``fc1, act1, fc2, act2, ..., out``; ``hidden=()`` gives a linear model.
    """
    widths = _widths("hidden", hidden)
    _check_output(num_classes)
    activation_layer(activation)
    features = 1
    for size in input_shape:
        features *= int(size)
    if features < 1:
        raise InputError(f"input_shape must have positive sizes, got {tuple(input_shape)!r}.")
    layers: OrderedDict[str, nn.Module] = OrderedDict(flatten=nn.Flatten())
    for index, width in enumerate(widths, start=1):
        layers[f"fc{index}"] = nn.Linear(features, width)
        layers[f"act{index}"] = activation_layer(activation)
        features = width
    layers["out"] = nn.Linear(features, num_classes)
    return nn.Sequential(layers)


@legacy_positional("channels", "kernel_size", "hidden", "activation", "pool", "padding")
def build_cnn(
    input_shape: Sequence[int],
    num_classes: int,
    *,
    channels: int | Sequence[int] = (16, 32),
    kernel_size: int | Sequence[int] = 3,
    hidden: int | Sequence[int] | None = 64,
    activation: str = "relu",
    pool: str = "end",
    padding: str = "same",
) -> nn.Sequential:
    """A small CNN: (conv → activation) per channel width, 2×2 max pooling, then an MLP head.

    ``pool="end"`` pools once after the last convolution, ``"each"`` after every convolution,
    ``"none"`` never. ``kernel_size`` is one size or one per convolution; ``padding`` is
    ``"same"`` or ``"valid"``. Layers are named ``conv1, act_conv1, ..., pool, flatten, fc1,
    act1, ..., out``. The defaults on 1×8×8 digits give conv16-conv32-pool-fc64: 38,282 parameters.
    """
    if len(input_shape) != 3:
        raise InputError(
            f"build_cnn needs images shaped (channels, height, width), got input_shape {tuple(input_shape)!r}; "
            "use build_mlp for flat inputs such as the 2-D toy sets."
        )
    widths = _widths("channels", channels)
    if not widths:
        raise InputError("channels must list at least one convolution width, e.g. channels=(16, 32).")
    kernels = _widths("kernel_size", kernel_size)
    if len(kernels) == 1:
        kernels = kernels * len(widths)
    if len(kernels) != len(widths):
        raise InputError(f"kernel_size needs one size or one per convolution ({len(widths)}), got {kernels!r}.")
    if pool not in POOLING:
        raise InputError(f"Unknown pool {pool!r}; choose one of: {', '.join(POOLING)}.")
    if padding not in PADDING:
        raise InputError(f"Unknown padding {padding!r}; choose one of: {', '.join(PADDING)}.")
    _check_output(num_classes)
    activation_layer(activation)
    layers, (in_channels, height, width) = _conv_stack(input_shape, widths, kernels, activation, pool, padding)
    layers["flatten"] = nn.Flatten()
    head = build_mlp((in_channels * height * width,), num_classes, hidden=hidden, activation=activation)
    for name, module in head.named_children():
        if name != "flatten":
            layers[name] = module
    return nn.Sequential(layers)


def build_model(
    arch: str, dataset: Dataset | str, *, seed: int = 0, **spec: Any
) -> nn.Module:
    """A fresh, randomly initialised network for ``dataset`` (a :class:`Dataset` or its name).

    ``arch`` is ``"cnn"`` (:func:`build_cnn`), ``"mlp"`` (:func:`build_mlp`) or any timm
    architecture name (``pretrained=False``); ``spec`` goes to the builder (cnn/mlp only).
    ``seed`` fixes the initial weights: the layers are initialised inside
    :func:`explainer.rng.isolated_rng`, so the same seed gives the same weights and the
    caller's global random state is left as it was. The inspection calls (``layer_activations``,
    ``explain`` …) take the returned module as it is: it is remembered as built for ``dataset``.
    """
    data = load_dataset(dataset) if isinstance(dataset, str) else dataset
    with isolated_rng(seed):
        model: nn.Module
        if arch == "mlp":
            model = build_mlp(data.input_shape, data.num_classes, **spec)
        elif arch == "cnn":
            model = build_cnn(data.input_shape, data.num_classes, **spec)
        else:
            model = _timm_model(arch, data, spec)
    remember_dataset(model, data)  # the inspection calls then take the bare module (models.coerce)
    return model


def _conv_stack(
    input_shape: Sequence[int], widths: tuple[int, ...], kernels: tuple[int, ...], activation: str, pool: str,
    padding: str,
) -> tuple[OrderedDict[str, nn.Module], tuple[int, int, int]]:
    """The (conv → activation [→ pool]) layers of :func:`build_cnn` and the (channels, height, width) they leave."""
    in_channels, height, width = (int(size) for size in input_shape)
    layers: OrderedDict[str, nn.Module] = OrderedDict()
    for index, (out_channels, kernel) in enumerate(zip(widths, kernels), start=1):
        shrink = 0 if padding == "same" else kernel - 1
        height, width = height - shrink, width - shrink
        if height < 1 or width < 1:
            raise InputError(
                f"conv{index} (kernel {kernel}, padding {padding!r}) leaves no pixels of the "
                f"{input_shape[1]}×{input_shape[2]} input; use smaller kernels, fewer layers or padding='same'."
            )
        layers[f"conv{index}"] = nn.Conv2d(in_channels, out_channels, kernel, padding=padding)
        layers[f"act_conv{index}"] = activation_layer(activation)
        in_channels = out_channels
        if pool == "each" or (pool == "end" and index == len(widths)):
            if height < 2 or width < 2:
                raise InputError(f"Pooling after conv{index} needs at least 2×2 pixels, got {height}×{width}; use pool='none'.")
            layers["pool" if pool == "end" else f"pool{index}"] = nn.MaxPool2d(2)
            height, width = height // 2, width // 2
    return layers, (in_channels, height, width)


def _timm_model(arch: str, data: Dataset, spec: dict) -> nn.Module:
    import timm

    if spec:
        raise InputError(f"Options {sorted(spec)} apply to arch 'cnn' and 'mlp' only, not to the timm model {arch!r}.")
    if not data.is_image:
        raise InputError(f"timm models need image data; {data.name!r} has input shape {data.input_shape}. Use arch='mlp'.")
    if arch not in timm.list_models():
        close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
        hint = f" Close timm names: {', '.join(close)}." if close else ""
        raise ModelLoadError(f"Unknown architecture {arch!r}; use 'cnn', 'mlp' or a timm model name.{hint}")
    return timm.create_model(arch, pretrained=False, num_classes=data.num_classes, in_chans=data.input_shape[0])
