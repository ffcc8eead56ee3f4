"""What does ``explainer.compare_transfer()`` cost, against peers measured in the same run?

1. The default curve: textures, 1/2/5/10/20/50 labelled examples per class, 3 seeds, strategies
   linear_probe + pixels + small_cnn (54 runs), from a cold feature cache, model loading included.
   Target: ≤ 60 s on 2 CPU threads.
2. One fine_tune and one scratch run (5 per class, seed 0, 100 steps) against a bare PyTorch loop of the
   same 100 forward + backward + Adam steps on the same images (the work any implementation must do).
3. The feature cache: one linear-probe run with features from the cache (memory) against the same run
   recomputing the dataset's features first (what a cache-less loop pays per run), and the cost of
   reading the cache file from disk.

Usage: ``python benchmarks/transfer.py [--threads 2] [--device cpu|cuda] [--json]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

import explainer
from explainer import feature_cache
from explainer.transfer import _HeadedBackbone, few_shot_sample, fit_logistic

CURVE = dict(shots=(1, 2, 5, 10, 20, 50), seeds=3, strategies=("linear_probe", "pixels", "small_cnn"), steps=100)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_curve(device: str | None, cache: str) -> dict:
    start = time.perf_counter()
    results = explainer.compare_transfer("textures", device=device, cache_dir=cache, **CURVE)
    total = time.perf_counter() - start
    per_strategy = results.table.groupby("strategy")["seconds"].sum().round(2).to_dict()
    return {
        "seconds": round(total, 2), "runs": len(results.table), "feature_seconds": round(results.feature_seconds, 2),
        "feature_source": results.feature_source, "seconds_by_strategy": per_strategy, "target_seconds": 60,
        "summary": results.summary().round(4).to_dict("records"),
    }


def network_runs(model: explainer.Classifier, data: explainer.Dataset, device: torch.device, cache: str) -> dict:
    rows = {}
    for strategy in ("fine_tune", "scratch"):
        start = time.perf_counter()
        result = explainer.compare_transfer(
            data, model, shots=5, seeds=1, strategies=strategy, steps=100, cache_dir=cache, device=device
        )
        seconds = time.perf_counter() - start
        rows[strategy] = {"seconds": round(seconds, 2), "accuracy": float(result.table["accuracy"][0])}
    # Peer: a bare loop of the same 100 Adam steps on the same 30 images through the same network.
    support = few_shot_sample(data.y_train, data.num_classes, 5, seed=0)
    inputs = feature_cache.prepare_images(model, data.x_train[support], 64)
    labels = data.y_train[support].to(device)
    head = torch.nn.Linear(1280, data.num_classes)
    net = _HeadedBackbone(copy.deepcopy(model.module), head).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    _sync(device)
    start = time.perf_counter()
    for _ in range(100):
        loss = F.cross_entropy(net(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    bare = time.perf_counter() - start
    for row in rows.values():
        row["vs_bare_loop"] = round(row["seconds"] / bare, 2)
    return {**rows, "bare_loop_seconds": round(bare, 2)}


def cache_speedup(model: explainer.Classifier, data: explainer.Dataset, cache: str, repeats: int = 3) -> dict:
    def probe_run(train: torch.Tensor, test: torch.Tensor, seed: int) -> float:
        support = few_shot_sample(data.y_train, data.num_classes, 5, seed)
        head = fit_logistic(train[support].to(model.device), data.y_train[support].to(model.device), data.num_classes)
        with torch.no_grad():
            return float((head(test.to(model.device)).argmax(1).cpu() == data.y_test).float().mean())

    cached, recomputed, from_disk = [], [], []
    for seed in range(repeats):
        start = time.perf_counter()
        features = feature_cache.dataset_features(model, data.x_train, data.x_test, 64, directory=cache)
        probe_run(features.train, features.test, seed)
        cached.append(time.perf_counter() - start)

        start = time.perf_counter()
        train, test = (feature_cache.extract_features(model, x, 64) for x in (data.x_train, data.x_test))
        probe_run(train, test, seed)
        recomputed.append(time.perf_counter() - start)

        feature_cache.clear_memory_cache()
        start = time.perf_counter()
        feature_cache.dataset_features(model, data.x_train, data.x_test, 64, directory=cache)
        from_disk.append(time.perf_counter() - start)
    cached_s, recomputed_s = statistics.median(cached), statistics.median(recomputed)
    return {
        "probe_run_cached_ms": round(1000 * cached_s, 1),
        "probe_run_recomputing_features_ms": round(1000 * recomputed_s, 1),
        "speedup": round(recomputed_s / cached_s, 1),
        "features_from_disk_ms": round(1000 * statistics.median(from_disk), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    say = (lambda text: None) if args.json else (lambda text: print(text, flush=True))
    report: dict = {"threads": args.threads, "torch": torch.__version__}
    with tempfile.TemporaryDirectory() as cache:
        curve = report["default_curve"] = default_curve(args.device, cache)
        say(f"1. default curve ({curve['runs']} runs): {curve['seconds']} s (target ≤ {curve['target_seconds']} s); "
            f"features {curve['feature_seconds']} s ({curve['feature_source']}); "
            f"by strategy {curve['seconds_by_strategy']}")
        model = explainer.load_model(device=args.device)
        data = explainer.load_dataset("textures")
        report["device"] = str(model.device)
        nets = report["networks"] = network_runs(model, data, model.device, cache)
        for strategy in ("fine_tune", "scratch"):
            row = nets[strategy]
            say(f"2. {strategy}: {row['seconds']} s, accuracy {row['accuracy']:.1%}, "
                f"{row['vs_bare_loop']}× a bare loop of the same 100 steps ({nets['bare_loop_seconds']} s)")
        cached = report["feature_cache"] = cache_speedup(model, data, cache)
        say(f"3. probe run with cached features {cached['probe_run_cached_ms']} ms vs "
            f"{cached['probe_run_recomputing_features_ms']} ms recomputing them: {cached['speedup']}× faster; "
            f"reading the cache file {cached['features_from_disk_ms']} ms")
    say(f"device {report['device']}, {args.threads} threads, torch {report['torch']}")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
