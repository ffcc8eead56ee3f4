"""Coverage of the nominal 95 % intervals by simulation, and what one interval costs.

    python benchmarks/coverage.py [--replications 2000]

Prints, for normal, lognormal (σ = 0.5) and accuracy-like samples at n = 3, 5, 10, 30, the share of intervals
that contain the true mean: Student-t (the package's default), the studentized bootstrap (from n = 10) and the
percentile bootstrap the package used before 0.3 (computed here for comparison).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from explainer import stats

DISTRIBUTIONS = {
    "normal": (lambda rng, shape: rng.normal(2.0, 1.0, shape), 2.0),
    "lognormal(0.5)": (lambda rng, shape: rng.lognormal(0.0, 0.5, shape), float(np.exp(0.125))),
    "accuracy (50 images, 80 %)": (lambda rng, shape: rng.binomial(50, 0.8, shape) / 50.0, 0.8),
}


def percentile(values: np.ndarray, seed: int) -> stats.Interval:
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(2000, values.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    return stats.Interval(float(values.mean()), float(low), float(high), values.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replications", type=int, default=2000)
    args = parser.parse_args()
    makers = {
        "t": lambda row, i: stats.mean_interval(row),
        "studentized": lambda row, i: stats.mean_interval(row, method="studentized", seed=i),
        "percentile (old)": percentile,
    }
    print(f"coverage of nominal 95 % intervals, {args.replications} replications per cell")
    print(f"{'samples':28s} {'n':>3s} " + " ".join(f"{name:>17s}" for name in makers))
    for name, (draw, truth) in DISTRIBUTIONS.items():
        for n in (3, 5, 10, 30):
            samples = draw(np.random.default_rng(n), (args.replications, n))
            cells = []
            for method, make in makers.items():
                if method == "studentized" and n < stats.BOOTSTRAP_MIN:
                    cells.append(f"{'(n < 10)':>17s}")
                    continue
                covered = np.mean([not make(row, i).excludes(truth) for i, row in enumerate(samples)])
                cells.append(f"{covered:17.1%}")
            print(f"{name:28s} {n:3d} " + " ".join(cells))
    values = np.random.default_rng(0).normal(size=(1000, 10))
    started = time.perf_counter()
    for row in values:
        stats.compare("a", row, "b", row[::-1], higher_is_better=True)
    print(f"one paired comparison (t-interval + t-test, n = 10): {(time.perf_counter() - started):.3f} ms")


if __name__ == "__main__":
    main()
