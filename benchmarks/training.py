"""How fast does explainer.fit() train on this CPU, against peers measured in the same run?

1. Time to ≥97 % test accuracy on digits (default CNN conv16-conv32-pool-fc64, Adam 1e-3, batch 32,
   seed 0): ``fit()`` vs a plain hand-written PyTorch loop on the same initial weights, batches and
   hyper-parameters vs scikit-learn's ``MLPClassifier(100)`` (``partial_fit`` per epoch, same
   per-epoch test check). Median of ``--repeats``, contenders interleaved.
2. Telemetry overhead: a fixed number of epochs with ``fit(telemetry=...)`` / the plain loop.
3. One epoch of an MNIST-size CNN (conv24 k5, conv32 k3, fc256) on 60,000 random 28×28 images
   (timing only): ``fit()`` and the plain loop.

Usage: ``python benchmarks/training.py [--threads 2] [--device cpu] [--repeats 5] [--mnist-repeats 2] [--json]``.
Targets: ≥97 % in ≤ 0.5 s on 2 threads, telemetry ≤ 1.10×, MNIST-size epoch ≤ 7 s.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

import explainer
from explainer.hardware import describe_device, matmul_peak_gflops, resolve_device
from explainer.learn.architectures import build_cnn
from explainer.learn.training import fit

TARGET = 0.97
LR, BATCH, SEED = 1e-3, 32, 0


def plain_loop(model, data, epochs, device, target=None):
    """The peer: the loop one writes by hand – shuffle, index a batch, forward, loss, backward, step, test."""
    model.to(device).train()
    x, y = data.x_train.to(device), data.y_train.to(device)
    x_test, y_test = data.x_test.to(device), data.y_test.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    generator = torch.Generator().manual_seed(SEED)
    start = time.perf_counter()
    accuracy, epoch = 0.0, 0
    for epoch in range(1, epochs + 1):  # noqa: B007 - the last epoch is returned
        order = torch.randperm(len(y), generator=generator).to(device)
        for i in range(0, len(y), BATCH):
            batch = order[i : i + BATCH]
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.inference_mode():
            accuracy = sum(
                (model(x_test[i : i + 1024]).argmax(1) == y_test[i : i + 1024]).sum().item() for i in range(0, len(y_test), 1024)
            ) / len(y_test)
        model.train()
        if target is not None and accuracy >= target:
            break
    return time.perf_counter() - start, epoch, accuracy


def sklearn_mlp(data, max_epochs=200, target=TARGET):
    """scikit-learn's MLPClassifier(100), one ``partial_fit`` pass per epoch, stopping at the target."""
    from sklearn.neural_network import MLPClassifier

    x, y = data.x_train.flatten(1).numpy(), data.y_train.numpy()
    x_test, y_test = data.x_test.flatten(1).numpy(), data.y_test.numpy()
    mlp = MLPClassifier(hidden_layer_sizes=(100,), random_state=SEED)
    start = time.perf_counter()
    accuracy, epoch = 0.0, 0
    for epoch in range(1, max_epochs + 1):  # noqa: B007 - the last epoch is returned
        mlp.partial_fit(x, y, classes=np.arange(10))
        accuracy = mlp.score(x_test, y_test)
        if accuracy >= target:
            break
    return time.perf_counter() - start, epoch, accuracy


def median(rows, key):
    return statistics.median(row[key] for row in rows)


def time_to_target(digits, device, repeats):
    initial = explainer.build_model("cnn", digits, seed=SEED)
    rows = {"fit": [], "plain": [], "sklearn": []}

    def with_fit():
        start = time.perf_counter()
        run = fit(copy.deepcopy(initial), digits, epochs=60, lr=LR, batch_size=BATCH, target_accuracy=TARGET,
                  device=device, seed=SEED)
        return {"seconds": run.train_seconds, "call_seconds": time.perf_counter() - start, "epochs": run.epochs,
                "accuracy": run.test_accuracy, "gflops_per_second": run.gflops_per_second,
                "peak_fraction": run.peak_fraction, "receipt": run.receipt()}

    def as_row(seconds, epochs, accuracy):
        return {"seconds": seconds, "epochs": epochs, "accuracy": accuracy}

    contenders = {
        "fit": with_fit,
        "plain": lambda: as_row(*plain_loop(copy.deepcopy(initial), digits, 60, device, TARGET)),
        "sklearn": lambda: as_row(*sklearn_mlp(digits)),
    }
    names = list(contenders)
    for repeat in range(repeats + 1):  # the first round warms up caches and is dropped
        for name in names[repeat % 3 :] + names[: repeat % 3]:  # rotate who goes first
            row = contenders[name]()
            if repeat:
                rows[name].append(row)
    summary = {name: {"median_seconds": median(r, "seconds"), "epochs": [row["epochs"] for row in r],
                      "accuracy": [round(row["accuracy"], 4) for row in r]} for name, r in rows.items()}
    summary["fit"]["median_call_seconds"] = median(rows["fit"], "call_seconds")
    summary["fit"]["median_gflops_per_second"] = median(rows["fit"], "gflops_per_second")
    summary["fit"]["median_peak_fraction"] = median(rows["fit"], "peak_fraction")
    summary["fit"]["last_receipt"] = rows["fit"][-1]["receipt"]
    summary["fit_over_plain"] = summary["fit"]["median_seconds"] / summary["plain"]["median_seconds"]
    summary["fit_call_over_plain"] = summary["fit"]["median_call_seconds"] / summary["plain"]["median_seconds"]
    return summary


def telemetry_overhead(digits, device, repeats, epochs=5):
    initial = explainer.build_model("cnn", digits, seed=SEED)
    times = {"plain": [], "off": [], "epoch": [], "step": []}
    for repeat in range(repeats + 1):
        for mode in times:
            model = copy.deepcopy(initial)
            if mode == "plain":
                seconds = plain_loop(model, digits, epochs, device)[0]
            else:
                seconds = fit(model, digits, epochs=epochs, lr=LR, batch_size=BATCH, device=device, seed=SEED,
                              telemetry=mode).train_seconds
            if repeat:
                times[mode].append(seconds)
    medians = {mode: statistics.median(values) for mode, values in times.items()}
    return {
        "epochs": epochs,
        "median_seconds": medians,
        "ratio_to_plain": {mode: medians[mode] / medians["plain"] for mode in ("off", "epoch", "step")},
    }


def mnist_size_epoch(device, repeats):
    generator = torch.Generator().manual_seed(SEED)
    data = explainer.Dataset(
        "random 28×28", torch.rand(60_000, 1, 28, 28, generator=generator), torch.randint(0, 10, (60_000,), generator=generator),
        torch.rand(1_000, 1, 28, 28, generator=generator), torch.randint(0, 10, (1_000,), generator=generator),
        [str(i) for i in range(10)],
    )
    torch.manual_seed(SEED)
    initial = build_cnn((1, 28, 28), 10, channels=(24, 32), kernel_size=(5, 3), hidden=256, pool="each", padding="valid")
    runs, plain_seconds = [], []
    for repeat in range(repeats):  # alternate who goes first, so drifting load hits both alike
        contenders = [
            lambda: runs.append(fit(copy.deepcopy(initial), data, epochs=1, lr=LR, batch_size=BATCH, device=device, seed=SEED)),
            lambda: plain_seconds.append(plain_loop(copy.deepcopy(initial), data, 1, device)[0]),
        ]
        for contender in contenders[:: 1 if repeat % 2 == 0 else -1]:
            contender()
    fit_seconds = statistics.median(run.train_seconds for run in runs)
    return {
        "repeats": repeats,
        "parameters": runs[0].parameters,
        "flops_per_sample": runs[0].flops.training,
        "fit_epoch_seconds": fit_seconds,
        "fit_epoch_seconds_all": [run.train_seconds for run in runs],
        "plain_epoch_seconds": statistics.median(plain_seconds),
        "plain_epoch_seconds_all": plain_seconds,
        "fit_over_plain": fit_seconds / statistics.median(plain_seconds),
        "gflops_per_second": statistics.median(run.gflops_per_second for run in runs),
        "peak_fraction": statistics.median(run.peak_fraction for run in runs),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per contender (default 5)")
    parser.add_argument("--mnist-repeats", type=int, default=2, help="timed 60k-image epochs per contender (default 2)")
    parser.add_argument("--skip-mnist", action="store_true", help="skip the 60k-image epoch")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    threadpool_limits(args.threads)  # numpy/BLAS threads for scikit-learn, so every contender gets the same cores
    device = resolve_device(args.device)
    digits = explainer.load_dataset("digits")
    load_before = os.getloadavg()[0]
    results = {
        "device": describe_device(device),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "load_average_1min_before": load_before,
        "matmul_peak_gflops": matmul_peak_gflops(device),
    }
    sections = [("time_to_97", lambda: time_to_target(digits, device, args.repeats)),
                ("telemetry_overhead", lambda: telemetry_overhead(digits, device, args.repeats))]
    if not args.skip_mnist:
        sections.append(("mnist_size_epoch", lambda: mnist_size_epoch(device, args.mnist_repeats)))
    for name, measure in sections:
        start = time.perf_counter()
        results[name] = measure()
        print(f"[{name}: {time.perf_counter() - start:.0f} s]", file=sys.stderr, flush=True)
    results["load_average_1min_after"] = os.getloadavg()[0]
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
        return 0
    t97, tel = results["time_to_97"], results["telemetry_overhead"]
    print(f"{results['device']}, {results['threads']} threads, torch {results['torch']}, "
          f"load average {load_before:.1f} → {results['load_average_1min_after']:.1f}")
    print(f"matmul peak: {results['matmul_peak_gflops']:.0f} GFLOP/s")
    print(f"time to ≥{TARGET:.0%} on digits (median of {args.repeats}):")
    print(f"  fit()            {t97['fit']['median_seconds']:.3f} s  (whole call {t97['fit']['median_call_seconds']:.3f} s, "
          f"epochs {t97['fit']['epochs']}, {t97['fit']['median_gflops_per_second']:.1f} GFLOP/s = "
          f"{t97['fit']['median_peak_fraction']:.0%} of peak)")
    print(f"  plain loop       {t97['plain']['median_seconds']:.3f} s  (epochs {t97['plain']['epochs']})")
    print(f"  sklearn MLP(100) {t97['sklearn']['median_seconds']:.3f} s  (epochs {t97['sklearn']['epochs']})")
    print(f"  fit / plain = {t97['fit_over_plain']:.2f}× (loop), {t97['fit_call_over_plain']:.2f}× (whole call)")
    ratios = ", ".join(f"{mode} {ratio:.2f}×" for mode, ratio in tel["ratio_to_plain"].items())
    print(f"telemetry overhead over {tel['epochs']} epochs, vs the plain loop: {ratios}")
    if "mnist_size_epoch" in results:
        m = results["mnist_size_epoch"]
        print(f"MNIST-size CNN ({m['parameters']:,} params, {m['flops_per_sample'] / 1e6:.2f} MFLOP/sample), one 60k epoch "
              f"(median of {m['repeats']}): fit {m['fit_epoch_seconds']:.2f} s, plain {m['plain_epoch_seconds']:.2f} s "
              f"= {m['fit_over_plain']:.2f}× "
              f"({m['gflops_per_second']:.0f} GFLOP/s = {m['peak_fraction']:.0%} of peak)")
    print(f"receipt: {t97['fit']['last_receipt']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
