"""`run_units`: independent units of work → rows → one resumable results file, here or on a Ray cluster.

A study (an evaluation over images, a sweep over settings and seeds, a transfer curve over strategies,
shots and seeds) is a list of *units*, each a small JSON-able dict that names one piece of work. A
*worker factory* – a picklable zero-argument callable such as ``functools.partial(make_worker,
"efficientnet_lite0")`` – builds, once per process, the function that turns a unit into a row. The
backend only decides where units run, never what they compute, so the rows are the same locally and on
a cluster as long as a row depends only on its unit and the factory's arguments.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from explainer.errors import InputError
from explainer.run.results_file import ResultsWriter, Row, row_key, unit_key

Unit = Mapping[str, Any]
Work = Callable[[Unit], Mapping[str, Any]]
WorkerFactory = Callable[[], Work]
#: The runner's progress callback: units done, units in all, the row just finished (or kept from the file).
Progress = Callable[[int, int, Row], None]
#: A study's progress callback (evaluate, planted): units done, units in all, seconds left (None at first).
StudyProgress = Callable[[int, int, "float | None"], None]
BACKENDS = ("local", "ray")
#: Seconds to wait for a TCP connection to a cluster address before calling it dead.
CONNECT_PROBE_SECONDS = 1.0


def _check_units(units: Sequence[Unit]) -> list[dict[str, Any]]:
    if isinstance(units, (str, bytes)) or not isinstance(units, Sequence):
        raise InputError(f"units must be a list of dicts, got {type(units).__name__}.")
    checked = [dict(unit) for unit in units if isinstance(unit, Mapping)]
    if len(checked) != len(units):
        raise InputError("every unit must be a dict of JSON-able values naming one piece of work.")
    keys = [unit_key(unit) for unit in checked]
    if len(set(keys)) != len(keys):
        raise InputError("two units are the same; each unit must name a different piece of work.")
    return checked


def _check_backend(backend: str, address: str | None, resources: Mapping[str, float] | None) -> None:
    if backend not in BACKENDS:
        raise InputError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    if backend == "local" and address is not None:
        raise InputError("address= is for backend='ray'; the local backend runs in this process.")
    for name, value in (resources or {}).items():
        if name not in ("num_cpus", "num_gpus") or isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(f"resources take num_cpus and num_gpus ≥ 0, got {name}={value!r}.")


def _local_rows(units: list[dict[str, Any]], factory: WorkerFactory) -> Iterator[tuple[int, Row]]:
    work = factory()
    for index, unit in enumerate(units):
        yield index, {**unit, **work(unit)}


def run_units(
    units: Sequence[Unit],
    worker: WorkerFactory,
    *,
    out: str | Path | None = None,
    config: Mapping[str, Any] | None = None,
    backend: str = "local",
    address: str | None = None,
    resources: Mapping[str, float] | None = None,
    progress: Progress | None = None,
) -> list[Row]:
    """Run every unit not already in ``out`` and return all rows in unit order.

    ``out`` is checked and locked before any work starts; each finished row is appended at once, so a
    killed run loses only the rows in flight and a rerun with the same ``config`` resumes. ``backend="ray"``
    sends the units to an existing Ray cluster at ``address`` (default ``"auto"``), one worker actor per
    ``resources`` slot (``{"num_cpus": 1, "num_gpus": 0}`` by default).
    """
    checked = _check_units(units)
    _check_backend(backend, address, resources)
    if not callable(worker):
        raise InputError(f"worker must be a zero-argument factory returning work(unit) -> row, got {worker!r}.")
    fields = sorted({field for unit in checked for field in unit})
    writer = ResultsWriter(out, config or {}).open() if out is not None else None
    try:
        done: dict[str, Row] = {}
        if writer is not None:
            wanted = {unit_key(unit) for unit in checked}
            for row in writer.rows:
                key = row_key(row, fields)
                if key in wanted:
                    done[key] = row
        pending = [unit for unit in checked if unit_key(unit) not in done]
        if progress is not None:
            for row in list(done.values()):
                progress(len(done), len(checked), row)
        if pending:
            rows = _local_rows(pending, worker) if backend == "local" else _ray_rows(pending, worker, address, resources)
            for index, row in rows:
                done[unit_key(pending[index])] = row
                if writer is not None:
                    writer.append(row)
                if progress is not None:
                    progress(len(done), len(checked), row)
        return [done[unit_key(unit)] for unit in checked]
    finally:
        if writer is not None:
            writer.close()


# ------------------------------------------------------------------------------------------- Ray
def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise InputError(
            "backend='ray' needs Ray, which is an optional extra: pip install 'explainer[ray]' "
            "(or use backend='local', which needs nothing more)."
        ) from None
    return ray


class _UnitWorker:
    """A worker process: builds ``work`` once from the factory, then turns units into rows."""

    def __init__(self, factory: WorkerFactory, threads: int) -> None:
        import torch

        torch.set_num_threads(max(1, threads))
        self._work = factory()

    def run(self, unit: dict[str, Any]) -> Row:
        return {**unit, **self._work(unit)}


def _gcs_refuses(address: str) -> str | None:
    """Why a ``host:port`` cluster address cannot be a live cluster (a 1 s TCP probe), or None."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or "://" in address:
        return None
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_PROBE_SECONDS):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _connect(ray: Any, address: str | None) -> bool:
    """Connect to the cluster unless this process already is; True when we connected (and must disconnect)."""
    if ray.is_initialized():
        return False
    target = address or "auto"
    probed = os.environ.get("RAY_ADDRESS", "") if target == "auto" else target
    refused = _gcs_refuses(probed) if probed else None
    if refused:  # Ray itself would retry for a minute or more; a dead address fails at once
        raise InputError(
            f"No Ray cluster answers at {probed} ({refused}). Start one with `ray start --head` "
            "(or pass the address it prints), or use backend='local'."
        )
    try:
        ray.init(address=address or "auto", logging_level="ERROR", log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(
            f"No Ray cluster answered at address={address or 'auto'!r} ({exc}). Start one with `ray start --head` "
            "(or pass its address, e.g. 'ray://host:10001'), or use backend='local'."
        ) from None
    return True


def _worker_count(ray: Any, units: int, cpus: float, gpus: float) -> int:
    available = ray.cluster_resources()
    slots = [units]
    if cpus > 0:
        slots.append(int(available.get("CPU", 0) // cpus))
    if gpus > 0:
        slots.append(int(available.get("GPU", 0) // gpus))
    count = min(slots)
    if count < 1:
        raise InputError(
            f"The Ray cluster has {available.get('CPU', 0):g} CPUs and {available.get('GPU', 0):g} GPUs; one worker "
            f"needs num_cpus={cpus:g}, num_gpus={gpus:g}. Ask for less with resources=..."
        )
    return count


def _ray_rows(
    units: list[dict[str, Any]], factory: WorkerFactory, address: str | None, resources: Mapping[str, float] | None
) -> Iterator[tuple[int, Row]]:
    ray = _import_ray()
    cpus = float((resources or {}).get("num_cpus", 1))
    gpus = float((resources or {}).get("num_gpus", 0))
    connected = _connect(ray, address)
    try:
        count = _worker_count(ray, len(units), cpus, gpus)
        actor_class = ray.remote(num_cpus=cpus, num_gpus=gpus)(_UnitWorker)
        actors = [actor_class.remote(factory, int(cpus) or 1) for _ in range(count)]
        queue = list(range(len(units)))
        in_flight: dict[Any, tuple[int, Any]] = {}

        def submit(actor: Any) -> None:
            if queue:
                index = queue.pop(0)
                in_flight[actor.run.remote(units[index])] = (index, actor)

        for actor in actors:  # two units per actor in flight: the next one is ready when one finishes
            submit(actor)
            submit(actor)
        started = time.monotonic()
        while in_flight:
            ready, _ = ray.wait(list(in_flight), num_returns=1)
            index, actor = in_flight.pop(ready[0])
            try:
                row = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                raise InputError(
                    f"Unit {units[index]} failed on the Ray cluster after {time.monotonic() - started:.1f} s: "
                    f"{getattr(exc, 'cause', None) or exc}"
                ) from None
            submit(actor)
            yield index, row
        for actor in actors:
            ray.kill(actor)
    finally:
        if connected:
            ray.shutdown()
