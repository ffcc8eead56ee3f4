"""Fast forward probabilities for the perturbed forwards of the evidence: precision, memory layout, compile.

The deletion, insertion and ROAD curves need the target probability of many perturbed inputs – forwards
only, no gradients – so they may run at a lower precision or compiled. ``precision``:

* ``"fp32"`` (default): the classifier's own module in float32, as it is (the reference numbers).
* ``"bf16"``: ``torch.autocast`` to bfloat16 on a private ``channels_last`` copy of the module (CPU or
  CUDA). Only fast where the hardware computes bf16 natively; elsewhere it is emulated and *slower*.
* ``"auto"``: bf16 where the hardware has native bf16 (a CPU with AMX-BF16 or AVX-512 BF16, a GPU for
  which ``torch.cuda.is_bf16_supported(including_emulation=False)``), else – or when bf16 fails the
  check – float32 on a private ``channels_last`` copy (2× faster on the bundled model on an AVX2 CPU);
  either only after a one-batch check that its softmax probabilities agree with
  the float32 reference within ``tolerance`` (default :data:`AUTO_TOLERANCE` = 0.01, the largest absolute
  difference of any class probability of the probe batch). A curve's AUC is a weighted mean of the
  probabilities along it, so probabilities within 0.01 on the checked samples are evidence (not proof) that
  each AUC stays within 0.01. When the check fails
  (or the copy cannot run, e.g. a ``.view`` that needs contiguous inputs) it falls back to plain ``"fp32"``
  and :attr:`Precision.reason` says why.

The check's batch is made of the first :data:`CHECK_IMAGES` images to be scored, each as it is, as
the blurred insertion canvas and with a random half of its pixels deleted (zero baseline): perturbed
images are where lower precision drifts most.

``compile=True`` runs the copy through ``torch.compile`` (batches padded to the first batch's size, so
one compilation serves every pass). Compiling costs tens of seconds once per process and model; see
``docs/performance.md`` for when it is repaid. The user's module is never changed: copies are private
(deep copies), cached per module and setting while its parameters and buffers are unchanged (their
tensors and in-place version counters), and every forward runs under ``torch.inference_mode()``.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from explainer.baselines import baseline
from explainer.errors import InputError
from explainer.guards import eval_mode
from explainer.rng import seeded_generator

if TYPE_CHECKING:
    from explainer.models import Classifier

#: Accepted values of ``precision``.
PRECISIONS = ("fp32", "bf16", "auto")
#: Largest absolute difference of a softmax probability from float32 that ``"auto"`` accepts.
AUTO_TOLERANCE = 0.01
#: Images in the one-batch check of ``"auto"`` (each also blurred and half deleted: 3 samples per image).
CHECK_IMAGES = 4
#: CPU flags (``/proc/cpuinfo``) that mean native bf16 arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")
#: Private copies kept (each is one copy of a model's weights).
CACHE_SIZE = 4

Probabilities = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Precision:
    """How the perturbed forwards run, and why: what was asked, what was chosen, the check's figures."""

    requested: str  # "fp32", "bf16" or "auto"
    dtype: str  # "fp32" or "bf16"
    channels_last: bool
    compiled: bool
    device: str
    native_bf16: bool
    reason: str
    max_difference: float | None = None  # the auto check's largest probability difference from fp32
    tolerance: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (stored in a result's config or protocol)."""
        return asdict(self)

    def text(self) -> str:
        """One line, e.g. ``"bf16 autocast, channels_last, compiled on cpu (auto: ...)"``."""
        parts = ["bf16 autocast" if self.dtype == "bf16" else "fp32"]
        parts += ["channels_last"] if self.channels_last else []
        parts += ["compiled"] if self.compiled else []
        return f"{', '.join(parts)} on {self.device} ({self.requested}: {self.reason})"


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 natively, and what that was read from."""
    device = torch.device(device)
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"{name} supports bf16"
        return False, f"{name} has no native bf16"
    if device.type != "cpu":
        return False, f"no bf16 detection for {device.type}"
    flags = _cpu_flags()
    found = [flag for flag in BF16_CPU_FLAGS if flag in flags]
    if found:
        return True, f"CPU has {' and '.join(found)}"
    capability = torch.backends.cpu.get_cpu_capability()
    return False, f"CPU has no AMX-BF16 or AVX-512 BF16 (torch kernels: {capability}); bf16 would be emulated"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def check_precision(precision: str, compile: bool = False) -> None:
    """InputError unless ``precision`` is one of :data:`PRECISIONS` and ``compile`` a bool."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if not isinstance(compile, bool):
        raise InputError(f"compile must be True or False, got {compile!r}.")


def resolve_precision(
    classifier: Classifier,
    precision: str = "fp32",
    *,
    compile: bool = False,
    probe: torch.Tensor | None = None,
    tolerance: float = AUTO_TOLERANCE,
) -> Precision:
    """The :class:`Precision` for ``classifier`` on its device; ``"auto"`` runs its one-batch check on ``probe``.

    ``probe``: normalized model inputs ``(N, C, H, W)`` of the images to be scored (the first
    :data:`CHECK_IMAGES`, see :func:`check_batch`); ``"auto"`` needs it.
    """
    check_precision(precision, compile)
    device = classifier.device
    native, why = native_bf16(device)
    if precision == "fp32":
        return Precision("fp32", "fp32", False, compile, str(device), native, "as asked")
    if precision == "bf16":
        return Precision("bf16", "bf16", True, compile, str(device), native,
                         "as asked" if native else f"as asked, though {why}")
    if probe is None:
        raise InputError("precision='auto' needs a probe batch of model inputs for its one-batch check.")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not tolerance >= 0:
        raise InputError(f"tolerance must be a non-negative number, got {tolerance!r}.")
    batch = check_batch(probe.detach().to(device))
    with eval_mode(classifier.module), torch.inference_mode():
        reference = classifier.module(batch).float().softmax(dim=1)
    notes, largest = [why], None
    for dtype in ("bf16", "fp32") if native else ("fp32",):
        candidate = Precision("auto", dtype, True, compile, str(device), native, why, tolerance=tolerance)
        layout = f"{dtype} channels_last{' compiled' if compile else ''}"
        try:
            # checked uncompiled (compiling reorders sums only): the first real pass sets the compiled batch size
            check = fast_forward(classifier, dataclasses.replace(candidate, compiled=False))
            difference = float((check(batch) - reference).abs().max())
        except RuntimeError as error:  # e.g. a .view() that needs contiguous inputs
            notes.append(f"the {layout} copy failed ({str(error).splitlines()[0]})")
            continue
        largest = difference if largest is None else max(largest, difference)
        if difference <= tolerance:
            notes.append(f"{layout} probabilities within {difference:.2g} of fp32 (tolerance {tolerance:g})")
            return dataclasses.replace(candidate, reason="; ".join(notes), max_difference=difference)
        notes.append(f"{layout} probabilities differ from fp32 by {difference:.2g} > tolerance {tolerance:g}")
    return Precision("auto", "fp32", False, False, str(device), native, "; ".join(notes) + ", so plain fp32",
                     largest, tolerance)


def check_batch(inputs: torch.Tensor) -> torch.Tensor:
    """The auto check's samples: the first :data:`CHECK_IMAGES` inputs as they are, blurred, and half deleted."""
    images = inputs[:CHECK_IMAGES]
    generator = seeded_generator(0)
    deleted = torch.rand(images.shape[0], 1, *images.shape[-2:], generator=generator) < 0.5
    halves = images.masked_fill(deleted.to(images.device), 0.0)  # zero baseline: 0 in normalized input space
    return torch.cat([images, baseline(images, "blur"), halves])


class FastForward:
    """``forward(batch) -> (B, classes)`` float32 softmax probabilities of ``batch`` under a :class:`Precision`."""

    def __init__(self, module: nn.Module, setting: Precision, device: torch.device) -> None:
        self.setting = setting
        self.device = device
        self._module = module
        self._private = setting.channels_last or setting.compiled
        self._size: int | None = None  # the compiled batch size
        if self._private:
            private = copy.deepcopy(module).eval()
            if setting.channels_last:
                private = private.to(memory_format=torch.channels_last)
            self._module = torch.compile(private, dynamic=False) if setting.compiled else private  # type: ignore[assignment]

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        count = batch.shape[0]
        if self.setting.compiled:
            self._size = self._size or count
            if count > self._size:
                return torch.cat([self(part) for part in batch.split(self._size)])
            if count < self._size:  # pad: one compiled shape serves every pass
                batch = torch.cat([batch, batch[-1:].expand(self._size - count, *batch.shape[1:])])
        if self.setting.channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                    enabled=self.setting.dtype == "bf16"):
            if self._private:
                logits = self._module(batch)
            else:
                with eval_mode(self._module):
                    logits = self._module(batch)
        return logits[:count].float().softmax(dim=1)


_CACHE: dict[tuple[Any, ...], tuple[weakref.ref, tuple[Any, ...], FastForward]] = {}


def _fingerprint(module: nn.Module) -> tuple[Any, ...]:
    return tuple((id(t), t._version, t.device) for t in (*module.parameters(), *module.buffers()))


def fast_forward(classifier: Classifier, setting: Precision) -> FastForward:
    """The forward of ``setting`` for ``classifier`` (its private copy cached while the module is unchanged)."""
    module, device = classifier.module, classifier.device
    if not (setting.channels_last or setting.compiled):
        return FastForward(module, setting, device)
    key = (id(module), setting.dtype, setting.channels_last, setting.compiled, str(device))
    fingerprint = _fingerprint(module)
    cached = _CACHE.get(key)
    if cached is not None and cached[0]() is module and cached[1] == fingerprint:
        return cached[2]
    forward = FastForward(module, setting, device)
    _CACHE[key] = (weakref.ref(module), fingerprint, forward)
    while len(_CACHE) > CACHE_SIZE:
        del _CACHE[next(iter(_CACHE))]
    return forward
