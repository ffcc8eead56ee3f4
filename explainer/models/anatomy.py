"""The network's anatomy: input → hidden layers → output, with output shapes and parameter counts."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import nn

from explainer.compat import deprecated_alias, legacy_positional
from explainer.errors import InputError
from explainer.guards import eval_mode, hook_guard
from explainer.jsonable import JsonResult
from explainer.models.coerce import as_classifier

if TYPE_CHECKING:
    from explainer.models import Classifier

#: Modules that neither hold parameters nor change values in eval mode; hidden from the anatomy.
_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
#: Plain containers: at the top level they are unrolled once, so ``blocks`` becomes ``blocks.0``, ``blocks.1`` ...
_CONTAINERS = (nn.Sequential, nn.ModuleList)


@dataclass
class Anatomy(JsonResult):
    """One row per layer, in execution order: ``table`` has columns layer, type, role
    ("input" | "hidden" | "output"), output_shape (per image), output_values, params, param_share."""

    model_name: str
    table: pd.DataFrame
    total_params: int
    trainable_params: int
    input_shape: tuple[int, ...]
    depth: int
    seconds: float
    device: str

    model = deprecated_alias("model", "model_name")

    def summary(self) -> pd.DataFrame:
        """The headline numbers: the table, one row per layer."""
        return self.table.copy()

    @property
    def layers(self) -> list[str]:
        """Names of the hidden and output layers (not the input row, nor rows of loose parameters)."""
        return [name for name, role, kind in zip(self.table["layer"], self.table["role"], self.table["type"])
                if role != "input" and kind != "Parameter"]


def layer_units(module: nn.Module, depth: int = 1) -> list[tuple[str, nn.Module]]:
    """The modules shown as rows at ``depth`` (1 = top-level blocks), in definition order.

    Top-level containers (``nn.Sequential``/``nn.ModuleList``) are unrolled once, so EfficientNet's
    ``blocks`` appears as its stages ``blocks.0`` … ``blocks.6``; each extra depth level shows the
    children of every row. Parameter-free pass-through modules (Identity, Dropout) are left out.
    """
    if depth < 1:
        raise InputError(f"depth must be 1 or more (1 = top-level blocks); got {depth}.")
    return _units(module, "", depth, unroll=True)


def _units(module: nn.Module, prefix: str, depth: int, unroll: bool) -> list[tuple[str, nn.Module]]:
    units: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        full = f"{prefix}{name}"
        if isinstance(child, _PASS_THROUGH) and not any(True for _ in child.parameters()):
            continue
        has_children = any(True for _ in child.children())
        if unroll and isinstance(child, _CONTAINERS) and has_children:
            units.extend(_units(child, f"{full}.", depth, unroll=False))
        elif depth > 1 and has_children:
            units.extend(_units(child, f"{full}.", depth - 1, unroll=False))
        else:
            units.append((full, child))
    return units


def _own_parameter_rows(module: nn.Module, units: list[tuple[str, nn.Module]]) -> list[dict]:
    """Rows for parameters held directly by a parent of the rows (e.g. a ViT's cls_token, pos_embed)."""
    covered = {id(p) for _, unit in units for p in unit.parameters()}
    rows: list[dict] = []
    for owner_name, owner in module.named_modules():
        direct = [(n, p) for n, p in owner.named_parameters(recurse=False) if id(p) not in covered]
        if direct:
            names = ", ".join(f"{owner_name + '.' if owner_name else ''}{n}" for n, _ in direct)
            rows.append({"layer": names, "type": "Parameter", "output_shape": "", "output_values": 0,
                         "params": sum(p.numel() for _, p in direct)})
            covered.update(id(p) for _, p in direct)
    return rows


def _shape_of(output: object) -> tuple[int, ...] | None:
    if isinstance(output, torch.Tensor):
        return tuple(int(s) for s in output.shape[1:])
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return tuple(int(s) for s in output[0].shape[1:])
    return None


@legacy_positional("depth")
def model_anatomy(classifier: Classifier, *, depth: int = 1) -> Anatomy:
    """Describe ``classifier`` as input layer → hidden layers → output layer.

    One forward pass of a zero image (eval mode, hooks removed afterwards, the model's flags restored)
    records each row's output shape; rows follow execution order and their ``params`` sum to the model's
    total (parameters held directly by a container get a row of their own).
    """
    started = time.perf_counter()
    classifier = as_classifier(classifier, caller="model_anatomy")
    module = classifier.module
    units = layer_units(module, depth)
    sample = torch.zeros(1, classifier.in_chans, *classifier.input_size, device=classifier.device)
    shapes, order = _output_shapes(module, units, sample)
    total = sum(p.numel() for p in module.parameters())
    return Anatomy(
        model_name=classifier.name,
        table=_anatomy_table(module, units, shapes, order, sample, total),
        total_params=total,
        trainable_params=sum(p.numel() for p in module.parameters() if p.requires_grad),
        input_shape=tuple(int(s) for s in sample.shape[1:]),
        depth=depth,
        seconds=time.perf_counter() - started,
        device=str(classifier.device),
    )


def _output_shapes(
    module: nn.Module, units: list[tuple[str, nn.Module]], sample: torch.Tensor
) -> tuple[dict[str, tuple[int, ...] | None], list[str]]:
    """Each unit's output shape (per image) for ``sample``, and the order in which the units ran."""
    shapes: dict[str, tuple[int, ...] | None] = {}
    order: list[str] = []

    def record(name: str) -> Callable[[nn.Module, object, object], None]:
        def hook(_module: nn.Module, _inputs: object, output: object) -> None:
            if name not in shapes:
                order.append(name)
            shapes[name] = _shape_of(output)

        return hook

    with hook_guard(module), eval_mode(module), torch.inference_mode():
        for name, unit in units:
            unit.register_forward_hook(record(name))
        module(sample)
    return shapes, order


def _anatomy_table(
    module: nn.Module,
    units: list[tuple[str, nn.Module]],
    shapes: dict[str, tuple[int, ...] | None],
    order: list[str],
    sample: torch.Tensor,
    total: int,
) -> pd.DataFrame:
    """The anatomy rows: input, loose parameters, then each unit in execution order, with roles and shares."""
    by_name = dict(units)
    executed = order + [name for name, _ in units if name not in shapes]
    rows = [{"layer": "input", "type": "Input", "output_shape": _format_shape(sample.shape[1:]),
             "output_values": int(sample[0].numel()), "params": 0}]
    rows += _own_parameter_rows(module, units)
    for name in executed:
        shape = shapes.get(name)
        rows.append({
            "layer": name,
            "type": type(by_name[name]).__name__,
            "output_shape": _format_shape(shape) if shape is not None else "not run",
            "output_values": _numel(shape),
            "params": sum(p.numel() for p in by_name[name].parameters()),
        })
    table = pd.DataFrame(rows)
    table["role"] = "hidden"
    table.loc[0, "role"] = "input"
    ran = [i for i, row in table.iterrows() if row["layer"] in shapes and shapes[row["layer"]] is not None]
    if ran:
        table.loc[ran[-1], "role"] = "output"
    table["param_share"] = table["params"] / max(total, 1)
    return table[["layer", "type", "role", "output_shape", "output_values", "params", "param_share"]]


def _format_shape(shape: tuple[int, ...] | torch.Size) -> str:
    return " × ".join(str(int(s)) for s in shape)


def _numel(shape: tuple[int, ...] | None) -> int:
    if shape is None:
        return 0
    count = 1
    for size in shape:
        count *= size
    return count


def anatomy(classifier: Classifier, depth: int = 1) -> Anatomy:
    """Deprecated name of :func:`model_anatomy` (``explainer.anatomy`` shadowed the submodule)."""
    warnings.warn("explainer.anatomy(...) is now explainer.model_anatomy(classifier, depth=...); "
                  "the old name goes away in 0.5.", DeprecationWarning, stacklevel=2)
    return model_anatomy(classifier, depth=depth)
