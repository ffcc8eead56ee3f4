"""Long calls: an estimate first, a bar while they run, and a budget that refuses them before they start.

The promise "no public call runs longer than 10 s without an estimate and progress" is kept through this one
module for the calls that are not studies (``concepts``, ``patch``, ``tcav``, ``data_attribution``,
``find_mislabeled``, ``top_activating``, ``visualize_channel``, ``embed_dataset``): each lists the passes it
will make (:func:`batches`), times a pass at two sizes (:func:`pass_time` for the whole model,
:func:`timed_pass` for any other pass – a forward that stops at a layer, an optimization step) and hands the
:class:`Estimate` to :func:`start`, which

* refuses the call before any work when the estimate exceeds ``budget_seconds`` – an InputError with the
  estimate, what to shrink, and ``budget_seconds=None`` (``--budget 0`` on the command line) to run it anyway;
* prints ``estimate: ≈ …`` on stderr and returns a tqdm bar on stderr (``progress=True``), or a silent bar
  (``progress=False``; then nothing is timed unless a budget needs it)::

    bar = start("concepts", lambda: passes_estimate(pass_time(classifier, pixels, batch=32), batches(n, 32),
                                                    "forward", classifier.device),
                progress=progress, budget_seconds=budget_seconds, total=n, unit="forward", passes=n,
                shrink="fewer images or a smaller grid (grid=6 now)")
    with bar:
        ...  # bar.update(k) as the work goes

The studies (``evaluate``, ``sweep``, ``compare_transfer``, ``planted_benchmark``) print the same
``estimate: …`` line and refuse with the same words from their own, unit-based estimates.
"""

from __future__ import annotations

import sys
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from explainer.errors import InputError

if TYPE_CHECKING:
    import torch

    from explainer.models import Classifier

#: Calls of at most this many passes print no estimate (timing one would cost a noticeable share of the call);
#: they are still timed when a budget is set.
UNTIMED_PASSES = 16


@dataclass(frozen=True)
class Estimate:
    """Predicted seconds of a call and, in words, what they are made of."""

    seconds: float
    parts: str  # e.g. "288 forward pass(es) in 13 batch(es) at 2.1 s per pass + 150.2 ms per sample, measured on cpu"

    def text(self) -> str:
        """One line: ``≈ 41 s: 288 forward pass(es) in 13 batch(es) at …, measured on cpu``."""
        return f"≈ {duration(self.seconds)}: {self.parts}"


def duration(seconds: float) -> str:
    """Seconds in words a learner reads at a glance: ``850 ms``, ``4.2 s``, ``41 s``, ``2.5 min``, ``1.6 h``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 90:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def check_budget_seconds(budget_seconds: Any) -> None:
    """A budget is a positive number of seconds or None (no limit); anything else is an InputError."""
    if budget_seconds is not None and (isinstance(budget_seconds, bool) or not isinstance(budget_seconds, (int, float))
                                       or not budget_seconds > 0):
        raise InputError(f"budget_seconds must be a positive number of seconds or None (no limit), got {budget_seconds!r}.")


#: Most samples of the larger timed pass: bigger passes are extrapolated (a pass's time is linear in its samples).
TIMED_BATCH = 32
#: Seconds a model's pass timing is reused before it is taken again (a shared machine's load changes).
TIMING_REUSE_SECONDS = 60.0
_TIMINGS: weakref.WeakKeyDictionary[Any, dict[tuple, tuple[float, PassTime]]] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class PassTime:
    """Seconds of one pass over ``n`` samples: ``fixed + n × per_sample``, from two timed passes (1 and ``batch``
    samples). On a loaded CPU the fixed part can dominate (every operator waits for its threads), so a pass of 32
    samples may cost little more than one of 4: counting samples alone would be wrong by the batch size."""

    fixed: float
    per_sample: float
    batch: int  # the samples of the larger timed pass

    def seconds(self, samples: int) -> float:
        """One pass over ``samples`` samples."""
        return self.fixed + samples * self.per_sample

    def words(self) -> str:
        """``"120 ms per pass + 15.2 ms per sample"``."""
        return f"{duration(self.fixed)} per pass + {self.per_sample * 1000:.1f} ms per sample"


def timed_pass(run: Callable[[int], Any], batch: int) -> PassTime:
    """Time ``run(n)`` (one pass over ``n`` samples) at 1 sample (after a warm-up) and at ``batch`` samples
    (at most :data:`TIMED_BATCH`; give the call's largest pass), and fit ``fixed + n × per_sample`` through the two."""
    batch = max(1, min(int(batch), TIMED_BATCH))
    run(1)  # warm-up: allocators and kernels
    timings = []
    for samples in (1,) if batch == 1 else (1, batch):
        begun = time.perf_counter()
        run(samples)
        timings.append(time.perf_counter() - begun)
    if batch == 1:
        return PassTime(0.0, timings[0], 1)
    per_sample = max(0.0, (timings[1] - timings[0]) / (batch - 1))
    return PassTime(max(0.0, timings[0] - per_sample), per_sample, batch)


def pass_time(classifier: Classifier, pixels: torch.Tensor, *, batch: int, backward: bool = False) -> PassTime:
    """:class:`PassTime` of the whole model on copies of the first of ``pixels`` (``(N, C, H, W)`` in [0, 1]): a
    forward, or (``backward=True``) a forward and a backward to the input. In eval mode, gradients to the input
    only; reused for :data:`TIMING_REUSE_SECONDS` per model, input shape, device, pass kind and timed batch."""
    import torch

    from explainer.guards import eval_mode

    module = classifier.module
    size = max(1, min(int(batch), TIMED_BATCH))
    key = (tuple(pixels.shape[1:]), str(classifier.device), backward, size)
    cached = _TIMINGS.setdefault(module, {})
    if key in cached and time.monotonic() - cached[key][0] < TIMING_REUSE_SECONDS:
        return cached[key][1]
    one = classifier.normalize(pixels[:1]).to(classifier.device)

    def run(samples: int) -> None:
        inputs = one.expand(samples, *one.shape[1:]).contiguous()
        if backward:
            with torch.inference_mode(False), torch.enable_grad():
                inputs = inputs.clone().requires_grad_(True)
                torch.autograd.grad(module(inputs)[:, 0].sum(), inputs)
        else:
            with torch.inference_mode():
                module(inputs)
        if inputs.device.type == "cuda":
            torch.cuda.synchronize(inputs.device)

    with eval_mode(module):
        timing = timed_pass(run, size)
    cached[key] = (time.monotonic(), timing)
    return timing


def passes_estimate(timing: PassTime, sizes: Sequence[int], kind: str, device: Any, *, detail: str = "",
                    extra_seconds: float = 0.0, extra: str = "") -> Estimate:
    """Passes over ``sizes`` samples each (see :func:`batches`) at ``timing``, plus ``extra_seconds`` of other work described
    by ``extra``: ``≈ 41 s: 288 forward passes (…) in 13 batches at 120 ms per pass + 15.2 ms per sample,
    measured on cpu``."""
    count = sum(sizes)
    detail = f" ({detail})" if detail else ""
    more = f" + {extra}" if extra else ""
    return Estimate(sum(timing.seconds(b) for b in sizes) + extra_seconds,
                    f"{count:,} {kind} pass(es){detail} in {len(sizes)} batch(es) at {timing.words()}, measured on "
                    f"{device}{more}")


def batches(total: int, batch: int) -> list[int]:
    """The samples of each pass when ``total`` samples go ``batch`` at a time."""
    full, rest = divmod(int(total), max(1, int(batch)))
    return [int(batch)] * full + ([rest] if rest else [])


def refuse_over_budget(what: str, estimate: Estimate, budget_seconds: float | None, shrink: str) -> None:
    """InputError when ``estimate`` exceeds ``budget_seconds`` (None: no limit), naming the estimate and the fix."""
    if budget_seconds is None or estimate.seconds <= budget_seconds:
        return
    raise InputError(f"This {what} call is estimated at {estimate.text()} – over the time budget of "
                     f"{duration(budget_seconds)}. Use {shrink}, or pass budget_seconds=None (no limit; --budget 0 "
                     "on the command line) or a larger budget.")


def start(what: str, estimate: Estimate | Callable[[], Estimate], *, progress: bool, budget_seconds: float | None,
          shrink: str, total: int | None, unit: str, passes: int | None = None) -> Any:
    """Before a long call's work: check the budget, refuse the call over it, print the estimate, open its bar.

    ``estimate``: the Estimate, or a function making it – called only when a budget is set, or the progress is
    shown and the call needs more than :data:`UNTIMED_PASSES` ``passes`` (None: always), so a silent or tiny
    call with no budget times nothing. Returns a tqdm bar on stderr named ``what`` over ``total`` ``unit``\\ s
    – disabled (prints nothing, ``update`` still works) when ``progress`` is False.
    """
    from tqdm.auto import tqdm

    check_budget_seconds(budget_seconds)
    small = passes is not None and passes <= UNTIMED_PASSES
    if budget_seconds is not None or (progress and not small):
        forecast = estimate() if callable(estimate) else estimate
        refuse_over_budget(what, forecast, budget_seconds, shrink)
        if progress:
            print(f"estimate: {forecast.text()}", file=sys.stderr)
    return tqdm(total=total, desc=what, unit=unit, file=sys.stderr, disable=not progress)
