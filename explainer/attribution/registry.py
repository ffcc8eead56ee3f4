"""The method registry: one declaration per attribution method drives everything that needs it.

A method is a :class:`MethodSpec` built with keyword arguments. Its :class:`Param` schema is
what :func:`explainer.explain` validates against, what ``explainer explain --param k=v`` parses,
what the dashboard builds widgets from (``dashboards/method_settings.py``), and what
:func:`explainer.estimate_cost` hands to ``spec.cost``. Nothing else special-cases a method
by name. Register your own from a notebook::

    import explainer
    from explainer.attribution.registry import Job, MethodSpec, Output, Param

    def gradient_times(job: Job) -> Output:
        score = job.module(job.inputs).gather(1, job.target_index()).sum()
        (grad,) = torch.autograd.grad(score, job.inputs)
        return Output(grad * job.params["factor"])

    explainer.register_method(MethodSpec(
        name="gradient_times", title="Gradient × k", kind="gradient", signed=True,
        description="The plain gradient, scaled.",
        params=(Param("factor", float, 2.0, low=0.0, high=10.0, help="scale of the gradient"),),
        runner=gradient_times,
    ))
    explainer.explain(model, photo, "gradient_times", factor=3.0)

or as a decorator on the runner: ``@register_method(name=..., title=..., ...)``.

The runner contract
-------------------
``runner(job: Job) -> Output`` is called once per chunk of images (``explain`` splits a batch
so one pass fits the memory budget). What the caller guarantees in ``job``:

* ``job.module`` – the model in eval mode, on its device; a private copy with in-place ops
  off when ``spec.private_copy`` (the user's model is never changed, and neither may you).
* ``job.inputs`` – ``(n, C, H, W)`` normalized model inputs on the model's device. For
  gradient methods (``forward_only=False``) they require grad and the runner is called under
  ``torch.enable_grad()``; for forward-only methods it is called under ``torch.inference_mode()``.
* ``job.targets`` – one class index per image (``job.target_index()`` as a ``(n, 1)`` tensor).
* ``job.params`` – the validated parameters: every :class:`Param` of the spec, defaults filled in.
* ``job.samples_per_pass`` – model evaluations that fit one pass; ``job.per_image`` is the share
  of one image (use it as Captum's ``internal_batch_size`` / ``perturbations_per_eval``).
* ``job.layer`` – the CAM layer (:class:`explainer.models.layers.LayerInfo`) when
  ``spec.needs_layer``, else None.
* ``job.mean`` / ``job.std`` – ``(1, C, 1, 1)`` normalization of the classifier; helpers
  ``job.baseline(name)``, ``job.noise_std(noise)``, ``job.pixels()`` and ``job.seeded(seed)``
  (a reproducible random block that leaves the global generator as it was).

The runner returns an :class:`Output`: ``attributions`` shaped ``(n, C, H, W)`` like the inputs,
or ``(n, 1, H, W)`` (one map per image, e.g. a CAM – ``explain`` copies it into every channel);
``settings`` – values the runner chose (window sizes, batch sizes) that ``Explanation.params``
should report; ``delta`` – an optional per-image convergence delta. Raise
:class:`explainer.errors.InputError` for a parameter combination that cannot work; any other
exception is wrapped into an ``ExplainerError`` naming the method and model. Hooks the runner
adds must be removed before it returns (use ``try/finally``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, overload

import torch

from explainer.errors import InputError

if TYPE_CHECKING:
    from explainer.models.layers import LayerInfo

#: The kinds the built-in methods use (any non-empty string is accepted for new families).
KINDS = ("gradient", "perturbation", "cam", "propagation", "attention")
#: Types a parameter may have.
PARAM_TYPES = (int, float, bool, str)


# ----------------------------------------------------------------------------- parameters
@dataclass(frozen=True)
class Param:
    """One typed method parameter: enough for validation, CLI parsing and a dashboard widget.

    ``type`` is ``int``, ``float``, ``bool`` or ``str``. Numbers may carry an inclusive range
    (``low``/``high``), strings (or numbers) a tuple of ``choices``. ``optional=True`` allows
    ``None`` (meaning "let the method choose", e.g. occlusion's window). Bools are never ints:
    ``True`` is refused for an ``int`` parameter and ``1`` for a ``bool`` one. ``slider``:
    ``(low, high, step)`` for the dashboard when the valid range is open or wider than a learner
    needs (validation still uses ``low``/``high``).
    """

    name: str
    type: type
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] | None = None
    help: str = ""
    optional: bool = False
    slider: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InputError(f"Param name must be a Python identifier, got {self.name!r}.")
        if self.type not in PARAM_TYPES:
            raise InputError(f"Param {self.name}: type must be one of int, float, bool, str; got {self.type!r}.")
        if self.choices is not None:
            object.__setattr__(self, "choices", tuple(self.choices))
        if self.low is not None and self.high is not None and self.low > self.high:
            raise InputError(f"Param {self.name}: low={self.low} is above high={self.high}.")
        if self.slider is not None and (self.type not in (int, float) or len(self.slider) != 3):
            raise InputError(f"Param {self.name}: slider=(low, high, step) is for int and float parameters.")
        self.validate(self.default)  # a default outside its own schema is a declaration bug

    @property
    def bounded(self) -> bool:
        """True for a number with both ends of its range (or a ``slider``) given: a slider can show it."""
        return self.type in (int, float) and (self.slider is not None or (self.low is not None and self.high is not None))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready schema: name, type, default, low, high, choices, optional, help."""
        return {"name": self.name, "type": self.type.__name__, "default": self.default, "low": self.low,
                "high": self.high, "choices": None if self.choices is None else list(self.choices),
                "optional": self.optional, "help": self.help}

    def allowed(self) -> str:
        """What the parameter accepts, in words: "a positive integer", "one of: zero, black", ..."""
        if self.choices is not None:
            text = "one of: " + ", ".join(map(str, self.choices))
        elif self.type is bool:
            text = "true or false"
        elif self.type is str:
            text = "a string"
        else:
            noun = "integer" if self.type is int else "number"
            low, high = self.low, self.high
            if low is not None and high is not None:
                text = f"{'an' if noun == 'integer' else 'a'} {noun} from {_num(low)} to {_num(high)}"
            elif low == 1 and noun == "integer":
                text = "a positive integer"
            elif low == 0:
                text = f"a non-negative {noun}"
            elif low is not None:
                text = f"{'an' if noun == 'integer' else 'a'} {noun} of at least {_num(low)}"
            elif high is not None:
                text = f"{'an' if noun == 'integer' else 'a'} {noun} of at most {_num(high)}"
            else:
                text = f"{'an' if noun == 'integer' else 'a'} {noun}"
        return text + (" or None (automatic)" if self.optional else "")

    def describe(self) -> str:
        """``name: help (allowed; default …)`` – one line for CLI help and the dashboard."""
        help_text = f": {self.help}" if self.help else ""
        return f"{self.name}{help_text} ({self.allowed()}; default {self.default!r})"

    def validate(self, value: Any) -> Any:
        """``value`` checked against the schema and coerced (an int for a float parameter becomes a float).

        Raises InputError naming the parameter, what it got and what it accepts.
        """
        if value is None:
            if self.optional:
                return None
            raise self._error(value)
        if self.type is bool:
            if not isinstance(value, bool):
                raise self._error(value)
        elif self.type is int:
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():  # 16.0 from a slider or JSON
                    value = int(value)
                else:
                    raise self._error(value)
        elif self.type is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise self._error(value)
            value = float(value)
        elif not isinstance(value, str):
            raise self._error(value)
        if self.choices is not None and value not in self.choices:
            raise self._error(value)
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            raise self._error(value)
        return value

    def parse(self, text: str) -> Any:
        """A command-line string (``"16"``, ``"0.2"``, ``"true"``, ``"none"``, ``"blur"``) → a validated value."""
        raw = text.strip()
        value: Any = raw
        if self.optional and raw.lower() in ("none", "auto", ""):
            value = None
        elif self.type is bool:
            words = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False,
                     "off": False}
            if raw.lower() not in words:
                raise self._error(raw)
            value = words[raw.lower()]
        elif self.type in (int, float):
            try:
                value = float(raw) if self.type is float else int(raw)
            except ValueError:
                try:
                    number = float(raw)  # "1e3" for an int parameter
                except ValueError:
                    raise self._error(raw) from None
                value = int(number) if number.is_integer() else number
        return self.validate(value)

    def _error(self, value: Any) -> InputError:
        why = f" ({self.help})" if self.help else ""
        return InputError(f"{self.name} must be {self.allowed()}, got {value!r}{why}.")


def _num(value: float) -> str:
    return f"{value:g}"


# ------------------------------------------------------------------------- runner contract
@dataclass
class Job:
    """One chunk of images handed to a method's runner (see the module docstring for the contract)."""

    module: torch.nn.Module
    inputs: torch.Tensor
    targets: list[int]
    params: dict[str, Any]
    samples_per_pass: int
    layer: LayerInfo | None
    mean: torch.Tensor  # (1, C, 1, 1) normalization of the classifier, on the inputs' device
    std: torch.Tensor

    @property
    def per_image(self) -> int:
        """Model evaluations per image that fit in one pass."""
        return max(1, self.samples_per_pass // len(self.targets))

    def target_index(self) -> torch.Tensor:
        """The targets as a ``(n, 1)`` long tensor on the inputs' device (for ``logits.gather(1, ...)``)."""
        return torch.as_tensor(self.targets, device=self.inputs.device).view(-1, 1)

    def pixels(self) -> torch.Tensor:
        """The inputs back in pixel space ``[0, 1]`` (detached)."""
        return (self.inputs.detach() * self.std + self.mean).clamp(0, 1)

    def baseline(self, name: str, inputs: torch.Tensor | None = None) -> torch.Tensor:
        """A reference image in model-input space shaped like ``inputs`` (default: the job's inputs).

        "zero": all zeros (the data mean for normalized models, Captum's default); "black"/"white":
        pixels 0/1 normalized; "blur": a Gaussian blur (sigma = 1/20 of the shorter side) of the input
        (:func:`explainer.baselines.baseline`).
        """
        from explainer.baselines import baseline

        return baseline(self.inputs if inputs is None else inputs, name, mean=self.mean, std=self.std)

    def noise_std(self, noise: float) -> float:
        """Noise given in pixel units (0–1 range) as a standard deviation in model-input units."""
        return float(noise) / float(self.std.mean())

    @contextmanager
    def seeded(self, seed: int) -> Iterator[None]:
        """Reproducible random draws from the global RNG inside the block (for Captum's noise); restored after."""
        from explainer.rng import isolated_rng

        with isolated_rng(seed):
            yield


@dataclass
class Output:
    """What a runner returns: the maps, settings it chose, and an optional convergence delta."""

    attributions: torch.Tensor
    settings: dict[str, Any] = field(default_factory=dict)
    delta: torch.Tensor | None = None
    segments: torch.Tensor | None = None  # (n, 1, H, W) long: the feature mask of superpixel methods


def one_pass(params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
    """Cost of a method that needs one model evaluation per image (the default ``cost``)."""
    return 1


Runner = Callable[[Job], Output]
Cost = Callable[[Mapping[str, Any], tuple[int, int]], int]


# ------------------------------------------------------------------------------ the spec
@dataclass(frozen=True, kw_only=True)
class MethodSpec:
    """A registered attribution method: what it is, its parameter schema, its cost and how it runs.

    ``kind``: "gradient", "perturbation", "cam", "propagation", "attention" (or a new family's name); control
    maps (random, edges, ...) are not methods – they live in :mod:`explainer.evidence.controls`.
    ``signed``: attributions carry a sign (shown with a diverging colour scale).
    ``cost(params, (height, width))``: model evaluations one image needs with validated params.
    ``needs_layer`` (default: kind == "cam"): the runner gets ``job.layer``; ``explain(layer=...)``
    is accepted. ``forward_only`` (default: kind == "perturbation"): no gradients, runs under
    inference mode. ``private_copy``: runs on a cached copy with in-place ops off.
    ``smoke_params``: small settings (few samples, steps or channels) that make a quick run of the
    method – what the test suite runs every registered method with (default: none, the defaults are quick);
    checked against ``params`` when the spec is made.
    """

    name: str
    title: str
    kind: str
    signed: bool
    description: str
    runner: Runner = field(repr=False, compare=False)
    params: tuple[Param, ...] = ()
    cost: Cost = field(default=one_pass, repr=False, compare=False)
    needs_layer: bool | None = None
    forward_only: bool | None = None
    private_copy: bool = False
    smoke_params: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise InputError(f"Method name must be a Python identifier (it is a CLI and API key), got {self.name!r}.")
        if not isinstance(self.kind, str) or not self.kind:
            raise InputError(f"Method {self.name}: kind must be a non-empty string such as {', '.join(KINDS)}.")
        if not callable(self.runner) or not callable(self.cost):
            raise InputError(f"Method {self.name}: runner and cost must be callables.")
        object.__setattr__(self, "params", tuple(self.params))
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise InputError(f"Method {self.name}: parameter names repeat: {names}.")
        if self.needs_layer is None:
            object.__setattr__(self, "needs_layer", self.kind == "cam")
        if self.forward_only is None:
            object.__setattr__(self, "forward_only", self.kind == "perturbation")
        object.__setattr__(self, "smoke_params", dict(self.smoke_params))
        self.resolve(self.smoke_params)  # smoke settings outside the schema are a declaration bug

    @property
    def defaults(self) -> dict[str, Any]:
        """Parameter name → default value."""
        return {p.name: p.default for p in self.params}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description: what the method is and its parameter schema (no callables)."""
        return {"name": self.name, "title": self.title, "kind": self.kind, "signed": self.signed,
                "description": self.description, "params": [p.to_dict() for p in self.params],
                "needs_layer": self.needs_layer, "forward_only": self.forward_only,
                "private_copy": self.private_copy}

    def param(self, name: str) -> Param:
        """The :class:`Param` called ``name``; InputError listing this method's parameters otherwise."""
        for p in self.params:
            if p.name == name:
                return p
        raise InputError(f"{self.name} does not take {name}; its parameters are: {self._param_names()}.")

    def resolve(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Validated parameters: every :class:`Param` of the spec, ``params`` over the defaults."""
        unknown = sorted(set(params) - {p.name for p in self.params})
        if unknown:
            raise InputError(f"{self.name} does not take {', '.join(unknown)}; its parameters are: "
                             f"{self._param_names()}.")
        return {p.name: p.validate(params[p.name]) if p.name in params else p.default for p in self.params}

    def evaluations(self, params: Mapping[str, Any], input_size: tuple[int, int]) -> int:
        """Model evaluations per image for ``params`` (validated here) on inputs of ``input_size``."""
        return max(1, int(self.cost(self.resolve(params), (int(input_size[0]), int(input_size[1])))))

    def _param_names(self) -> str:
        return ", ".join(p.name for p in self.params) or "none"


# -------------------------------------------------------------------------- the registry
#: name → MethodSpec, in registration order. Use :func:`register_method` to add to it.
METHODS: dict[str, MethodSpec] = {}


@overload
def register_method(spec: MethodSpec, *, replace: bool = False) -> MethodSpec: ...
@overload
def register_method(spec: None = None, *, replace: bool = False, **fields: Any) -> Callable[[Runner], Runner]: ...


def register_method(spec: MethodSpec | None = None, *, replace: bool = False, **fields: Any) -> Any:
    """Add a method to :data:`METHODS`; every part of explainer sees it at once.

    ``register_method(MethodSpec(...))`` registers and returns the spec. As a decorator,
    ``@register_method(name=..., title=..., kind=..., signed=..., description=..., params=...)``
    on a runner function builds the spec from the keywords and the function. A name that is
    already registered raises InputError unless ``replace=True``.
    """
    if spec is None:
        def decorate(runner: Runner) -> Runner:
            register_method(MethodSpec(runner=runner, **fields), replace=replace)
            return runner

        return decorate
    if fields:
        raise InputError(f"register_method takes a MethodSpec or keywords, not both (got {', '.join(fields)}).")
    if not isinstance(spec, MethodSpec):
        raise InputError(f"register_method needs a MethodSpec, got {type(spec).__name__}.")
    if spec.name in METHODS and not replace:
        raise InputError(f"A method called {spec.name!r} is already registered; pass replace=True to replace it, "
                         "or choose another name.")
    METHODS[spec.name] = spec
    return spec


def unregister_method(name: str) -> MethodSpec:
    """Remove a method from the registry (for tests and notebooks); returns its spec."""
    return METHODS.pop(get_method(name).name)


def get_method(name: str) -> MethodSpec:
    """The spec registered as ``name``; InputError with close matches and every valid name otherwise."""
    if isinstance(name, str) and name in METHODS:
        return METHODS[name]
    close = difflib.get_close_matches(str(name).lower(), list(METHODS), n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise InputError(f"Unknown attribution method {name!r}.{hint} Valid methods: {', '.join(METHODS)}.")


def list_methods(kind: str | Sequence[str] | None = None) -> list[str]:
    """Names of the registered attribution methods, in registry order (optionally only some kinds)."""
    if kind is None:
        return list(METHODS)
    kinds = {kind} if isinstance(kind, str) else set(kind)
    return [name for name, spec in METHODS.items() if spec.kind in kinds]
