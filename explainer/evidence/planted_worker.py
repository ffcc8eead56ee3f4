"""The planted benchmark's worker: one unit (seed × kind) as a row, training each seed's networks once."""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from explainer.errors import InputError
from explainer.evidence.planted_reliance import shortcut_reliance
from explainer.evidence.planted_settings import CONCEPTS, PATCH_LAYER, PlantedSettings, _settings_from

if TYPE_CHECKING:
    from explainer.models import Classifier


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """One torch thread for a unit, so its row does not depend on the machine's core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _shares(maps: torch.Tensor, masks: torch.Tensor) -> np.ndarray:
    """Per image, the share of |relevance| (summed over channels) inside ``masks``."""
    heat = maps.abs().sum(1) if maps.ndim == 4 else maps.abs()
    inside = (heat * masks[:, 0].to(heat.dtype)).flatten(1).sum(1)
    total = heat.flatten(1).sum(1).clamp_min(1e-12)
    return (inside / total).numpy()


class _Worker:
    """Turns a unit ``{"seed", "kind"}`` into a row; trains each seed's networks once per process."""

    def __init__(self, settings: PlantedSettings) -> None:
        self.settings = settings
        self._nets: dict[tuple[int, float, int], tuple[Any, Any, float]] = {}

    def __call__(self, unit: Mapping[str, Any]) -> dict[str, Any]:
        seed, kind = int(unit["seed"]), str(unit["kind"])
        with _one_thread():
            started = time.perf_counter()
            trained_before = sum(t for *_, t in self._nets.values())
            handlers = {"reliance": self._reliance, "pixels": self._pixels, "data": self._data_kind,
                        "patching": self._patching, "concepts": self._concepts, "timeline": self._timeline}
            row = handlers[kind](seed)
            train_seconds = sum(t for *_, t in self._nets.values()) - trained_before
        return {**row, "seconds": time.perf_counter() - started - train_seconds, "train_seconds": train_seconds}

    def _load(self, seed: int, shortcut: float) -> Any:
        from explainer.data.datasets import load_dataset

        s = self.settings
        return load_dataset("planted", n_train=s.n_train, n_test=s.n_test, shortcut=shortcut, mislabeled=s.mislabeled,
                            seed=seed)

    def _net(self, seed: int, shortcut: float, epochs: int) -> tuple[Any, Any]:
        """(TrainingRun with checkpoints, dataset) for one seed and shortcut strength, trained once."""
        from explainer.learn.architectures import build_model
        from explainer.learn.training import fit

        key = (seed, shortcut, epochs)
        if key not in self._nets:
            s = self.settings
            data = self._load(seed, shortcut)
            started = time.perf_counter()
            network = build_model("cnn", data, seed=seed, channels=s.channels, pool="each", hidden=s.hidden)
            run = fit(network, data, epochs=epochs, lr=s.lr, batch_size=s.batch_size, seed=seed, telemetry="off",
                      device="cpu", keep_checkpoints=True)
            run.model.eval()
            self._nets[key] = (run, data, time.perf_counter() - started)
        run, data, _ = self._nets[key]
        return run, data

    def _pair(self, seed: int) -> dict[str, tuple[Any, Any]]:
        s = self.settings
        return {"uses": self._net(seed, s.shortcut, s.epochs), "ignores": self._net(seed, 0.0, s.epochs)}

    @staticmethod
    def _classifier(module: Any, data: Any, seed: int) -> Classifier:
        from explainer.models import Classifier

        return Classifier.from_module(module.eval(), dataset=data, name=f"planted cnn (seed {seed})")

    def _reliance(self, seed: int) -> dict[str, Any]:
        nets = self._pair(seed)
        out: dict[str, Any] = {}
        for name, (run, data) in nets.items():
            out[name] = shortcut_reliance(run.model, data).to_dict()
        return {"reliance": out}

    def _maps(self, classifier: Classifier, pixels: torch.Tensor, method: str, seed: int) -> torch.Tensor:
        from explainer.attribution.explanation import explain
        from explainer.evidence.controls import control_maps, is_control

        if is_control(method):
            return control_maps(method, pixels, [seed * 100_003 + i for i in range(len(pixels))])
        with warnings.catch_warnings():  # an all-zero map is a result here (it scores 0), not news
            warnings.filterwarnings("ignore", message=".*map is all zero.*")
            return explain(classifier, pixels, method=method, budget_seconds=None).attributions

    def _pixels(self, seed: int) -> dict[str, Any]:
        n = self.settings.images
        scores: dict[str, dict[str, float]] = {}
        skipped: dict[str, str] = {}
        for name, (run, data) in self._pair(seed).items():
            classifier = self._classifier(run.model, data, seed)
            pixels = data.x_test[:n]
            for method in self.settings.methods:
                if method in skipped:
                    continue
                try:
                    maps = self._maps(classifier, pixels, method, seed)
                except InputError as exc:  # a method that does not apply to this network (e.g. rollout)
                    skipped[method] = str(exc)[:200]
                    continue
                entry = scores.setdefault(method, {})
                entry[f"shortcut_share_{name}"] = float(_shares(maps, data.truth.shortcut_masks_test[:n]).mean())
                entry[f"object_share_{name}"] = float(_shares(maps, data.truth.object_masks_test[:n]).mean())
        for entry in scores.values():
            entry["score"] = entry["shortcut_share_uses"] - entry["shortcut_share_ignores"]
        return {"pixels": scores, "skipped": skipped}

    @staticmethod
    def _shortcut_shows_class(data: Any) -> torch.Tensor:
        """Per test image: True where the shortcut's colour shows the image's class (flipping it changes pixels)."""
        truth = data.truth
        changed = (data.x_test != truth.x_test_flipped).any(1, keepdim=True)
        return (changed & truth.shortcut_masks_test).flatten(1).any(1)

    def _patching(self, seed: int) -> dict[str, Any]:
        """Position patching at ``conv2``: clean = a test image whose shortcut shows its class, corrupted = one of the
        other class (object, shortcut and distractor all differ); the share of restoration on the shortcut."""
        from explainer.inside.patching import patch

        out: dict[str, float] = {}
        for name, (run, data) in self._pair(seed).items():
            truth = data.truth
            agrees = self._shortcut_shows_class(data)
            per_class = max(1, self.settings.images // 4)
            chosen = [torch.nonzero(agrees & (data.y_test == c)).ravel()[:per_class] for c in (0, 1)]
            count = min(len(chosen[0]), len(chosen[1]))
            clean = torch.cat([data.x_test[chosen[0][:count]], data.x_test[chosen[1][:count]]])
            corrupted = torch.cat([data.x_test[chosen[1][:count]], data.x_test[chosen[0][:count]]])
            result = patch(self._classifier(run.model, data, seed), clean, corrupted, layers=PATCH_LAYER,
                           granularity="position", progress=False)
            site_map = np.clip(np.nan_to_num(result.site_map()), 0.0, None)
            grid = torch.nn.functional.adaptive_max_pool2d(truth.shortcut_masks_test[0].float(), site_map.shape)[0]
            total = float(site_map.sum())
            out[f"shortcut_share_{name}"] = float(site_map[grid.numpy() > 0].sum()) / total if total > 0 else 0.0
        out["score"] = out["shortcut_share_uses"] - out["shortcut_share_ignores"]
        return {"patching": out}

    def _concepts(self, seed: int) -> dict[str, Any]:
        """NMF concepts of ``conv2`` over test images whose shortcut shows their class: the share of the concepts'
        importance (mean logit drop when removed, negatives as 0) that sits on the shortcut, each concept weighted
        by the share of its heatmap mass inside the shortcut's cells."""
        from explainer.inside.concepts import _activations, concept_maps, concepts

        out: dict[str, float] = {}
        for name, (run, data) in self._pair(seed).items():
            truth = data.truth
            chosen = torch.nonzero(self._shortcut_shows_class(data)).ravel()[: self.settings.images]
            images, masks = data.x_test[chosen], truth.shortcut_masks_test[chosen].float()
            classifier = self._classifier(run.model, data, seed)
            with warnings.catch_warnings():  # NMF's max_iter warning on a tiny layer is not news here
                warnings.filterwarnings("ignore", message=".*Maximum number of iterations.*")
                found = concepts(classifier, images, layer=PATCH_LAYER, n_concepts=CONCEPTS, seed=seed, progress=False)
                maps = concept_maps(found.directions, _activations(classifier, PATCH_LAYER, images))
            cells = torch.nn.functional.adaptive_max_pool2d(masks, maps.shape[-2:])
            on_shortcut = ((maps * cells).sum((0, 2, 3)) / maps.sum((0, 2, 3)).clamp_min(1e-12)).numpy()
            weights = np.clip([i.mean for i in found.importance], 0.0, None)
            out[f"shortcut_share_{name}"] = float((weights * on_shortcut).sum() / weights.sum()) if weights.sum() > 0 else 0.0
            out[f"best_alignment_{name}"] = float(on_shortcut.max())
        out["score"] = out["shortcut_share_uses"] - out["shortcut_share_ignores"]
        return {"concepts": out}

    def _data_kind(self, seed: int) -> dict[str, Any]:
        from explainer.learn.influence import find_mislabeled

        run, data = self._pair(seed)["uses"]
        search = find_mislabeled(run, data, data.truth.mislabeled, seed=seed, progress=False)
        return {"data": search.precision, "k": search.k, "kind_seconds": search.seconds}

    def _timeline(self, seed: int) -> dict[str, Any]:
        s = self.settings
        run, data = self._net(seed, s.timeline_shortcut, s.timeline_epochs)
        n = s.images
        probe = self._classifier(_copy(run.model), data, seed)
        epochs = []
        for epoch, state in enumerate(run.checkpoints, start=1):
            probe.module.load_state_dict(state)
            point: dict[str, Any] = {"epoch": epoch, **shortcut_reliance(probe.module, data).to_dict()}
            for method in s.timeline_methods:
                maps = self._maps(probe, data.x_test[:n], method, seed)
                point[f"pixels:{method}"] = float(_shares(maps, data.truth.shortcut_masks_test[:n]).mean())
            epochs.append(point)
        return {"timeline": epochs}


def _copy(module: Any) -> Any:
    import copy

    return copy.deepcopy(module)


def make_worker(settings: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """The work function for the runner (a picklable factory: ``functools.partial(make_worker, settings)``)."""
    return _Worker(_settings_from(settings))
