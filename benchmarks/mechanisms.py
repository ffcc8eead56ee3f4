"""Key numbers of "down to mechanisms", each measured against a peer or a control in the same run.

1. Patching speed: ``explainer.patch`` over every feature layer of the bundled EfficientNet-Lite0 for 8 pairs (the
   cat photo against each other sample photo and against its blurred, noisy and filled copy) vs its forward
   floor – the clean and corrupted batches plus one forward per site and pair in the same batches, no hooks
   (target ≤ 1.2×) – and vs the loop a user writes by hand (one forward hook per layer that returns the clean
   activation, one forward per layer and pair), with the largest difference of the restored fractions (they
   must agree).
1b. Concepts speed: ``explainer.concepts`` on the six sample photos cut into 6 × 6 crops (216 crops, 10 concepts
   at the Grad-CAM layer) vs the forwards it needs – the crops once, the photos twice and once per concept
   (target ≤ 1.5×).
2. Patching against a planted truth: a small CNN trained on ``known_answer`` (the class is the quadrant of a
   bright square); each test image's square is filled with the background colour, and patching the first
   conv layer's positions *inside the square* must restore the answer while an equally large set of
   unchanged positions (the control) must not. Mean restored fraction with its 95 % interval over images.
2b. Concepts against the planted truth: on the same CNN, NMF concepts of class 0's first 10 test images at every
   layer with a spatial map ("1", "2", "4", "5") and 4, 8 and 16 concepts; for each setting the largest share
   of one concept's heatmap mass inside the square (issue 19's target: ≥ 0.5) and that concept's importance.
3. TCAV: seconds of ``explainer.tcav`` with Kim et al.'s test (10 random concepts, two layers) vs Captum's TCAV
   with its default classifier on the same pairs (concept vs each random concept, and the random-vs-random null
   Kim et al. test against – what a Captum user runs for the test; the t-test itself is not timed), the
   permutation test's seconds, both tests' Holm-adjusted p-values for the class's own concept, and how often
   each test calls an uninformative concept (``--null-size`` random training images, drawn like the random
   pool) significant at some layer – its false-positive rate at alpha 0.05 over ``--null-sets`` sets, with a
   Clopper–Pearson interval.

Usage: ``python benchmarks/mechanisms.py [--threads 1] [--parts patching_speed concepts_speed patching_truth concepts_truth tcav]
[--null-sets 40] [--null-size 15] [--json]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import explainer
from explainer.models.layers import feature_layers


def _hand_patch(model: explainer.Classifier, clean: torch.Tensor, corrupted: torch.Tensor, names: list[str],
                target: int) -> np.ndarray:
    """What a user writes: record the clean activations, then one hooked forward per layer."""
    module = model.module.eval()
    layers = {name: model.get_layer(name) for name in names}
    stored: dict[str, torch.Tensor] = {}
    handles = [layer.register_forward_hook(lambda _m, _i, out, n=name: stored.__setitem__(n, out))
               for name, layer in layers.items()]
    with torch.no_grad():
        clean_logit = float(module(clean)[0, target])
        for handle in handles:
            handle.remove()
        corrupted_logit = float(module(corrupted)[0, target])
        restored = []
        for name, layer in layers.items():
            handle = layer.register_forward_hook(lambda _m, _i, _out, n=name: stored[n])
            restored.append((float(module(corrupted)[0, target]) - corrupted_logit) / (clean_logit - corrupted_logit))
            handle.remove()
    return np.array(restored)


def _pairs(model: explainer.Classifier) -> tuple[torch.Tensor, torch.Tensor]:
    """8 pairs: the cat photo against each other sample photo and against its blurred, noisy and filled copy."""
    photos = explainer.sample_images()
    cat = model.to_pixels([photos.pop("cat")])
    corrupted = torch.cat([model.to_pixels(list(photos.values()))]
                          + [explainer.corrupt(model, cat, how) for how in ("blur", "noise", "fill")])
    return cat.expand(len(corrupted), -1, -1, -1).clone(), corrupted


def _forward_floor(model: explainer.Classifier, clean: torch.Tensor, corrupted: torch.Tensor, sites: int,
                   batch: int) -> float:
    """Seconds of the forwards patching cannot avoid: the clean and the corrupted batch, then one forward per
    site and pair in batches of ``batch`` – without hooks or the bookkeeping around them."""
    inputs, others = model.preprocess(clean), model.preprocess(corrupted)
    jobs = len(others) * sites
    started = time.perf_counter()
    with torch.inference_mode():
        model.module(inputs)
        model.module(others)
        for first in range(0, jobs, batch):
            model.module(others[torch.arange(first, min(first + batch, jobs)) % len(others)])
    return time.perf_counter() - started


def patching_speed(model: explainer.Classifier) -> dict:
    from explainer.inside.patching import CPU_BATCH

    clean, corrupted = _pairs(model)
    names = list(feature_layers(model))
    started = time.perf_counter()
    ours = explainer.patch(model, clean, corrupted, layers=names, progress=False)
    ours_seconds = time.perf_counter() - started
    floor_seconds = _forward_floor(model, clean, corrupted, len(names), CPU_BATCH)
    started = time.perf_counter()
    target = ours.targets[0]
    hand = np.stack([_hand_patch(model, model.preprocess(clean[i : i + 1]), model.preprocess(corrupted[i : i + 1]),
                                 names, target) for i in range(len(corrupted))])
    hand_seconds = time.perf_counter() - started
    return {"layers": len(names), "pairs": len(corrupted), "explainer_s": ours_seconds, "hand_loop_s": hand_seconds,
            "floor_s": floor_seconds, "floor_ratio": ours_seconds / floor_seconds,
            "speed_ratio": hand_seconds / ours_seconds, "max_abs_difference": float(np.nanmax(np.abs(ours.restored - hand))),
            "best_site": ours.best_site, "sites_restoring_all": int(np.sum(ours.means >= 0.99))}


def concepts_speed(model: explainer.Classifier, grid: int = 6, n_concepts: int = 10) -> dict:
    """``explainer.concepts`` on the sample photos cut into grid × grid crops against the forwards it needs:
    the crops once, the photos twice (activations, logits) and once per concept (its ablation)."""
    from explainer.inside.concepts import grid_crops
    from explainer.models.layers import find_cam_layer

    photos = list(explainer.sample_images().values())
    layer = find_cam_layer(model).name
    started = time.perf_counter()
    found = explainer.concepts(model, photos, layer=layer, n_concepts=n_concepts, grid=grid, progress=False)
    ours_seconds = time.perf_counter() - started
    pixels = model.to_pixels(photos)
    crops = grid_crops(pixels, grid, model.input_size)
    started = time.perf_counter()
    with torch.inference_mode():
        model.module(model.normalize(crops))
        for _ in range(2 + n_concepts):
            model.module(model.normalize(pixels))
    floor_seconds = time.perf_counter() - started
    return {"crops": len(crops), "concepts": n_concepts, "layer": layer, "explainer_s": ours_seconds,
            "floor_s": floor_seconds, "floor_ratio": ours_seconds / floor_seconds, "verdict": found.verdict()}


def known_answer_cnn(seed: int = 0) -> tuple[explainer.Classifier, explainer.Dataset]:
    torch.manual_seed(seed)
    data = explainer.load_dataset("known_answer", n_train=600, n_test=64, seed=0)
    net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(32 * 8 * 8, data.num_classes))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _epoch in range(6):
        for batch in torch.randperm(len(data.y_train)).split(32):
            optimizer.zero_grad()
            F.cross_entropy(net(data.x_train[batch]), data.y_train[batch]).backward()
            optimizer.step()
    net.eval()
    return explainer.Classifier.from_module(net, labels=data.class_names, input_size=32), data


def patching_truth(model: explainer.Classifier, data: explainer.Dataset, images: int = 24) -> dict:
    x, masks = data.x_test[:images], data.masks_test[:images, 0]
    filled = explainer.corrupt(model, x, "fill", region=masks)
    rng = np.random.default_rng(0)
    square, control = [], []
    for i in range(len(x)):
        square.append(explainer.patch(model, x[i : i + 1], filled[i : i + 1], layers="1", region=masks[i],
                                      progress=False).restored[0, 0])
        outside = np.flatnonzero(~masks[i].numpy().ravel())
        chosen = np.zeros(masks[i].numel(), dtype=bool)
        chosen[rng.choice(outside, size=int(masks[i].sum()), replace=False)] = True
        control.append(explainer.patch(model, x[i : i + 1], filled[i : i + 1], layers="1",
                                       region=chosen.reshape(masks[i].shape), progress=False).restored[0, 0])
    inside, other = explainer.stats.mean_interval(square), explainer.stats.mean_interval(control)
    return {"images": len(x), "square_restored": inside.mean, "square_ci": [inside.low, inside.high],
            "control_restored": other.mean, "control_ci": [other.low, other.high],
            "square_beats_control": bool(explainer.stats.paired_difference(square, control).low > 0)}


def concepts_truth(data: explainer.Dataset, images: int = 10, seeds: int = 5) -> dict:
    """Per network seed, layer and concept count: the best concept's share of heatmap mass in the square – on the
    cells the square covers, and on the cells whose receptive field touches it (``mask_on_layer``) – beside that
    concept's share on the distractor stripe's receptive-field cells and its importance."""
    import warnings

    from explainer.inside.concepts import _activations, concept_maps
    from explainer.models.layers import mask_on_layer

    chosen = data.y_test == 0
    x, masks = data.x_test[chosen][:images], data.masks_test[chosen][:images]
    stripe_pixels = (x.mean(1, keepdim=True) > 0.45) & ~masks.bool()  # bright, not the square: the stripe
    rows = []
    for seed in range(seeds):
        model, _ = known_answer_cnn(seed)
        for layer in ("1", "4", "5"):
            square, stripe = mask_on_layer(model, layer, masks), mask_on_layer(model, layer, stripe_pixels)
            for count in (4, 8, 16):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # NMF's convergence warnings at 16 concepts
                    found = explainer.concepts(model, x, layer=layer, n_concepts=count, progress=False)
                maps = concept_maps(found.directions, _activations(model, layer, x))
                total = maps.sum((0, 2, 3)).clamp_min(1e-12)
                covered = F.adaptive_max_pool2d(masks.float(), maps.shape[-2:])
                in_covered = (maps * covered).sum((0, 2, 3)) / total
                in_square, on_stripe = (maps * square).sum((0, 2, 3)) / total, (maps * stripe).sum((0, 2, 3)) / total
                best = int(in_square.argmax())
                rows.append({"seed": seed, "layer": layer, "concepts": count,
                             "best_share_in_square": float(in_square[best]), "square_cells": float(square.float().mean()),
                             "its_share_on_stripe": float(on_stripe[best]), "stripe_cells": float(stripe.float().mean()),
                             "best_share_in_covered_cells": float(in_covered.max()),
                             "covered_cells": float(covered.mean()), "importance": float(found.importance[best].mean)})
    summary = []
    for layer in ("1", "4", "5"):
        for count in (4, 8, 16):
            chosen_rows = [r for r in rows if r["layer"] == layer and r["concepts"] == count]
            share = explainer.stats.mean_interval([r["best_share_in_square"] for r in chosen_rows])
            stripe = explainer.stats.mean_interval([r["its_share_on_stripe"] for r in chosen_rows])
            summary.append({"layer": layer, "concepts": count, "in_square": share.to_dict(), "on_stripe": stripe.to_dict(),
                            "seeds_at_target": sum(r["best_share_in_square"] >= 0.5 for r in chosen_rows),
                            "square_cells": chosen_rows[0]["square_cells"], "stripe_cells": chosen_rows[0]["stripe_cells"],
                            "covered_max": max(r["best_share_in_covered_cells"] for r in chosen_rows)})
    return {"images": len(x), "seeds": seeds, "target": 0.5, "rows": rows, "summary": summary,
            "met": any((r["in_square"]["ci_low"] or 0) >= 0.5 for r in summary)}


def _captum_tcav(model: explainer.Classifier, concept: torch.Tensor, randoms: list[torch.Tensor], layers: list[str],
                 inputs: torch.Tensor, target: int) -> float:
    from captum.concept import TCAV, Concept
    from captum.concept._utils.classifier import DefaultClassifier

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        tcav = TCAV(model.module, layers=layers, classifier=DefaultClassifier(), save_path=folder)
        concepts = [Concept(0, "concept", [model.normalize(concept)])]
        concepts += [Concept(i + 1, f"random_{i}", [model.normalize(r)]) for i, r in enumerate(randoms)]
        experimental = [[concepts[0], c] for c in concepts[1:]]  # concept vs random i, as Kim et al.
        experimental += [[concepts[i], concepts[i + 1]] for i in range(1, len(concepts) - 1)]  # their null
        tcav.interpret(model.normalize(inputs), experimental_sets=experimental, target=target)
    return time.perf_counter() - started


def _tcav_sets(data: explainer.Dataset, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first 30 class-0 training images (the square in quadrant 0: what class 0 is) and every other training
    image, shuffled by ``seed``: a concept and where random images come from, never overlapping."""
    order = torch.randperm(len(data.y_train), generator=torch.Generator().manual_seed(seed))
    x, y = data.x_train[order], data.y_train[order]
    square = torch.nonzero(y == 0).flatten()[:30]
    others = torch.ones(len(y), dtype=torch.bool)
    others[square] = False
    return x[square], x[others]


def tcav_numbers(model: explainer.Classifier, data: explainer.Dataset, null_sets: int, null_size: int) -> dict:
    """TCAV's speed against Captum, both tests on the causal concept, and both tests' false-positive rates."""
    from scipy.stats import binomtest

    square, rest = _tcav_sets(data, seed=1)
    pool, inputs, layers = rest[:400], data.x_test[data.y_test == 0], ["1", "4"]
    started = time.perf_counter()
    kim = explainer.tcav(model, square, pool, layers=layers, target=0, inputs=inputs, test="kim", progress=False)
    kim_seconds = time.perf_counter() - started
    randoms = [pool[i * 30 : (i + 1) * 30] for i in range(10)]
    captum_seconds = _captum_tcav(model, square, randoms, layers, inputs, 0)
    started = time.perf_counter()
    causal = explainer.tcav(model, square, pool, layers=layers, target=0, inputs=inputs, progress=False)
    permutation_seconds = time.perf_counter() - started
    false_positive = {"kim": 0, "permutation": 0}
    for k in range(null_sets):  # a concept drawn like the random images: any significant layer is a false positive
        shuffled = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(100 + k))]
        concept, randoms_k = shuffled[:null_size], shuffled[null_size : null_size + 8 * null_size]
        for test in false_positive:
            result = explainer.tcav(model, concept, randoms_k, layers=layers, target=0, inputs=inputs, test=test,
                                    seed=k, progress=False)
            false_positive[test] += any(row.significant for row in result.layers)
    rates = {}
    for test, count in false_positive.items():
        interval = binomtest(count, null_sets).proportion_ci(confidence_level=0.95, method="exact")
        rates[test] = {"significant": count, "rate": count / null_sets, "ci": [interval.low, interval.high]}
    return {"explainer_kim_s": kim_seconds, "explainer_permutation_s": permutation_seconds,
            "captum_default_s": captum_seconds, "ratio": captum_seconds / kim_seconds,
            "causal_scores": [row.score.mean for row in causal.layers],
            "causal_null": [row.null.mean for row in causal.layers],
            "causal_p": {"kim": [row.p_adjusted for row in kim.layers],
                         "permutation": [row.p_adjusted for row in causal.layers]},
            "null_sets": null_sets, "null_size": null_size, "false_positives": rates}


PARTS = ("patching_speed", "concepts_speed", "patching_truth", "concepts_truth", "tcav")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--null-sets", type=int, default=40)
    parser.add_argument("--null-size", type=int, default=15, help="images per uninformative concept")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS, help="what to measure (default all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    bundled = explainer.load_model()
    small, data = known_answer_cnn()
    measure = {"patching_speed": lambda: patching_speed(bundled), "concepts_speed": lambda: concepts_speed(bundled),
               "patching_truth": lambda: patching_truth(small, data),
               "concepts_truth": lambda: concepts_truth(data),
               "tcav": lambda: tcav_numbers(small, data, args.null_sets, args.null_size)}
    report = {"threads": args.threads, **{part: measure[part]() for part in args.parts}}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    if "patching_speed" in report:
        speed = report["patching_speed"]
        print(f"patching, {speed['layers']} layers × {speed['pairs']} pairs: explainer {speed['explainer_s']:.1f} s, "
              f"forward floor {speed['floor_s']:.1f} s (ours / floor = {speed['floor_ratio']:.2f}; target ≤ 1.2), "
              f"hand-written hook loop {speed['hand_loop_s']:.1f} s (hand loop time / ours = {speed['speed_ratio']:.2f}), "
              f"max difference {speed['max_abs_difference']:.1e}; {speed['sites_restoring_all']} layers restore ≥ 99 %")
    if "concepts_speed" in report:
        found = report["concepts_speed"]
        print(f"concepts, {found['crops']} crops, {found['concepts']} concepts at {found['layer']}: explainer "
              f"{found['explainer_s']:.1f} s, forward floor {found['floor_s']:.1f} s (ours / floor = "
              f"{found['floor_ratio']:.2f}; target ≤ 1.5)")
    if "patching_truth" in report:
        truth = report["patching_truth"]
        print(f"patching vs planted truth ({truth['images']} images): square {truth['square_restored']:.2f} "
              f"[{truth['square_ci'][0]:.2f}, {truth['square_ci'][1]:.2f}] vs control {truth['control_restored']:.2f} "
              f"[{truth['control_ci'][0]:.2f}, {truth['control_ci'][1]:.2f}]; square beats control: "
              f"{truth['square_beats_control']}")
    if "concepts_truth" in report:
        truth = report["concepts_truth"]
        print(f"concepts vs planted truth ({truth['images']} images of class 0, {truth['seeds']} network seeds; target: "
              f"one concept with ≥ {truth['target']:.0%} of its mass in the square as the layer sees it – cells whose "
              f"receptive field touches it; met (interval's low end ≥ target): {truth['met']}):")
        for row in truth["summary"]:
            share, stripe = row["in_square"], row["on_stripe"]
            print(f"  layer {row['layer']}, {row['concepts']:>2} concepts: best {share['mean']:.2f} [{share['ci_low']:.2f}, "
                  f"{share['ci_high']:.2f}] in the square ({row['square_cells']:.1%} of the cells), the same concept "
                  f"{stripe['mean']:.2f} on the stripe ({row['stripe_cells']:.1%}); {row['seeds_at_target']}/"
                  f"{truth['seeds']} seeds ≥ target; on the covered cells only ≤ {row['covered_max']:.2f}")
    if "tcav" not in report:
        return
    tcav = report["tcav"]
    rates = tcav["false_positives"]
    print(f"TCAV (Kim's test, the same pairs): explainer {tcav['explainer_kim_s']:.1f} s vs Captum default "
          f"{tcav['captum_default_s']:.1f} s (Captum time / ours = {tcav['ratio']:.2f}); permutation test "
          f"{tcav['explainer_permutation_s']:.1f} s. Causal concept: scores {np.round(tcav['causal_scores'], 2).tolist()} "
          f"vs null {np.round(tcav['causal_null'], 2).tolist()}, Holm-adjusted p permutation "
          f"{np.round(tcav['causal_p']['permutation'], 3).tolist()}, Kim {np.round(tcav['causal_p']['kim'], 4).tolist()}")
    for test, rate in rates.items():
        print(f"  {test}: {rate['significant']} of {tcav['null_sets']} uninformative concepts ({tcav['null_size']} "
              f"random images each) called significant at some layer: {rate['rate']:.0%} (95 % Clopper-Pearson "
              f"{rate['ci'][0]:.0%} to {rate['ci'][1]:.0%}; a test that holds alpha gives ≤ 5 %)")


if __name__ == "__main__":
    main()
