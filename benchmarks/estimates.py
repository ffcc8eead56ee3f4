"""Do the long calls' estimates hold? The README's examples run as written; each one's printed estimate beside its
measured wall time (target: within 1.5× either way).

Every call prints its estimate on stderr before the work (``≈ 12 s for 8 image(s)``, ``about 25 s for the 11
still to do``, ``estimated 41 s``); this script captures it, times the call and prints measured / estimated.
A sweep's estimate covers the runs after its timed first run, so its first run is added to the estimate.

    .venv/bin/python benchmarks/estimates.py [--threads 1] [--only NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

import explainer

UNITS = {"ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
DURATION = r"([0-9][0-9,.]*)\s*(ms|s|min|h)\b"
TARGET = 1.5


def seconds_in(text: str, pattern: str) -> float | None:
    """The first duration after ``pattern`` in ``text`` (``4.2 s``, ``2.5 min``, ``850 ms``), in seconds."""
    found = re.search(pattern + r"\s*" + DURATION, text)
    if not found:
        return None
    return float(found.group(1).replace(",", "")) * UNITS[found.group(2)]


def _digits_run() -> tuple[explainer.Dataset, explainer.TrainingRun]:
    digits = explainer.load_dataset("digits")
    net = explainer.build_model("cnn", digits, seed=0)
    return digits, explainer.fit(net, digits, epochs=5, seed=0, device="cpu")


def cases() -> dict[str, tuple[Callable[[], Callable[[], Any]], str, Callable[[str], float]]]:
    """name → (set-up returning the README's call – so a case left out by --only costs nothing –, the line it is
    from, how its estimate is read from stderr)."""
    def faithfulness() -> Any:
        model, cat = explainer.load_model(), explainer.sample_images()["cat"]
        gradcam = explainer.explain(model, cat, method="gradcam")
        return lambda: explainer.check_faithfulness(model, gradcam)

    def evaluate() -> Any:
        digits, run = _digits_run()
        return lambda: explainer.evaluate(run.classifier, digits, methods=["saliency", "integrated_gradients"], limit=8)

    def sweep() -> Any:
        task = explainer.TrainingTask(dataset="digits", arch="mlp", epochs=4)
        return lambda: explainer.sweep(task, {"lr": [0.01, 10.0], "activation": ["relu", "sigmoid"]}, seeds=3)

    def transfer() -> Any:
        return lambda: explainer.compare_transfer("textures", shots=(1, 5), seeds=3, steps=30,
                                                  strategies=("linear_probe", "pixels"))

    def sweep_command() -> Any:
        from explainer.cli import main as cli

        def run() -> Any:
            with contextlib.redirect_stdout(io.StringIO()):
                return cli(["sweep", "--dataset", "digits", "--arch", "mlp", "--grid", "lr=0.001,0.01,0.1",
                            "--grid", "activation=relu,tanh,sigmoid", "--seeds", "5", "--json"])
        return run

    def sweep_estimate(text: str) -> float:
        first, rest = seconds_in(text, r"one run took"), seconds_in(text, r"so about")
        return float("nan") if first is None or rest is None else first + rest

    def plain(pattern: str) -> Callable[[str], float]:
        def read(text: str) -> float:
            value = seconds_in(text, pattern)
            return float("nan") if value is None else value
        return read

    return {
        "check_faithfulness (Myth 1)": (faithfulness, "explainer.check_faithfulness(model, gradcam)", plain("≈")),
        "evaluate (training → inspection)": (evaluate, "explainer.evaluate(trained, digits, methods=[...], limit=8)",
                                             plain("≈")),
        "sweep (Myth 2)": (sweep, "explainer.sweep(task, {lr, activation}, seeds=3)", sweep_estimate),
        "explainer sweep (README command)": (sweep_command, "explainer sweep --dataset digits --arch mlp --grid "
                                             "lr=0.001,0.01,0.1 --grid activation=relu,tanh,sigmoid --seeds 5 --json",
                                             sweep_estimate),
        "compare_transfer (Myth 3)": (transfer, "explainer.compare_transfer('textures', shots=(1, 5), seeds=3, "
                                                "steps=30, ...)", plain(r"estimated")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", nargs="+", default=None, help="run only the cases whose name starts with these")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, (setup, line, read) in cases().items():
        if args.only and not any(name.startswith(prefix) for prefix in args.only):
            continue
        call = setup()  # untimed: loading the model or training the digits CNN the README's call starts from
        captured = io.StringIO()
        started = time.perf_counter()
        with contextlib.redirect_stderr(captured):
            call()
        measured = time.perf_counter() - started
        text = captured.getvalue()
        estimate = read(text)
        ratio = measured / estimate if estimate and estimate == estimate else float("nan")
        rows.append({"call": name, "readme": line, "estimate_s": estimate, "measured_s": measured, "ratio": ratio,
                     "within_target": 1 / TARGET <= ratio <= TARGET,
                     "estimate_line": next((ln.strip() for ln in text.replace("\r", "\n").splitlines()
                                            if "≈" in ln or "about" in ln or "estimated" in ln), "")})
        print(f"  {name}: done", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"threads": args.threads, "target": TARGET, "rows": rows}, indent=2))
        return
    print(f"estimates against measured wall time (threads {args.threads}; target within {TARGET}× either way)")
    for row in rows:
        print(f"  {row['call']:36s} estimate {row['estimate_s']:7.1f} s  measured {row['measured_s']:7.1f} s  "
              f"measured/estimate {row['ratio']:.2f}  {'ok' if row['within_target'] else 'OUTSIDE'}")
        print(f"      {row['estimate_line'][:150]}")


if __name__ == "__main__":
    main()
