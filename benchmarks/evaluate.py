"""What do dataset-scale faithfulness curves cost, against Quantus in the same run – and Ray against local?

1. MoRF deletion curves of the bundled EfficientNet-Lite0 at 224 px: ``explainer``'s
   :func:`explainer.evidence.curves.perturbation_curves` (perturbed inputs of every image and step share
   forward passes, memory bounded as ``explain`` does it) against Quantus' ``PixelFlipping`` on the same
   saliency maps, images, model, steps (84) and baseline (0 in normalized input space, the "zero"
   baseline); Quantus flips the same number of values per step (all channels of a pixel, as ours).
   Both give the target-class softmax probability; images per second and the peak resident memory of
   this process after our run (it includes the model and Python). Target: ≥ 10× Quantus, ≤ 2 GiB.
   Ours runs once per ``--precisions`` entry (``fp32``, ``bf16``, ``auto``; ``--compile`` adds compiled
   runs and their compile seconds), each against its *forward-pass floor*: the measured time of the same
   number of plain forwards (``images × (steps + 1)``) through the same forward at the same precision and
   batch size – what is left is the cost of making the perturbed inputs. Targets on an AMX/AVX-512-BF16
   CPU: fp32 ≤ 1.1× its floor; bf16 ≥ 1.8× Quantus with curves within 0.01.
2. The whole ``explainer.evaluate`` on the digits CNN (60 test images, saliency + integrated gradients
   + the 4 controls, every metric) locally and on a real 2-worker Ray cluster started inside a private
   network namespace (``unshare -n``, loopback only): seconds and the overhead ratio; the rows are
   checked equal.

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/evaluate.py [--images 6] [--threads 1]
[--device cpu|cuda] [--repeats 2] [--precisions fp32 bf16 auto] [--compile] [--batch N] [--no-quantus]
[--no-ray] [--json]``. Quantus 0.6 calls ``numpy.trapz`` (gone in
numpy 2), so it is aliased to ``numpy.trapezoid`` here.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import torch

import explainer
from explainer.evidence.curves import forward_batch_size, perturbation_curves
from explainer.evidence.precision import FastForward, fast_forward, resolve_precision

REPO = Path(__file__).resolve().parents[1]
#: Quantus needs features_in_step to divide H × W (50,176) and flips C × H × W values in steps of it: 1,792
#: values (= 597⅓ pixels, all channels) per step makes 84 steps for both tools.
STEPS = 84


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _maps(model: explainer.Classifier, count: int) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    photos = list(explainer.sample_images().values())
    images = [photos[i % len(photos)] for i in range(count)]
    explanation = explainer.explain(model, images, "saliency", budget_seconds=None)
    return explanation.inputs, explanation.heatmap(absolute=True), list(explanation.targets)


def ours(model: explainer.Classifier, inputs: torch.Tensor, relevance: torch.Tensor, targets: list[int],
         forward: FastForward | None = None, batch: int | None = None) -> dict:
    """MoRF deletion curves for every image in one call (warm-up on one image first: it compiles)."""
    started = time.perf_counter()
    perturbation_curves(model, inputs[:1], relevance[:1], targets[:1], curves=["deletion_morf"], steps=STEPS,
                        forward=forward, batch_size=batch)
    _sync(model.device)
    warm_up = time.perf_counter() - started
    started = time.perf_counter()
    _, curves = perturbation_curves(model, inputs, relevance, targets, curves=["deletion_morf"], steps=STEPS,
                                    forward=forward, batch_size=batch)
    _sync(model.device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(model.device) if model.device.type == "cuda" else None
    return {"seconds": seconds, "images_per_second": len(targets) / seconds, "warm_up_seconds": warm_up,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "peak_cuda_gib": None if peak is None else peak / 2**30, "curves": curves["deletion_morf"]}


def forward_floor(model: explainer.Classifier, inputs: torch.Tensor, forward: FastForward, batch: int) -> float:
    """Seconds of ``images × (STEPS + 1)`` plain forwards through ``forward`` in passes of ``batch`` (as the curves)."""
    total = len(inputs) * (STEPS + 1)
    sizes = [batch] * (total // batch) + ([total % batch] if total % batch else [])
    samples = inputs.to(model.device).repeat((batch + len(inputs) - 1) // len(inputs), 1, 1, 1)[:batch]
    forward(samples)  # warm-up
    _sync(model.device)
    started = time.perf_counter()
    for size in sizes:
        forward(samples[:size])
    _sync(model.device)
    return time.perf_counter() - started


def quantus_pixel_flipping(model: explainer.Classifier, inputs: torch.Tensor, relevance: torch.Tensor,
                           targets: list[int]) -> dict:
    """Quantus' PixelFlipping on the same maps, images, model, steps and baseline."""
    np.trapz = np.trapezoid  # type: ignore[attr-defined]  # Quantus 0.6 still calls numpy.trapz
    import warnings

    import quantus

    x = inputs.cpu().numpy()
    a = relevance.unsqueeze(1).expand_as(inputs).contiguous().cpu().numpy()  # one value per flipped element
    # features_in_step: values flipped per step (it must divide H × W); baseline 0 = our "zero"
    metric = quantus.PixelFlipping(features_in_step=x[0].size // STEPS, perturb_baseline=0.0,  # type: ignore[arg-type]
                                   disable_warnings=True,
                                   display_progressbar=False)
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curves = metric(model=model.module.eval(), x_batch=x, y_batch=np.array(targets), a_batch=a,
                        device=str(model.device), batch_size=len(targets), channel_first=True, softmax=True)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "images_per_second": len(targets) / seconds, "curves": np.array(curves)}


_RAY_CHILD = """
import json, sys, time, torch
torch.set_num_threads(1)
import explainer
from explainer.evidence.evaluate import evaluate
from explainer.learn.architectures import build_model
data = explainer.load_dataset("digits")
net = build_model("cnn", data, seed=0)
net.load_state_dict(torch.load(sys.argv[1], weights_only=True))
model = explainer.Classifier.from_module(net.eval(), labels=data.class_names, input_size=8, in_chans=1, name="digits")
started = time.perf_counter()
result = evaluate(model, "digits", methods=["saliency", "integrated_gradients"], limit=int(sys.argv[2]),
                  backend=sys.argv[3], address=None if sys.argv[3] == "local" else "auto")
print(json.dumps({"seconds": time.perf_counter() - started, "rows": result.rows}))
"""


def ray_vs_local(images: int) -> dict:
    """The same evaluation locally and on a 2-worker Ray cluster inside ``unshare -n``."""
    sys.path.insert(0, str(REPO / "tests"))
    from ray_cluster import _unavailable, start_private_cluster

    from explainer.evidence.evaluate import trained_classifier

    reason = _unavailable()
    if reason:
        return {"skipped": reason}
    torch.set_num_threads(1)
    folder = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    checkpoint = folder / "digits_cnn.pt"
    torch.save(trained_classifier("cnn", "digits", seed=0).module.state_dict(), checkpoint)
    script = folder / "child.py"
    script.write_text(textwrap.dedent(_RAY_CHILD))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    local = subprocess.run([sys.executable, str(script), str(checkpoint), str(images), "local"], capture_output=True,
                           text=True, env=env, check=True)
    local_result = json.loads(local.stdout.strip().splitlines()[-1])
    cluster = start_private_cluster(num_cpus=2)
    try:
        remote = cluster.run(script, str(checkpoint), str(images), "ray", timeout=900)
    finally:
        cluster.stop()
    if remote.returncode != 0:
        return {"error": remote.stderr[-2000:]}
    ray_result = json.loads(remote.stdout.strip().splitlines()[-1])
    return {"images": images, "local_seconds": local_result["seconds"], "ray_seconds": ray_result["seconds"],
            "ray_over_local": ray_result["seconds"] / local_result["seconds"],
            "rows_equal": ray_result["rows"] == local_result["rows"], "workers": 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=6, help="images for the Quantus comparison (default 6)")
    parser.add_argument("--ray-images", type=int, default=60, help="digits test images for Ray vs local (default 60)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats, best of each (default 2)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=("fp32", "bf16", "auto"),
                        help="precisions of our perturbed forwards (default fp32 bf16)")
    parser.add_argument("--compile", action="store_true", help="also run each precision compiled (compiling takes long)")
    parser.add_argument("--batch", type=int, default=None, help="samples per forward pass (default: the memory budget's)")
    parser.add_argument("--no-quantus", action="store_true", help="skip Quantus")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray comparison")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    model = explainer.load_model(device=args.device)
    inputs, relevance, targets = _maps(model, args.images)
    batch = args.batch or forward_batch_size(model, tuple(inputs.shape[1:]))
    report: dict = {"device": str(model.device), "threads": args.threads, "images": args.images, "steps": STEPS,
                    "model": model.name, "size": list(inputs.shape[-2:]), "batch": batch, "repeats": args.repeats,
                    "load_average_before": load_before}
    forwards = {}
    for precision in args.precisions:
        for compiled in (False, True) if args.compile else (False,):
            setting = resolve_precision(model, precision, compile=compiled, probe=inputs)
            forwards[precision + (" compiled" if compiled else "")] = (setting, fast_forward(model, setting))
    # interleaved repeats, best of each: the machine is shared, so load changes between runs
    runs: dict[str, list[dict]] = {label: [] for label in forwards}
    theirs_runs = []
    for _ in range(args.repeats):
        for label, (_setting, forward) in forwards.items():
            run = ours(model, inputs, relevance, targets, forward, batch)
            run["floor_seconds"] = forward_floor(model, inputs, forward, batch)
            runs[label].append(run)
        if not args.no_quantus:
            theirs_runs.append(quantus_pixel_flipping(model, inputs, relevance, targets))
    theirs = min(theirs_runs, key=lambda r: r["seconds"]) if theirs_runs else None
    if theirs is not None:
        report["quantus"] = {k: v for k, v in theirs.items() if k != "curves"}
    best = {label: min(done, key=lambda r: r["seconds"]) for label, done in runs.items()}
    reference = best.get("fp32")
    report["explainer"] = {}
    for label, mine in best.items():
        floor = min(r["floor_seconds"] for r in runs[label])
        entry = {k: v for k, v in mine.items() if k not in ("curves", "floor_seconds")}
        entry.update({"setting": forwards[label][0].text(), "floor_seconds": floor, "over_floor": mine["seconds"] / floor,
                      "warm_up_seconds": runs[label][0]["warm_up_seconds"]})  # the first one compiles
        if reference is not None:
            entry["max_difference_from_fp32"] = float(np.abs(mine["curves"] - reference["curves"]).max())
        if theirs is not None:
            entry["speedup_over_quantus"] = mine["images_per_second"] / theirs["images_per_second"]
            # Quantus' curve starts after the first step; ours at the untouched image
            entry["max_curve_difference_from_quantus"] = float(np.abs(mine["curves"][:, 1:] - theirs["curves"]).max())
        report["explainer"][label] = entry
    report["load_average_after"] = os.getloadavg()
    if not args.no_ray:
        report["ray"] = ray_vs_local(args.ray_images)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"MoRF deletion, {args.images} images at {report['size'][0]} px, {STEPS} steps, {report['device']}, "
          f"{args.threads} thread(s), batch {batch}; load average {load_before[0]:.2f} before, "
          f"{report['load_average_after'][0]:.2f} after:")
    for label, entry in report["explainer"].items():
        line = (f"  explainer {label:<14} {entry['images_per_second']:.3f} images/s ({entry['seconds']:.1f} s); "
                f"floor {entry['floor_seconds']:.1f} s → {entry['over_floor']:.2f}× the floor")
        if "speedup_over_quantus" in entry:
            line += (f"; {entry['speedup_over_quantus']:.2f}× Quantus, curves within "
                     f"{entry['max_curve_difference_from_quantus']:.3g} of Quantus'")
        if "max_difference_from_fp32" in entry and label != "fp32":
            line += f", {entry['max_difference_from_fp32']:.3g} of our fp32"
        if label.endswith("compiled"):
            line += f"; first call (compiles) {entry['warm_up_seconds']:.1f} s"
        print(line + f"\n      {entry['setting']}")
    if theirs is not None:
        print(f"  Quantus                  {theirs['images_per_second']:.3f} images/s  ({theirs['seconds']:.1f} s)")
    if "ray" in report:
        print(f"  Ray vs local: {json.dumps(report['ray'])}")


if __name__ == "__main__":
    main()
