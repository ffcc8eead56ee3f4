"""Why local and Ray rows can differ in the last digits: torch's thread count, not the backend.

``explainer.evaluate`` seeds every random draw by ``(seed, image)``, so a Ray worker and the local process give
the same rows when they compute with the same number of torch threads (``tests/test_evaluate.py`` runs both
with one thread and checks the rows equal). A Ray worker computes with ``num_cpus`` threads (default 1); a
local process with torch's default (the cores). Convolutions then sum in another order and the maps, and with
them the deletion curves, differ in the last bits. This script evaluates the bundled model on the first
``--images`` sample photos (saliency and Grad-CAM, every metric) in two fresh processes, with 1 and with
``--threads`` torch threads, and prints the largest difference on any summary row.

    .venv/bin/python benchmarks/reproducibility.py [--images 3] [--threads 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

_CHILD = """
import json, sys, torch
torch.set_num_threads(int(sys.argv[1]))
import explainer
result = explainer.evaluate(explainer.load_model(), "samples", methods=["saliency", "gradcam"],
                            limit=int(sys.argv[2]), steps=10, randomization_steps=2, progress=False)
print(json.dumps(result.summary().to_dict(orient="records")))
"""


def summary_at(threads: int, images: int) -> tuple[list[dict], float]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(threads), str(images)], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    one, one_seconds = summary_at(1, args.images)
    many, many_seconds = summary_at(args.threads, args.images)
    differences = sorted(((abs(a[key] - b[key]), a["method"], a["metric"], key) for a, b in zip(one, many, strict=True)
                          for key in a if isinstance(a[key], float) and isinstance(b.get(key), float)), reverse=True)
    report = {"images": args.images, "threads": [1, args.threads], "seconds": [one_seconds, many_seconds],
              "max_difference": differences[0][0] if differences else 0.0,
              "largest": [list(row) for row in differences[:3]]}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"evaluate, bundled model, {args.images} photos: 1 thread {one_seconds:.0f} s, {args.threads} threads "
          f"{many_seconds:.0f} s; largest difference on a summary row {report['max_difference']:.2g} "
          f"({', '.join(f'{m}/{metric}/{key} {d:.2g}' for d, m, metric, key in differences[:3])})")


if __name__ == "__main__":
    main()
