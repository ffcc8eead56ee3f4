"""What this machine can do: the device in words, torch threads, and a measured matrix-multiply peak."""

from __future__ import annotations

import os
import platform
import time
from functools import lru_cache

import torch

from explainer.errors import InputError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` means CUDA when available, else the CPU."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise InputError(f"Unknown device {device!r}; use 'cpu' or 'cuda'.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device='cuda' was requested but no CUDA GPU is available; use device='cpu'.")
    return resolved


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux, else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _threads(count: int) -> str:
    return f"{count} torch thread{'s' if count != 1 else ''}"


def describe_device(device: str | torch.device | None = None) -> str:
    """One line naming the device, e.g. ``"CPU: AMD EPYC 7B13 (2 cores, 2 torch threads)"``."""
    resolved = resolve_device(device)
    if resolved.type == "cuda":
        index = resolved.index if resolved.index is not None else torch.cuda.current_device()
        return f"GPU: {torch.cuda.get_device_name(index)}"
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores, {_threads(torch.get_num_threads())})"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@lru_cache(maxsize=8)
def _peak(device_key: str, threads: int, seconds: float) -> float:
    device = torch.device(device_key)
    size = 4096 if device.type == "cuda" else 1024
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=generator).to(device)
    b = torch.randn(size, size, generator=generator).to(device)
    out = torch.empty(size, size, device=device)
    torch.mm(a, b, out=out)  # warm-up: thread pool, kernels
    _synchronize(device)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def matmul_peak_gflops(device: str | torch.device | None = None, seconds: float = 0.3) -> float:
    """This machine's measured fp32 matrix-multiply speed in GFLOP/s (best of repeated square sgemms).

    Runs for about ``seconds`` once per process, device and torch thread count (cached).
    """
    if seconds <= 0:
        raise InputError(f"seconds must be positive, got {seconds}.")
    resolved = resolve_device(device)
    return _peak(str(resolved), torch.get_num_threads(), float(seconds))
