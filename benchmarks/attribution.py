"""What does ``explainer.explain()`` cost, against peers measured in the same run?

1. Every method: ms/image of ``explain()`` and of the raw Captum call it wraps, on the same model,
   batch, threads, targets and parameters (``internal_batch_size`` / ``perturbations_per_eval`` taken
   from what ``explain()`` chose). Grad-CAM++ has no Captum class; its peer is pytorch-grad-cam's
   ``GradCAMPlusPlus`` when installed. Target: ≤ 1.10× raw Captum.
2. Grad-CAM against one forward pass of the same batch, TorchCAM's ``GradCAM`` and pytorch-grad-cam's
   ``GradCAM`` (both optional: ``pip install -e '.[bench]'``). Target: ≤ 1.5× one forward pass.
3. Integrated Gradients (n_steps=50) against 50 × (forward + backward to the input) of the same batch,
   and the peak memory of each: on a CPU the rise of ``ru_maxrss`` in a fresh subprocess per
   measurement, on CUDA ``torch.cuda.max_memory_allocated``. Target: ≤ 1.10× and ≤ 2 GiB at 224 px,
   batch 8.

Explicit targets (each image's top class, computed once) are given to every contender, so
``explain()`` does no extra prediction pass. Timings: median of ``--repeats`` after a warm-up,
contenders interleaved. Usage::

    python benchmarks/attribution.py [--device cpu|cuda] [--batch 8] [--threads 1] [--methods gradcam,saliency]
                                     [--quick] [--repeats 3] [--json]

``--quick`` uses cheaper settings in the per-method table (IG 16 steps, SmoothGrad/GradientSHAP 4
samples, occlusion 56 px windows, 16 superpixels) and two repeats; section 3 always uses 50 steps.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

import explainer
from explainer.attribution import METHODS, explain
from explainer.attribution.private_copy import private_copy as _private_copy
from explainer.models.layers import find_cam_layer

#: Registry modules whose methods wrap Captum (section 1 times them against Captum on the model as is).
CAPTUM_BACKED = ("explainer.attribution.methods.captum", "explainer.attribution.methods.gradcam")
#: Every other registered method has its own section (peers other than Captum), read from the registry.
NEW_METHODS = tuple(name for name, spec in METHODS.items() if spec.runner.__module__ not in CAPTUM_BACKED)

PHOTOS = ("cat", "coffee", "rocket", "camera", "china", "astronaut")
IG_STEPS = 50
PEERS = {
    "gradcam_plus_plus": "pytorch-grad-cam GradCAMPlusPlus",
    "deeplift": "Captum on the model as is",
    "guided_backprop": "Captum on the model as is",
    "guided_gradcam": "Captum on the model as is",
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _median_times(contenders: dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> dict[str, float]:
    """Median seconds per contender after one warm-up call each; contenders interleaved."""
    for fn in contenders.values():
        fn()
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            samples[name].append(_time(fn, device))
    return {name: statistics.median(values) for name, values in samples.items()}


def _setup(device: str, batch: int) -> tuple[explainer.Classifier, torch.Tensor, list[int]]:
    classifier = explainer.load_model(device=device)
    photos = explainer.sample_images()
    images = [photos[PHOTOS[i % len(PHOTOS)]] for i in range(batch)]
    pixels = classifier.to_pixels(images)
    with torch.inference_mode():
        targets = classifier.module(classifier.normalize(pixels).to(classifier.device)).argmax(1).tolist()
    return classifier, pixels, targets


def method_params(quick: bool) -> dict[str, dict[str, Any]]:
    """The parameters both contenders use per method (defaults unless --quick)."""
    if not quick:
        return {}
    return {
        "integrated_gradients": {"n_steps": 16},
        "smoothgrad": {"n_samples": 4},
        "gradient_shap": {"n_samples": 4},
        "occlusion": {"window": 56, "stride": 56},
        "feature_ablation": {"n_segments": 16},
    }


def raw_captum(method: str, classifier: explainer.Classifier, inputs: torch.Tensor, targets: list[int],
               used: dict[str, Any], as_prepared: bool = True) -> Callable[[], Any] | None:
    """The raw call a Captum user would write for ``method``, with the settings explain() used.

    DeepLIFT and guided backprop run in explain() on a private copy whose ReLU6/GELU/... count as
    activations for Captum's rules; with ``as_prepared`` the raw call gets that same copy, otherwise
    the model as it is (where Captum passes those activations as plain gradients).
    """
    import captum.attr as ca

    model = _private_copy(classifier.module) if as_prepared and METHODS[method].private_copy else classifier.module
    layer = model.get_submodule(used["layer"]) if "layer" in used else None
    zeros = torch.zeros_like(inputs)
    noise = used.get("noise", 0.0) / float(torch.tensor(classifier.std).mean())

    def grad_input() -> torch.Tensor:
        return inputs.clone().requires_grad_(True)

    if method == "saliency":
        return lambda: ca.Saliency(model).attribute(grad_input(), target=targets, abs=True)
    if method == "input_x_gradient":
        return lambda: ca.InputXGradient(model).attribute(grad_input(), target=targets)
    if method == "integrated_gradients":
        return lambda: ca.IntegratedGradients(model).attribute(
            grad_input(), baselines=zeros, target=targets, n_steps=used["n_steps"], method=used["integration"],
            internal_batch_size=used["internal_batch_size"], return_convergence_delta=True)
    if method == "smoothgrad":
        return lambda: ca.NoiseTunnel(ca.Saliency(model)).attribute(
            grad_input(), nt_type="smoothgrad", nt_samples=used["n_samples"],
            nt_samples_batch_size=used["nt_samples_batch_size"], stdevs=noise, target=targets, abs=True)
    if method == "gradient_shap":
        return lambda: ca.GradientShap(model).attribute(
            grad_input(), baselines=zeros[:1], n_samples=used["n_samples"], stdevs=noise, target=targets)
    if method == "deeplift":
        return lambda: ca.DeepLift(model).attribute(grad_input(), baselines=zeros, target=targets)
    if method == "guided_backprop":
        return lambda: ca.GuidedBackprop(model).attribute(grad_input(), target=targets)
    if method == "occlusion":
        c = inputs.shape[1]
        return lambda: ca.Occlusion(model).attribute(
            inputs, sliding_window_shapes=(c, used["window"], used["window"]),
            strides=(c, used["stride"], used["stride"]), baselines=0.0, target=targets,
            perturbations_per_eval=used["perturbations_per_eval"])
    if method == "feature_ablation":
        mask = _superpixels(classifier.denormalize(inputs), used)  # computed once, outside the timing
        return lambda: ca.FeatureAblation(model).attribute(
            inputs, baselines=0.0, target=targets, feature_mask=mask,
            perturbations_per_eval=used["perturbations_per_eval"])
    if method == "gradcam":
        size = tuple(inputs.shape[-2:])
        return lambda: ca.LayerAttribution.interpolate(
            ca.LayerGradCam(model, layer).attribute(grad_input(), target=targets), size, "bilinear")
    if method == "guided_gradcam":
        return lambda: ca.GuidedGradCam(model, layer).attribute(grad_input(), target=targets)
    if method == "gradcam_plus_plus":
        return _grad_cam_library("GradCAMPlusPlus", model, layer, inputs, targets)
    return None


def _superpixels(pixels: torch.Tensor, used: dict[str, Any]) -> torch.Tensor:
    """SLIC superpixels per image, as explain() makes them (feature_ablation's default segmentation)."""
    from skimage.segmentation import slic

    images = pixels.clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
    masks = [slic(image, n_segments=used["n_segments"], compactness=used["compactness"], start_label=0,
                  channel_axis=-1) for image in images]
    return torch.stack([torch.from_numpy(m) for m in masks]).long().unsqueeze(1).to(pixels.device)


def _grad_cam_library(name: str, model, layer, inputs, targets) -> Callable[[], Any] | None:
    """pytorch-grad-cam's ``name`` (optional dependency); its hooks are released after every call."""
    try:
        import pytorch_grad_cam
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    except ImportError:
        return None
    wanted = [ClassifierOutputTarget(t) for t in targets]

    def run() -> Any:
        with getattr(pytorch_grad_cam, name)(model=model, target_layers=[layer]) as cam:
            return cam(input_tensor=inputs, targets=wanted)

    return run


def _torchcam(model, layer_name: str, inputs, targets) -> Callable[[], Any] | None:
    try:
        from torchcam.methods import GradCAM
    except ImportError:
        return None

    def run() -> Any:
        with GradCAM(model, target_layer=layer_name) as extractor:
            scores = model(inputs)
            return extractor(targets, scores)

    return run


def bench_methods(classifier, pixels, targets, methods, repeats, quick) -> list[dict[str, Any]]:
    rows = []
    device = classifier.device
    inputs = classifier.normalize(pixels).to(device)
    overrides = method_params(quick)
    for method in methods:
        params = overrides.get(method, {})
        used = explain(classifier, pixels, method, target=targets, **params).params
        raw = raw_captum(method, classifier, inputs, targets, used)
        contenders: dict[str, Callable[[], Any]] = {"explain": partial(explain, classifier, pixels, method,
                                                                       target=targets, **params)}
        if raw is not None:
            contenders["raw"] = raw
        as_is = raw_captum(method, classifier, inputs, targets, used, as_prepared=False)
        if METHODS[method].private_copy and as_is is not None:
            contenders["as_is"] = as_is
        times = _median_times(contenders, repeats, device)
        n = len(targets)
        # For methods on explain's private copy the headline peer is what a user would run: Captum on the
        # model as it is. The copy costs more because Captum then applies DeepLIFT's rescale rule (or the
        # guided-backprop stop) at ReLU6/SiLU/GELU, which it passes as plain gradients on the model as is.
        peer_key = "as_is" if "as_is" in times else "raw"
        rows.append({
            "captum_on_model_as_is_ms_per_image": 1000 * times["as_is"] / n if "as_is" in times else None,
            "captum_on_prepared_copy_ms_per_image": 1000 * times["raw"] / n if "as_is" in times else None,
            "method": method,
            "explain_ms_per_image": 1000 * times["explain"] / n,
            "raw_ms_per_image": 1000 * times[peer_key] / n if peer_key in times else None,
            "ratio": times["explain"] / times[peer_key] if peer_key in times else None,
            "ratio_on_prepared_copy": times["explain"] / times["raw"] if "as_is" in times else None,
            "peer": PEERS.get(method, "Captum"),
            "params": {k: v for k, v in used.items() if k not in ("memory_budget_mb",)},
        })
        print(f"  {method}: done", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------ methods of explain/methods/
CAM_PEERS = {"scorecam": "ScoreCAM", "layercam": "LayerCAM", "xgradcam": "XGradCAM", "hirescam": "HiResCAM",
             "eigencam": "EigenCAM"}
TORCHCAM_PEERS = {"scorecam": "ScoreCAM", "layercam": "LayerCAM", "xgradcam": "XGradCAM"}


def new_method_params(quick: bool) -> dict[str, dict[str, Any]]:
    """Settings for section 4 (explain and every peer use the same)."""
    samples = 50 if quick else 200
    return {
        "scorecam": {"weights": "channel_softmax"},  # the peers' weighting; all channels
        "rise": {"n_masks": 100 if quick else 1000},
        "lime": {"n_samples": samples, "n_segments": 16 if quick else 50},
        "kernel_shap": {"n_samples": samples, "n_segments": 16 if quick else 50},
    }


def _quiet(fn: Callable[[], Any]) -> Callable[[], Any]:
    """``fn`` with stderr (progress bars) discarded."""
    import contextlib
    import io

    def run() -> Any:
        with contextlib.redirect_stderr(io.StringIO()):
            return fn()

    return run


def _cam_peers(method, classifier, inputs, targets, layer_name) -> dict[str, Callable[[], Any]]:
    model = classifier.module
    layer = model.get_submodule(layer_name)
    peers: dict[str, Callable[[], Any]] = {}
    lib = _grad_cam_library(CAM_PEERS[method], model, layer, inputs, targets)
    if lib is not None:
        peers[f"pytorch-grad-cam {CAM_PEERS[method]}"] = _quiet(lib)
    if method in TORCHCAM_PEERS:
        try:
            import torchcam.methods as tcm
        except ImportError:
            return peers
        cls = getattr(tcm, TORCHCAM_PEERS[method])

        def torchcam() -> Any:
            with cls(model, target_layer=layer_name) as extractor:
                if method == "scorecam":
                    with torch.no_grad():
                        scores = model(inputs)
                    return extractor(targets, scores)
                scores = model(inputs)
                return extractor(targets, scores)

        peers[f"TorchCAM {TORCHCAM_PEERS[method]}"] = torchcam
    return peers


def _superpixel_peer(method, classifier, inputs, targets, explanation) -> dict[str, Callable[[], Any]]:
    import captum.attr as ca

    cls = ca.Lime if method == "lime" else ca.KernelShap
    used = explanation.params

    def run() -> Any:
        # A Captum user makes the superpixels too: SLIC with the same settings, inside the timing.
        mask = _superpixels(classifier.denormalize(inputs), used)
        maps = []
        for i, target in enumerate(targets):
            with torch.random.fork_rng():
                torch.manual_seed(used["seed"])
                maps.append(cls(classifier.module).attribute(
                    inputs[i : i + 1], baselines=torch.zeros_like(inputs[i : i + 1]), target=target,
                    feature_mask=mask[i : i + 1], n_samples=used["n_samples"],
                    perturbations_per_eval=used["perturbations_per_eval"]))
        return maps

    return {f"Captum {cls.__name__}": run}


def _rise_floor(classifier, inputs, targets, used) -> dict[str, Callable[[], Any]]:
    """No RISE peer runs on torch; the floor is the masked forward passes alone, masks made beforehand."""
    from explainer.attribution.methods.rise import rise_masks

    n = inputs.shape[0]
    masks = rise_masks(used["n_masks"], tuple(inputs.shape[-2:]), seed=0).build(0, used["n_masks"], inputs.device)
    step = max(1, used["internal_batch_size"] // n)

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, masks.shape[0], step):
                chunk = masks[start : start + step]
                classifier.module((inputs.unsqueeze(1) * chunk.unsqueeze(0)).flatten(0, 1))

    return {f"{used['n_masks']} masked forward passes": run}


def _zennit_peer(classifier, inputs, targets) -> dict[str, Callable[[], Any]]:
    import copy

    from zennit.attribution import Gradient
    from zennit.composites import EpsilonPlusFlat
    from zennit.torchvision import ResNetCanonizer

    model = copy.deepcopy(classifier.module).eval()
    for module in model.modules():
        if hasattr(module, "inplace"):
            module.inplace = False
    index = torch.tensor(targets, device=inputs.device).view(-1, 1)

    def run() -> Any:
        with torch.no_grad():
            logits = model(inputs)
        one_hot = torch.zeros_like(logits).scatter_(1, index, 1.0)
        with Gradient(model=model, composite=EpsilonPlusFlat(canonizers=[ResNetCanonizer()])) as attributor:
            return attributor(inputs.clone().requires_grad_(True), one_hot * logits)

    return {"Zennit EpsilonPlusFlat + ResNetCanonizer": run}


def _forward_floor(classifier, inputs) -> dict[str, Callable[[], Any]]:
    def run() -> Any:
        with torch.inference_mode():
            return classifier.module(inputs)

    return {"one forward pass": run}


def _model_for(method: str, classifier: explainer.Classifier, device: str) -> explainer.Classifier:
    """LRP needs a supported architecture and rollout a ViT: random-weight torchvision/timm models at 224 px."""
    if method == "lrp":
        import torchvision

        return explainer.Classifier.from_module(torchvision.models.resnet18(weights=None), name="torchvision resnet18",
                                                mean=classifier.mean, std=classifier.std).to(device)
    if method == "attention_rollout":
        return explainer.load_model("vit_tiny_patch16_224", pretrained=False, device=device)
    return classifier


def bench_new_methods(classifier, pixels, targets, methods, repeats, quick, scorecam_images) -> list[dict[str, Any]]:
    """Section 4: each method of explain/methods/ against its peers, same model, batch, threads and run."""
    rows = []
    settings = new_method_params(quick)
    for method in methods:
        model = _model_for(method, classifier, str(classifier.device))
        count = scorecam_images if method == "scorecam" else len(targets)
        batch = pixels[:count]
        inputs = model.normalize(batch).to(model.device)
        with torch.inference_mode():
            wanted = model.module(inputs).argmax(1).tolist() if model is not classifier else targets[:count]
        params = settings.get(method, {})
        def call(model=model, batch=batch, wanted=wanted, method=method, params=params) -> Any:
            return explain(model, batch, method, target=wanted, budget_seconds=None, **params)

        explanation = call()
        used = explanation.params
        if method in CAM_PEERS:
            peers = _cam_peers(method, model, inputs, wanted, used["layer"])
        elif method in ("lime", "kernel_shap"):
            peers = _superpixel_peer(method, model, inputs, wanted, explanation)
        elif method == "rise":
            peers = _rise_floor(model, inputs, wanted, used)
        elif method == "lrp":
            peers = _zennit_peer(model, inputs, wanted)
        else:
            peers = _forward_floor(model, inputs)
        contenders = {"explain": call, **peers}
        if method == "scorecam":  # a minute per call: interleaved repeats without warm-up (explain's probes are cached)
            samples: dict[str, list[float]] = {name: [] for name in contenders}
            for _ in range(repeats):
                for name, fn in contenders.items():
                    samples[name].append(_time(fn, model.device))
            times = {name: statistics.median(values) for name, values in samples.items()}
        else:
            times = _median_times(contenders, repeats, model.device)
        peer_ms = {name: 1000 * t / count for name, t in times.items() if name != "explain"}
        fastest = min(peer_ms, key=lambda name: peer_ms[name]) if peer_ms else None
        rows.append({
            "method": method, "model": model.name, "images": count,
            "explain_ms_per_image": 1000 * times["explain"] / count,
            "peers_ms_per_image": peer_ms,
            "fastest_peer": fastest,
            "ratio_to_fastest_peer": 1000 * times["explain"] / count / peer_ms[fastest] if fastest else None,
            "params": {k: v for k, v in used.items() if k not in ("memory_budget_mb",)},
        })
        print(f"  {method}: done", file=sys.stderr, flush=True)
    return rows


def bench_gradcam(classifier, pixels, targets, repeats) -> dict[str, Any]:
    device = classifier.device
    inputs = classifier.normalize(pixels).to(device)
    model = classifier.module
    layer_name = find_cam_layer(classifier).name
    layer = classifier.get_layer(layer_name)

    def forward() -> Any:
        with torch.inference_mode():
            return model(inputs)

    contenders = {
        "explain gradcam": lambda: explain(classifier, pixels, "gradcam", target=targets),
        "one forward": forward,
    }
    torchcam = _torchcam(model, layer_name, inputs, targets)
    if torchcam is not None:
        contenders["TorchCAM GradCAM"] = torchcam
    gradcam_lib = _grad_cam_library("GradCAM", model, layer, inputs, targets)
    if gradcam_lib is not None:
        contenders["pytorch-grad-cam GradCAM"] = gradcam_lib
    times = _median_times(contenders, repeats, device)
    n = len(targets)
    base = times["explain gradcam"]
    return {
        "ms_per_image": {name: 1000 * t / n for name, t in times.items()},
        "explain_over": {name: base / t for name, t in times.items() if name != "explain gradcam"},
    }


def _fwd_bwd_loop(classifier, inputs, targets, steps: int) -> Callable[[], Any]:
    model = classifier.module
    index = torch.tensor(targets, device=inputs.device).view(-1, 1)

    def run() -> None:
        for _ in range(steps):
            x = inputs.clone().requires_grad_(True)
            torch.autograd.grad(model(x).gather(1, index).sum(), x)

    return run


def bench_ig(classifier, pixels, targets, repeats, steps) -> dict[str, Any]:
    device = classifier.device
    inputs = classifier.normalize(pixels).to(device)
    times = _median_times({
        "explain": lambda: explain(classifier, pixels, "integrated_gradients", target=targets, n_steps=steps),
        "loop": _fwd_bwd_loop(classifier, inputs, targets, steps),
    }, repeats, device)
    used = explain(classifier, pixels, "integrated_gradients", target=targets, n_steps=steps).params
    return {
        "n_steps": steps,
        "internal_batch_size": used["internal_batch_size"],
        "explain_ms_per_image": 1000 * times["explain"] / len(targets),
        "loop_ms_per_image": 1000 * times["loop"] / len(targets),
        "ratio": times["explain"] / times["loop"],
    }


def peak_memory_mib(which: str, device: str, batch: int, steps: int) -> float:
    """Peak extra memory (MiB) of one IG call or of the fwd+bwd loop, model and inputs excluded."""
    if device.startswith("cuda"):
        classifier, pixels, targets = _setup(device, batch)
        fn = _ig_or_loop(which, classifier, pixels, targets, steps)
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - start) / 2**20
    command = [sys.executable, __file__, "--_peak", which, "--batch", str(batch), "--_steps", str(steps)]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def _ig_or_loop(which, classifier, pixels, targets, steps) -> Callable[[], Any]:
    if which == "explain":
        # one tiny call first so the one-off probes (layer search, memory per sample) are not counted
        explain(classifier, pixels[:1], "saliency", target=targets[:1])
        return lambda: explain(classifier, pixels, "integrated_gradients", target=targets, n_steps=steps)
    return _fwd_bwd_loop(classifier, classifier.normalize(pixels).to(classifier.device), targets, steps)


def _peak_child(which: str, batch: int, steps: int) -> None:
    """Subprocess body: set up, reset the resident-set high-water mark, run once, print the rise in MiB.

    Linux keeps the peak resident set (VmHWM) per process; writing 5 to /proc/self/clear_refs resets it
    to the current size, so memory freed during set-up and reused by the call is not missed (a plain
    ``ru_maxrss`` delta would miss it). Elsewhere the ``ru_maxrss`` delta is a lower bound.
    """
    torch.set_num_threads(1)
    classifier, pixels, targets = _setup("cpu", batch)
    fn = _ig_or_loop(which, classifier, pixels, targets, steps)
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        before = _proc_status_kib("VmRSS")
        fn()
        print((_proc_status_kib("VmHWM") - before) / 1024)
    except OSError:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        fn()
        print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)  # KiB on Linux


def _proc_status_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"{field} not in /proc/self/status")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--methods", default=",".join(m for m in METHODS if m not in NEW_METHODS),
                        help="comma-separated Captum-backed methods for section 1 (default: all)")
    parser.add_argument("--new-methods", default=",".join(NEW_METHODS),
                        help="comma-separated methods of explain/methods/ for section 4 (default: all)")
    parser.add_argument("--sections", default="methods,gradcam,ig,new",
                        help="which sections to run: methods, gradcam, ig, new (default: all)")
    parser.add_argument("--scorecam-images", type=int, default=1,
                        help="images for Score-CAM in section 4 (all channels: ~1 s per channel batch)")
    parser.add_argument("--repeats", type=int, default=None, help="timed runs per contender (default 3, --quick 2)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--_peak", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_steps", type=int, default=IG_STEPS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    if args._peak:
        _peak_child(args._peak, args.batch, args._steps)
        return 0
    torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    new_methods = [m.strip() for m in args.new_methods.split(",") if m.strip()]
    sections = {s.strip() for s in args.sections.split(",")}
    unknown = [m for m in methods + new_methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    repeats = args.repeats or (2 if args.quick else 3)
    ig_steps = IG_STEPS
    classifier, pixels, targets = _setup(args.device, args.batch)
    report: dict[str, Any] = {
        "setup": {"model": classifier.name, "device": str(classifier.device), "batch": args.batch,
                  "input": list(pixels.shape[1:]), "threads": args.threads, "repeats": repeats,
                  "quick": args.quick, "torch": torch.__version__},
    }
    if "methods" in sections:
        report["methods"] = bench_methods(classifier, pixels, targets, methods, repeats, args.quick)
    if "gradcam" in sections:
        report["gradcam"] = bench_gradcam(classifier, pixels, targets, repeats)
    if "ig" in sections:
        report["integrated_gradients"] = bench_ig(classifier, pixels, targets, repeats, ig_steps)
        report["integrated_gradients"]["peak_memory_mib"] = {
            which: peak_memory_mib(which, args.device, args.batch, ig_steps) for which in ("explain", "loop")
        }
    if "new" in sections:
        report["new_methods"] = bench_new_methods(classifier, pixels, targets, new_methods, repeats, args.quick,
                                                  args.scorecam_images)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        _print_table(report)
    return 0


def _print_table(report: dict[str, Any]) -> None:
    s = report["setup"]
    print(f"{s['model']} on {s['device']}, batch {s['batch']} × {s['input']}, {s['threads']} thread(s), "
          f"median of {s['repeats']}{' (quick)' if s['quick'] else ''}")
    if "methods" in report:
        _print_methods(report["methods"])
    if "gradcam" in report:
        _print_gradcam(report["gradcam"])
    if "integrated_gradients" in report:
        _print_ig(report["integrated_gradients"])
    if "new_methods" in report:
        _print_new(report["new_methods"])


def _print_new(rows: list[dict[str, Any]]) -> None:
    print("\nMethods of explain/methods/ against their peers, ms/image (target ≤ 1.10× the fastest peer; "
          "Score-CAM ≥ 3× faster than pytorch-grad-cam):")
    for row in rows:
        peers = ", ".join(f"{name} {ms:.1f}" for name, ms in row["peers_ms_per_image"].items())
        ratio = row["ratio_to_fastest_peer"]
        ratio_text = f"ratio to fastest {ratio:.2f}" if ratio is not None else "no peer"
        print(f"  {row['method']:<18} {row['model']:<24} {row['images']} img  explain "
              f"{row['explain_ms_per_image']:9.1f}  | {peers}  | {ratio_text}")
        if row["method"] == "scorecam":
            lib = row["peers_ms_per_image"].get("pytorch-grad-cam ScoreCAM")
            if lib:
                print(f"  {'':<18} pytorch-grad-cam ScoreCAM / explain = {lib / row['explain_ms_per_image']:.2f}×")


def _print_methods(rows: list[dict[str, Any]]) -> None:
    print(f"{'method':<22} {'explain ms/img':>15} {'peer ms/img':>12} {'ratio':>7}  peer (target ≤ 1.10×)")
    for row in rows:
        peer = f"{row['raw_ms_per_image']:12.1f}" if row["raw_ms_per_image"] is not None else f"{'–':>12}"
        ratio = f"{row['ratio']:7.2f}" if row["ratio"] is not None else f"{'–':>7}"
        copy_ms = row.get("captum_on_prepared_copy_ms_per_image")
        note = (f"; Captum on explain's prepared copy (rescale rule at every activation): {copy_ms:.1f} ms/img, "
                f"explain/that {row['ratio_on_prepared_copy']:.2f}" if copy_ms is not None else "")
        print(f"{row['method']:<22} {row['explain_ms_per_image']:15.1f} {peer} {ratio}  {row['peer']}{note}")


def _print_gradcam(g: dict[str, Any]) -> None:
    print("\nGrad-CAM, ms/image (target: explain ≤ 1.5× one forward):")
    for name, ms in g["ms_per_image"].items():
        over = g["explain_over"].get(name)
        print(f"  {name:<28} {ms:8.1f}" + (f"   explain / this = {over:.2f}" if over is not None else ""))


def _print_ig(ig: dict[str, Any]) -> None:
    print(f"\nIntegrated Gradients n_steps={ig['n_steps']} (internal batch {ig['internal_batch_size']}): "
          f"explain {ig['explain_ms_per_image']:.1f} ms/img, {ig['n_steps']}×(fwd+bwd) {ig['loop_ms_per_image']:.1f} "
          f"ms/img, ratio {ig['ratio']:.2f} (target ≤ 1.10)")
    peak = ig["peak_memory_mib"]
    print(f"peak memory: explain {peak['explain']:.0f} MiB, fwd+bwd loop {peak['loop']:.0f} MiB (target ≤ 2048 MiB)")


if __name__ == "__main__":
    sys.exit(main())
