"""Key numbers of "inside the network", each measured against a peer in the same run.

1. Ablation: zeroing the k channels of the bundled EfficientNet-Lite0's Grad-CAM layer (bn2) that matter
   most for each sample photo's predicted class (gradient × activation) vs zeroing k random channels
   (``--draws`` per photo): mean drop of the predicted class's probability.
2. Embeddings: a small CNN trained on digits (plain loop, 20 epochs, ``--seeds`` seeds); 5-NN accuracy
   (5-fold CV) of the 2-D PCA and t-SNE maps of its penultimate features vs the same maps of raw pixels.
3. Feature visualization: seconds for ``visualize_channel`` (96 steps, 128 px) vs a bare loop of the
   same number of forward+backward passes through the full model at that size, and the activation
   reached vs the mean of the sample photos.

Usage: ``python benchmarks/inside.py [--threads 1] [--seeds 5] [--draws 3] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import explainer

CHANNELS = (("blocks.2", 10), ("blocks.4", 20), ("blocks.6", 5), ("bn2", 285))


def ablation(model: explainer.Classifier, draws: int) -> list[dict]:
    photos = list(explainer.sample_images().values())
    importance = explainer.cam_channel_importance(model, photos)
    rng = np.random.default_rng(0)
    rows = []
    for k in (5, 10, 20):
        cam, random = [], []
        for i, photo in enumerate(photos):
            cam.append(explainer.ablate(model, photo, layer=importance.layer, channels=importance.top(k, image=i)).drop[0])
            for _ in range(draws):
                channels = rng.choice(1280, size=k, replace=False).tolist()
                random.append(explainer.ablate(model, photo, layer=importance.layer, channels=channels,
                                               target=importance.targets[i]).drop[0])
        rows.append({"k": k, "cam_drop": float(np.mean(cam)), "random_drop": float(np.mean(random)),
                     "cam_min": float(np.min(cam)), "random_max": float(np.max(random))})
    return rows


def train_digits_cnn(digits: explainer.Dataset, seed: int) -> tuple[nn.Module, float]:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 16, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(20):
        order = torch.randperm(len(digits.y_train))
        for start in range(0, len(order), 32):
            batch = order[start : start + 32]
            loss = F.cross_entropy(net(digits.x_train[batch]), digits.y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net(digits.x_test).argmax(1) == digits.y_test).float().mean())
    return net, accuracy


def embeddings(seeds: int) -> list[dict]:
    digits = explainer.load_dataset("digits")
    rows = []
    for seed in range(seeds):
        net, accuracy = train_digits_cnn(digits, seed)
        for method in ("pca", "tsne"):
            result = explainer.embed_dataset(net, digits, method=method)
            rows.append({"seed": seed, "test_accuracy": accuracy, "method": method,
                         "cnn_knn": result.knn_accuracy, "pixel_knn": result.pixel_knn_accuracy})
    return rows


def bare_loop_seconds(model: explainer.Classifier, steps: int, size: int) -> float:
    """The peer: ``steps`` forward+backward passes of the whole model on a (1, 3, size, size) input."""
    image = torch.rand(1, 3, size, size, device=model.device, requires_grad=True)
    started = time.perf_counter()
    for _ in range(steps):
        (grad,) = torch.autograd.grad(model.module(image).max(), image)
    return time.perf_counter() - started


def feature_visualization(model: explainer.Classifier, steps: int = 96, size: int = 128) -> list[dict]:
    rows = []
    for layer, channel in CHANNELS:
        result = explainer.visualize_channel(model, layer=layer, channel=channel, steps=steps, size=size, progress=False)
        peer = bare_loop_seconds(model, steps, size)
        rows.append({"layer": layer, "channel": channel, "seconds": result.seconds, "bare_loop_seconds": peer,
                     "ratio": result.seconds / peer, "activation": result.activation,
                     "photo_mean": result.photo_activation, "photo_max": result.photo_max,
                     "noise": result.noise_activation, "objective_site": result.objective_site})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = explainer.load_model(device="cpu")
    results = {"threads": args.threads, "ablation": ablation(model, args.draws),
               "embeddings": embeddings(args.seeds), "feature_visualization": feature_visualization(model)}
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("Ablation of bn2 channels, mean drop of the predicted class's probability over 6 photos")
    for row in results["ablation"]:
        print(f"  k={row['k']:2d}: CAM channels {row['cam_drop']:.3f} (min {row['cam_min']:.3f})   "
              f"random {row['random_drop']:.3f} (max {row['random_max']:.3f})")
    print("Digits, 5-NN accuracy in 2-D (5-fold CV), CNN penultimate features vs raw pixels")
    for method in ("pca", "tsne"):
        rows = [r for r in results["embeddings"] if r["method"] == method]
        cnn = [r["cnn_knn"] for r in rows]
        print(f"  {method:4s}: CNN {min(cnn):.3f}–{max(cnn):.3f} (median {statistics.median(cnn):.3f}) vs pixels "
              f"{rows[0]['pixel_knn']:.3f}; CNN test accuracy "
              f"{min(r['test_accuracy'] for r in rows):.3f}–{max(r['test_accuracy'] for r in rows):.3f}")
    print(f"Feature visualization, 96 steps at 128 px, {args.threads} thread(s)")
    for row in results["feature_visualization"]:
        print(f"  {row['layer']:>8s} ch {row['channel']:4d}: {row['seconds']:.1f} s ({row['ratio']:.2f}x a bare "
              f"fwd+bwd loop, {row['bare_loop_seconds']:.1f} s); activation {row['activation']:.2f} vs photos "
              f"{row['photo_mean']:.2f} (best {row['photo_max']:.2f}), noise {row['noise']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
