"""What does ``explainer.compare_transfer()`` cost, against peers measured in the same run?

1. The default curve: textures, 1/2/5/10/20/50 labelled examples per class, 3 seeds, strategies
   linear_probe + pixels + small_cnn (54 runs), from a cold feature cache, model loading included.
   Target: ≤ 60 s on 2 CPU threads.
2. One fine_tune and one scratch run (5 per class, seed 0, 100 steps) against a bare PyTorch loop of the
   same 100 forward + backward + Adam steps on the same images (the work any implementation must do);
   the three are interleaved ``--repeats`` times and the medians compared.
3. The feature cache: one linear-probe run with the dataset's features in hand (what each run inside
   ``compare_transfer`` pays) against the same run recomputing them first (what a cache-less loop
   pays per run), and the cost of a fresh cache lookup from memory and from disk.

Usage: ``python benchmarks/transfer.py [--threads 2] [--device cpu|cuda] [--repeats 3] [--json]``.
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
from explainer.transfer import feature_cache, few_shot_sample
from explainer.transfer.learners import HeadedBackbone, fit_logistic

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


def bare_loop(model: explainer.Classifier, data: explainer.Dataset, device: torch.device) -> float:
    """Seconds of 100 Adam steps on the 5-per-class sample through the same network, nothing else."""
    support = few_shot_sample(data.y_train, data.num_classes, 5, seed=0)
    inputs = feature_cache.prepare_images(model, data.x_train[support], 64)
    labels = data.y_train[support].to(device)
    net = HeadedBackbone(copy.deepcopy(model.module), torch.nn.Linear(1280, data.num_classes)).to(device).train()
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    _sync(device)
    start = time.perf_counter()
    for _ in range(100):
        loss = F.cross_entropy(net(inputs), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    return time.perf_counter() - start


def network_runs(
    model: explainer.Classifier, data: explainer.Dataset, device: torch.device, cache: str, repeats: int
) -> dict:
    """fine_tune and scratch runs (5 per class, seed 0, 100 steps) interleaved with the bare loop; medians."""
    seconds: dict[str, list[float]] = {"fine_tune": [], "scratch": [], "bare_loop": []}
    accuracy = {}
    for _ in range(repeats):
        for strategy in ("fine_tune", "scratch"):
            start = time.perf_counter()
            result = explainer.compare_transfer(
                data, model, shots=5, seeds=1, strategies=strategy, steps=100, cache_dir=cache, device=device
            )
            seconds[strategy].append(time.perf_counter() - start)
            accuracy[strategy] = float(result.table["accuracy"][0])
        seconds["bare_loop"].append(bare_loop(model, data, device))
    median = {name: statistics.median(values) for name, values in seconds.items()}
    rows = {
        strategy: {
            "seconds": round(median[strategy], 2), "accuracy": accuracy[strategy],
            "vs_bare_loop": round(median[strategy] / median["bare_loop"], 2),
        }
        for strategy in ("fine_tune", "scratch")
    }
    return {**rows, "bare_loop_seconds": round(median["bare_loop"], 2), "repeats": repeats}


def cache_speedup(model: explainer.Classifier, data: explainer.Dataset, cache: str, repeats: int = 3) -> dict:
    """A linear-probe run with the features in hand vs recomputing them; cache lookups from memory and disk."""

    def probe_run(train: torch.Tensor, test: torch.Tensor, seed: int) -> float:
        support = few_shot_sample(data.y_train, data.num_classes, 5, seed)
        head = fit_logistic(train[support].to(model.device), data.y_train[support].to(model.device), data.num_classes)
        with torch.no_grad():
            return float((head(test.to(model.device)).argmax(1).cpu() == data.y_test).float().mean())

    def timed(fn) -> tuple[float, object]:
        start = time.perf_counter()
        value = fn()
        return time.perf_counter() - start, value

    def lookup():
        return feature_cache.dataset_features(model, data.x_train, data.x_test, 64, directory=cache)

    def recompute(seed: int) -> float:
        train, test = (feature_cache.extract_features(model, x, 64) for x in (data.x_train, data.x_test))
        return probe_run(train, test, seed)

    times: dict[str, list[float]] = {"probe": [], "recompute": [], "memory": [], "disk": []}
    for seed in range(repeats):
        seconds, features = timed(lookup)
        times["memory" if features.source == "memory" else "disk"].append(seconds)
        times["probe"].append(timed(lambda features=features, seed=seed: probe_run(features.train, features.test, seed))[0])
        times["recompute"].append(timed(lambda seed=seed: recompute(seed))[0])
        feature_cache.clear_memory_cache()
        times["disk"].append(timed(lookup)[0])
    ms = {name: 1000 * statistics.median(values) for name, values in times.items() if values}
    return {
        "probe_run_ms": round(ms["probe"], 1),
        "probe_run_recomputing_features_ms": round(ms["recompute"], 1),
        "speedup": round(ms["recompute"] / ms["probe"], 1),
        "lookup_memory_ms": round(ms["memory"], 1),
        "lookup_disk_ms": round(ms["disk"], 1),
        "speedup_with_lookup": round(ms["recompute"] / (ms["probe"] + ms["memory"]), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of section 2 (median; default 3)")
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
        nets = report["networks"] = network_runs(model, data, model.device, cache, args.repeats)
        for strategy in ("fine_tune", "scratch"):
            row = nets[strategy]
            say(f"2. {strategy}: {row['seconds']} s, accuracy {row['accuracy']:.1%}, {row['vs_bare_loop']}× a bare "
                f"loop of the same 100 steps ({nets['bare_loop_seconds']} s; medians of {args.repeats})")
        cached = report["feature_cache"] = cache_speedup(model, data, cache)
        say(f"3. probe run with the features in hand {cached['probe_run_ms']} ms vs "
            f"{cached['probe_run_recomputing_features_ms']} ms recomputing them: {cached['speedup']}× faster "
            f"({cached['speedup_with_lookup']}× counting a fresh cache lookup: memory "
            f"{cached['lookup_memory_ms']} ms, disk {cached['lookup_disk_ms']} ms, both hash the dataset and weights)")
    say(f"device {report['device']}, {args.threads} threads, torch {report['torch']}")
    if args.json:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
