"""What do dataset-scale faithfulness curves cost, against Quantus in the same run – and Ray against local?

1. MoRF deletion curves of the bundled EfficientNet-Lite0 at 224 px: ``explainer``'s
   :func:`explainer.evidence.metrics.perturbation_curves` (perturbed inputs of every image and step share
   forward passes, memory bounded as ``explain`` does it) against Quantus' ``PixelFlipping`` on the same
   saliency maps, images, model, steps (84) and baseline (0 in normalized input space, the "zero"
   baseline); Quantus flips the same number of values per step (all channels of a pixel, as ours).
   Both give the target-class softmax probability; images per second and the peak resident memory of
   this process after our run (it includes the model and Python). Target: ≥ 10× Quantus, ≤ 2 GiB.
2. The whole ``explainer.evaluate`` on the digits CNN (60 test images, saliency + integrated gradients
   + the 4 controls, every metric) locally and on a real 2-worker Ray cluster started inside a private
   network namespace (``unshare -n``, loopback only): seconds and the overhead ratio; the rows are
   checked equal.

Usage: ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/evaluate.py [--images 6] [--threads 1]
[--device cpu|cuda] [--repeats 2] [--no-quantus] [--no-ray] [--json]``. Quantus 0.6 calls ``numpy.trapz`` (gone in
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
from explainer.evidence.metrics import perturbation_curves

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


def ours(model: explainer.Classifier, inputs: torch.Tensor, relevance: torch.Tensor, targets: list[int]) -> dict:
    """MoRF deletion curves for every image in one call (warm-up on one image first)."""
    perturbation_curves(model, inputs[:1], relevance[:1], targets[:1], curves=["deletion_morf"], steps=STEPS)
    _sync(model.device)
    started = time.perf_counter()
    _, curves = perturbation_curves(model, inputs, relevance, targets, curves=["deletion_morf"], steps=STEPS)
    _sync(model.device)
    seconds = time.perf_counter() - started
    peak = torch.cuda.max_memory_allocated(model.device) if model.device.type == "cuda" else None
    return {"seconds": seconds, "images_per_second": len(targets) / seconds,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "peak_cuda_gib": None if peak is None else peak / 2**30, "curves": curves["deletion_morf"]}


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
    parser.add_argument("--no-quantus", action="store_true", help="skip Quantus")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray comparison")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = explainer.load_model(device=args.device)
    inputs, relevance, targets = _maps(model, args.images)
    report: dict = {"device": str(model.device), "threads": args.threads, "images": args.images, "steps": STEPS,
                    "model": model.name, "size": list(inputs.shape[-2:])}
    # interleaved repeats, best of each: the machine is shared, so load changes between runs
    runs = []
    for _ in range(args.repeats):
        runs.append(ours(model, inputs, relevance, targets))
        if not args.no_quantus:
            runs.append(quantus_pixel_flipping(model, inputs, relevance, targets))
    mine = min(runs[:: 1 if args.no_quantus else 2], key=lambda r: r["seconds"])
    report["explainer"] = {k: v for k, v in mine.items() if k != "curves"}
    report["repeats"] = args.repeats
    if not args.no_quantus:
        theirs = min(runs[1::2], key=lambda r: r["seconds"])
        report["quantus"] = {k: v for k, v in theirs.items() if k != "curves"}
        report["speedup"] = mine["images_per_second"] / theirs["images_per_second"]
        # Quantus' curve starts after the first step; ours at the untouched image
        report["max_curve_difference"] = float(np.abs(mine["curves"][:, 1:] - theirs["curves"]).max())
    if not args.no_ray:
        report["ray"] = ray_vs_local(args.ray_images)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"MoRF deletion, {args.images} images at {report['size'][0]} px, {STEPS} steps, {report['device']}, "
          f"{args.threads} thread(s):")
    print(f"  explainer  {mine['images_per_second']:.3f} images/s  ({mine['seconds']:.1f} s), "
          f"peak RSS {mine['peak_rss_gib']:.2f} GiB")
    if "quantus" in report:
        print(f"  Quantus    {report['quantus']['images_per_second']:.3f} images/s  ({report['quantus']['seconds']:.1f} s)"
              f"  → {report['speedup']:.1f}× ; largest curve difference {report['max_curve_difference']:.3g}")
    if "ray" in report:
        print(f"  Ray vs local: {json.dumps(report['ray'])}")


if __name__ == "__main__":
    main()
