"""Transfer learning vs training from scratch, from the command line; saves the curve as HTML.

    python examples/transfer_curve.py                                  # textures, the full curve
    python examples/transfer_curve.py --dataset digits --shots 1,5,20 --seeds 2 --html digits.html

Uses only the public API: ``explainer.compare_transfer`` and ``explainer.plots.transfer``.
"""

from __future__ import annotations

import argparse
import sys

import torch

import explainer
from explainer.plots.transfer import transfer_curve


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="textures", help="textures, digits, cifar10 or imagefolder:PATH")
    parser.add_argument("--model", default=explainer.BUNDLED_MODEL, help="pretrained timm backbone")
    parser.add_argument("--shots", default="1,2,5,10,20,50", help="labelled examples per class, comma-separated")
    parser.add_argument("--seeds", type=int, default=5, help="samples per shot level (5: the fewest that can name a winner)")
    names = ",".join(explainer.STRATEGIES)
    parser.add_argument("--strategies", default=names, help=f"comma-separated, from: {names}")
    parser.add_argument("--steps", type=int, default=100, help="training steps of the networks")
    parser.add_argument("--image-size", type=int, default=64, help="input size in pixels")
    parser.add_argument("--out", default=None, help="results file (.jsonl); a rerun resumes from it")
    parser.add_argument("--html", default="transfer_curve.html", help="where to save the figure")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the example; the exit status."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        shots = [int(k) for k in args.shots.split(",")]
    except ValueError:
        print(f"--shots must be comma-separated whole numbers, got {args.shots!r}", file=sys.stderr)
        return 2

    def progress(done: int, total: int, row: dict) -> None:
        print(f"[{done}/{total}] {row['strategy']:<12} {row['shots']:>3} per class, seed {row['seed']}: "
              f"{row['accuracy']:.1%} in {row['seconds']:.1f} s", flush=True)

    try:
        results = explainer.compare_transfer(
            args.dataset, args.model, shots=shots, seeds=args.seeds, strategies=args.strategies.split(","),
            image_size=args.image_size, steps=args.steps, out=args.out, progress=progress,
        )
    except explainer.ExplainerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = results.summary()
    summary["cell"] = [
        f"{100 * row.mean:.1f}" + ("" if row.n < 2 else f" [{100 * row.ci_low:.1f}–{100 * row.ci_high:.1f}]")
        for row in summary.itertuples()
    ]
    table = summary.pivot(index="strategy", columns="shots", values="cell").loc[results.strategies]
    print(f"\nTest accuracy (%), mean [95 % interval] over {args.seeds} seeds – {results.dataset}, "
          f"chance {results.chance:.1%}")
    print(table.to_string())
    print("\n" + results.verdict())
    transfer_curve(results).write_html(args.html, include_plotlyjs="cdn")
    print(f"\nFigure saved to {args.html}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
