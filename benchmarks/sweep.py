"""What does ``explainer.sweep()`` cost over the same trainings done by hand, and what does Ray add?

1. A 3 × 3 × 3 digits grid: lr 0.001/0.01/0.1 × activation relu/tanh/sigmoid × 3 seeds (27 runs of an
   MLP, ``--epochs`` each), total seconds with ``sweep()`` on ``--threads`` torch threads.
2. The machinery's overhead: the same 27 runs called one by one (``build_model`` + ``fit``, nothing
   else), interleaved with the sweep ``--repeats`` times; medians compared. Target: ≤ 1.05×.
3. Ray: a local 2-worker cluster (``ray start --head --num-cpus 2``) inside private network and PID
   namespaces (``unshare -n -p``: only loopback, and ``ray stop`` sees this cluster only), the same
   grid with ``backend="ray"`` against local: speedup, the cluster's start-up seconds, and whether
   the table is identical.

Usage: ``nice -n 10 python benchmarks/sweep.py [--threads 1] [--epochs 10] [--repeats 3] [--no-ray] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from explainer.data.datasets import load_dataset
from explainer.learn.architectures import build_model
from explainer.learn.sweep import sweep
from explainer.learn.sweep_grid import TrainingTask, make_units
from explainer.learn.training import fit
from explainer.rng import isolated_rng

GRID: dict[str, list] = {"lr": [0.001, 0.01, 0.1], "activation": ["relu", "tanh", "sigmoid"]}
SEEDS = 3
PORT = 6393
TIMES = {"seconds", "wall_seconds"}


def by_hand(epochs: int) -> tuple[float, float]:
    """Wall and CPU seconds of the 27 trainings as a plain loop: the work any sweep must do."""
    data = load_dataset("digits")
    start, cpu = time.perf_counter(), time.process_time()
    for unit in make_units(GRID, range(SEEDS)):
        with isolated_rng(unit["seed"]):
            model = build_model("mlp", data, seed=unit["seed"], activation=unit["activation"])
        fit(model, data, epochs=epochs, lr=unit["lr"], seed=unit["seed"])
    return time.perf_counter() - start, time.process_time() - cpu


def with_sweep(epochs: int, threads: int, **options) -> tuple[float, dict, float]:
    """Wall seconds of ``sweep()`` on the grid (results summarised, verdict written), its JSON, CPU seconds."""
    start, cpu = time.perf_counter(), time.process_time()
    results = sweep(TrainingTask(dataset="digits", arch="mlp", epochs=epochs), GRID, seeds=SEEDS, threads=threads,
                    **options)
    payload = results.to_dict()
    return time.perf_counter() - start, payload, time.process_time() - cpu


def overhead(epochs: int, threads: int, repeats: int) -> dict:
    torch.set_num_threads(threads)
    by_hand(1)  # the process's first trainings import torch's lazy modules; neither side pays that below
    hand, swept, hand_cpu, swept_cpu = [], [], [], []
    payload: dict = {}
    for _ in range(repeats):
        seconds, cpu = by_hand(epochs)
        hand.append(seconds)
        hand_cpu.append(cpu)
        seconds, payload, cpu = with_sweep(epochs, threads)
        swept.append(seconds)
        swept_cpu.append(cpu)
    median = statistics.median
    return {
        "runs": len(payload["runs"]), "threads": threads, "epochs": epochs, "repeats": repeats,
        "sweep_seconds": [round(s, 2) for s in swept], "by_hand_seconds": [round(s, 2) for s in hand],
        "sweep_median": round(median(swept), 2), "by_hand_median": round(median(hand), 2),
        "overhead": round(median(swept) / median(hand), 3), "target": 1.05,
        # CPU seconds of this process: what the machinery adds, less blurred by other jobs on a shared machine
        "sweep_cpu_seconds": [round(s, 2) for s in swept_cpu], "by_hand_cpu_seconds": [round(s, 2) for s in hand_cpu],
        "overhead_cpu": round(median(swept_cpu) / median(hand_cpu), 3),
        "estimate": payload["estimate"], "verdict": payload["verdict"], "runs_table": payload["runs"],
    }


def ray_inner(epochs: int, out: str) -> None:
    """Inside the namespaces: start a 2-CPU head node, sweep on it twice (cold, warm), stop it."""
    ray = str(Path(sys.executable).parent / "ray")
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    start = time.perf_counter()
    subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--port", str(PORT), "--temp-dir", temp,
                    "--include-dashboard", "false", "--disable-usage-stats"], check=True, capture_output=True)
    started = time.perf_counter() - start
    try:
        cold, payload, _ = with_sweep(epochs, 1, backend="ray", address=f"127.0.0.1:{PORT}")
        warm, _, _ = with_sweep(epochs, 1, backend="ray", address=f"127.0.0.1:{PORT}")
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)
    Path(out).write_text(json.dumps({"start_seconds": started, "cold_seconds": cold, "warm_seconds": warm,
                                     "runs_table": payload["runs"]}))


def ray_outer(epochs: int, local_seconds: float, local_runs: list[dict]) -> dict:
    if shutil.which("unshare") is None:
        return {"skipped": "unshare is unavailable"}
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "ray.json"
        command = f"ip link set lo up && {sys.executable} {Path(__file__).resolve()} --ray-inner {out} --epochs {epochs}"
        env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", command], env=env, check=True)
        measured = json.loads(out.read_text())

    def numbers(runs: list[dict]) -> list[dict]:
        return [{k: v for k, v in run.items() if k not in TIMES} for run in runs]

    return {
        "workers": 2, "start_seconds": round(measured["start_seconds"], 2),
        "sweep_seconds_cold": round(measured["cold_seconds"], 2), "sweep_seconds_warm": round(measured["warm_seconds"], 2),
        "local_seconds": round(local_seconds, 2),
        "speedup_warm": round(local_seconds / measured["warm_seconds"], 2),
        "speedup_including_start": round(local_seconds / (measured["start_seconds"] + measured["cold_seconds"]), 2),
        "identical_table": numbers(measured["runs_table"]) == numbers(local_runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the local runs (default 1)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved repeats for the overhead (default 3)")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray part")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--ray-inner", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ray_inner:
        torch.set_num_threads(1)
        ray_inner(args.epochs, args.ray_inner)
        return
    local = overhead(args.epochs, args.threads, args.repeats)
    if not args.no_ray:
        torch.set_num_threads(1)
        seconds, payload = (local["sweep_median"], local) if args.threads == 1 else with_sweep(args.epochs, 1)[:2]
        local["ray"] = ray_outer(args.epochs, seconds, payload["runs_table" if args.threads == 1 else "runs"])
    local.pop("runs_table")
    if args.json:
        print(json.dumps(local, indent=2))
        return
    print(f"{local['runs']} runs ({args.epochs} epochs, {args.threads} thread(s)): sweep {local['sweep_median']} s, "
          f"by hand {local['by_hand_median']} s -> overhead {local['overhead']}x wall, {local['overhead_cpu']}x CPU "
          "(target <= 1.05x)")
    print(f"estimate: {local['estimate']['words']}")
    if "ray" in local:
        print(f"ray: {json.dumps(local['ray'])}")
    print(local["verdict"])


if __name__ == "__main__":
    main()
