"""Private random number generators: the user's global random state is never drawn from or left changed.

Prefer :func:`seeded_generator` (a private ``torch.Generator``) wherever a function takes a generator;
:func:`isolated_rng` is for library code that insists on the global RNG (``nn.init``, Captum's noise):
the global torch CPU and CUDA generators are seeded inside and restored after, and numpy's and
Python's global states are restored too.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch

from explainer.errors import InputError


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
