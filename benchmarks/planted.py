"""The planted benchmark's cost, and TracIn (Captum) against a bare loop of the same gradient dot products.

1. Seconds for the report card at ``--seeds`` seeds (default 5; ``--quick`` for the small settings) and the
   share of that time spent training and in each explanation kind (``report.time_shares()``).
2. TracIn self-influence of every training image of one planted network (``explainer.learn.influence``,
   Captum's TracInCP over the kept checkpoints) against a bare PyTorch loop that computes the same sum over
   checkpoints of ``lr · ‖∇ loss‖²`` with ``torch.func`` per-example gradients in the same layers; the ratio
   (target ≤ 1.3×) and the largest relative difference of the scores.

    python benchmarks/planted.py --seeds 5 --threads 1
    python benchmarks/planted.py --skip-report --repeats 3
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

import explainer
from explainer.evidence.planted import planted_benchmark
from explainer.evidence.planted_settings import PlantedSettings
from explainer.learn.influence import gradient_layers, self_influence


def bare_self_influence(run: explainer.TrainingRun, x: torch.Tensor, y: torch.Tensor, layers: list[str],
                        batch_size: int = 64) -> torch.Tensor:
    """Σ over checkpoints of lr · ‖∇ loss(z)‖² for every training image z, in ``layers``' parameters only."""
    model = run.model.eval()
    lr = float(run.config["lr"])
    total = torch.zeros(len(y))
    for state in run.checkpoints:
        params = {k: v for k, v in state.items() if k.rpartition(".")[0] in layers}
        buffers = {k: v for k, v in state.items() if k not in params}

        def loss(p: dict, xi: torch.Tensor, yi: torch.Tensor, buffers: dict = buffers) -> torch.Tensor:
            logits = functional_call(model, {**p, **buffers}, (xi[None],))
            return F.cross_entropy(logits, yi[None], reduction="sum")

        per_example = vmap(grad(loss), in_dims=(None, 0, 0))
        for start in range(0, len(y), batch_size):
            grads = per_example(params, x[start : start + batch_size], y[start : start + batch_size])
            total[start : start + batch_size] += lr * sum(g.flatten(1).square().sum(1) for g in grads.values())
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the small settings of --quick")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each self-influence computation")
    parser.add_argument("--skip-report", action="store_true", help="only the TracIn comparison")
    parser.add_argument("--batch", type=int, default=64, help="examples per gradient batch (both sides)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if not args.skip_report:
        report = planted_benchmark(seeds=args.seeds, quick=args.quick, progress=False)
        shares = report.time_shares()
        total = sum(shares.values())
        print(f"report card at {args.seeds} seeds ({'quick' if args.quick else 'full'} settings): "
              f"{report.seconds:.1f} s wall (estimate {report.estimated_seconds:.1f} s)")
        for part, seconds in shares.items():
            print(f"  {part:<10} {seconds:8.1f} s  {seconds / total:6.1%}")

    settings = PlantedSettings(methods=())
    data = explainer.load_dataset("planted", n_train=settings.n_train, n_test=settings.n_test, seed=0)
    network = explainer.build_model("cnn", data, seed=0, channels=settings.channels, pool="each", hidden=settings.hidden)
    run = explainer.fit(network, data, epochs=settings.epochs, seed=0, telemetry="off", keep_checkpoints=True)
    layers = gradient_layers(run.model)
    timings: dict[str, list[float]] = {"tracin": [], "bare": []}
    scores: dict[str, torch.Tensor] = {}
    for _ in range(args.repeats):
        started = time.perf_counter()
        scores["tracin"] = self_influence(run, data, batch_size=args.batch, progress=False)
        timings["tracin"].append(time.perf_counter() - started)
        started = time.perf_counter()
        scores["bare"] = bare_self_influence(run, data.x_train, data.y_train, layers, batch_size=args.batch)
        timings["bare"].append(time.perf_counter() - started)
    best = {name: min(values) for name, values in timings.items()}
    difference = float(((scores["tracin"] - scores["bare"]).abs() / scores["bare"].abs().clamp_min(1e-12)).max())
    print(f"self-influence of {len(data.y_train)} images over {len(run.checkpoints)} checkpoints in {layers} "
          f"({args.threads} thread(s), batch {args.batch}, best of {args.repeats}): TracInCP {best['tracin']:.2f} s, bare loop "
          f"{best['bare']:.2f} s, ratio {best['tracin'] / best['bare']:.2f}× (target ≤ 1.3×); largest relative "
          f"difference {difference:.1e}")


if __name__ == "__main__":
    main()
