"""Transfer learning versus training from scratch with 1–50 labelled examples per class.

`compare_transfer` runs every strategy on the same few-shot sample per (shots, seed), scores it on
the full test split and returns tidy results that say when pretrained features help and when
they do not. Results can stream to a file that a rerun resumes from.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from explainer.data.datasets import Dataset, load_dataset
from explainer.errors import InputError
from explainer.hardware import resolve_device
from explainer.models import Classifier, load_model
from explainer.transfer.feature_cache import (
    Features,
    check_backbone,
    dataset_features,
    pooled_features,
    prepare_images,
    resize,
    tensor_digest,
)

#: Strategy name → what it trains, in the order results list them.
STRATEGIES: dict[str, str] = {
    "linear_probe": "logistic regression on frozen pretrained features",
    "fine_tune": "the whole pretrained network, started from the probe head, BatchNorm statistics frozen",
    "scratch": "the same architecture from random initialization",
    "small_cnn": "a three-layer CNN from random initialization",
    "pixels": "logistic regression on raw pixels",
}
PRETRAINED = ("linear_probe", "fine_tune")
FROM_SCRATCH = ("scratch", "small_cnn", "pixels")
DEFAULT_SHOTS = (1, 2, 5, 10, 20, 50)
#: Inverse L2 strength of both logistic regressions (scikit-learn's ``C``), and their L-BFGS iterations.
PROBE_C = 1.0
LBFGS_STEPS = 100
#: Adam learning rates: fine_tune and scratch share ``lr`` (default DEFAULT_LR); the small CNN has its own.
DEFAULT_LR = 3e-4
SMALL_CNN_LR = 1e-3
#: Version of the results-file format and of the training recipe; part of the configuration.
RECIPE_VERSION = 2

Row = dict[str, object]
Callback = Callable[[int, int, Row], None]


# ----------------------------------------------------------------------------- results
@dataclass
class TransferResults:
    """Accuracy of each strategy per (labelled examples per class, seed), and how it was measured.

    ``table`` is tidy: one row per run with ``dataset, backbone, strategy, shots, seed, accuracy,
    seconds`` (accuracy on the full test split, in [0, 1]; seconds of that run's training and
    scoring). ``feature_seconds`` is the one-off cost of the frozen features (``feature_source``:
    computed, disk or memory), shared by every linear-probe and fine-tune run.
    """

    table: pd.DataFrame
    dataset: str
    backbone: str
    num_classes: int
    input_shape: tuple[int, ...]
    strategies: list[str]
    test_counts: list[int]
    config: dict[str, object]
    device: str
    seconds: float
    feature_seconds: float | None = None
    feature_source: str | None = None
    resumed: int = 0
    out: str | None = None
    method: str = "few-shot sample per class and seed, shared by all strategies; accuracy on the full test split"
    descriptions: dict[str, str] = field(default_factory=lambda: dict(STRATEGIES))

    @property
    def chance(self) -> float:
        """Accuracy of guessing the most frequent test class."""
        return max(self.test_counts) / sum(self.test_counts)

    def summary(self) -> pd.DataFrame:
        """Mean and standard deviation (across seeds) of accuracy per strategy and shot level."""
        grouped = self.table.groupby(["strategy", "shots"], sort=False)["accuracy"]
        summary = grouped.agg(mean="mean", std="std", runs="count").reset_index()
        summary["std"] = summary["std"].fillna(0.0)
        order = {name: i for i, name in enumerate(self.strategies)}
        summary = summary.sort_values(
            ["strategy", "shots"], key=lambda column: column.map(order) if column.name == "strategy" else column
        )
        return summary.reset_index(drop=True)

    def examples_needed(self, threshold: float) -> dict[str, int | None]:
        """Fewest labelled examples per class whose mean accuracy reaches ``threshold`` (a fraction).

        ``None`` means no measured shot level reached it.
        """
        if not 0.0 < threshold <= 1.0:
            raise InputError(f"threshold is an accuracy fraction in (0, 1]; got {threshold}. For 80% pass 0.8.")
        means = self._means()
        return {
            strategy: next((int(k) for k in means.columns if means.loc[strategy, k] >= threshold), None)
            for strategy in means.index
        }

    def verdict(self, threshold: float = 0.8) -> str:
        """Plain words: which strategy wins where, and when pretrained features help or do not."""
        means = self._means()
        shots = [int(k) for k in means.columns]
        sentences = [_winners_sentence(means)]
        pretrained = [s for s in PRETRAINED if s in means.index]
        baselines = [s for s in FROM_SCRATCH if s in means.index]
        if pretrained and baselines:
            sentences.append(_transfer_sentence(means, pretrained, baselines))
        if {"pixels", "linear_probe"} <= set(means.index):
            gap = means.loc["pixels"] - means.loc["linear_probe"]
            if (gap > 0).all():
                k = int(gap.idxmax())
                size = "×".join(str(n) for n in self.input_shape[1:])
                sentences.append(
                    f"Raw pixels beat the pretrained linear probe at every shot level ({_pct(means.loc['pixels', k])} "
                    f"vs {_pct(means.loc['linear_probe', k])} at {k} per class): the ImageNet features are made for "
                    f"natural photos, not for these {size} images."
                )
        needed = self.examples_needed(threshold)
        parts = [
            f"{name} {n}" if n is not None else f"{name} more than {shots[-1]}"
            for name, n in needed.items()
        ]
        sentences.append(f"Labelled examples per class needed to reach {threshold:.0%}: {', '.join(parts)}.")
        return " ".join(sentences)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready results, summary, verdict and provenance (what the CLI prints)."""
        return {
            "config": self.config,
            "results": self.table[["strategy", "shots", "seed", "accuracy", "seconds"]].to_dict("records"),
            "summary": self.summary()[["strategy", "shots", "mean", "std"]].to_dict("records"),
            "verdict": self.verdict(),
            "chance": self.chance,
            "device": self.device,
            "seconds": self.seconds,
            "feature_seconds": self.feature_seconds,
            "feature_source": self.feature_source,
            "resumed": self.resumed,
        }

    def _means(self) -> pd.DataFrame:
        table = self.summary().pivot(index="strategy", columns="shots", values="mean")
        return table.loc[[s for s in self.strategies if s in table.index]]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _ranges(values: Sequence[int], all_values: Sequence[int]) -> str:
    """'1–5' for consecutive members of ``all_values``, joined with commas."""
    groups: list[list[int]] = []
    for value in values:
        if groups and all_values.index(value) == all_values.index(groups[-1][-1]) + 1:
            groups[-1].append(value)
        else:
            groups.append([value])
    return ", ".join(f"{g[0]}" if len(g) == 1 else f"{g[0]}–{g[-1]}" for g in groups)


def _winners_sentence(means: pd.DataFrame) -> str:
    shots = [int(k) for k in means.columns]
    best = means.idxmax(axis=0)
    if best.nunique() == 1:
        name = best.iloc[0]
        reached = f"{_pct(means.loc[name, shots[0]])} with {shots[0]} per class"
        if len(shots) == 1:
            return f"Best: {name} ({reached})."
        return f"Best at every shot level: {name} ({reached}, {_pct(means.loc[name, shots[-1]])} with {shots[-1]})."
    parts = []
    for name in dict.fromkeys(best):
        levels = [k for k in shots if best[k] == name]
        parts.append(f"{name} at {_ranges(levels, shots)}")
    return f"Best strategy: {'; '.join(parts)} labelled examples per class."


def _transfer_sentence(means: pd.DataFrame, pretrained: list[str], baselines: list[str]) -> str:
    shots = [int(k) for k in means.columns]
    best_pre, best_base = means.loc[pretrained].max(axis=0), means.loc[baselines].max(axis=0)
    base_name = means.loc[baselines].idxmax(axis=0)
    helps = [k for k in shots if best_pre[k] > best_base[k]]
    first = helps[0] if helps else shots[0]
    compare = f"{_pct(best_pre[first])} vs {_pct(best_base[first])} for {base_name[first]} at {first} per class"
    if len(helps) == len(shots):
        return (
            "Transfer helps at every shot level: the best pretrained strategy beats every from-scratch "
            f"baseline ({compare})."
        )
    if not helps:
        return (
            "Transfer does not help here: a from-scratch baseline matches or beats the pretrained strategies "
            f"at every shot level ({compare})."
        )
    rest = [k for k in shots if k not in helps]
    return (
        f"Transfer helps at {_ranges(helps, shots)} per class ({compare}) but not at {_ranges(rest, shots)}, "
        f"where {base_name[rest[0]]} reaches {_pct(best_base[rest[0]])} against {_pct(best_pre[rest[0]])}."
    )


# -------------------------------------------------------------------------- the runs
def few_shot_sample(labels: torch.Tensor, num_classes: int, shots: int, seed: int) -> np.ndarray:
    """Sorted indices of ``shots`` examples per class, drawn with ``seed``.

    Each class's examples are shuffled once per seed and the first ``shots`` taken, so the sample
    for 5 shots contains the one for 2 shots: a curve over shot levels adds data, not new luck.
    """
    rng = np.random.default_rng(seed)
    array = labels.cpu().numpy()
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(array == c))[:shots] for c in range(num_classes)]))


class _HeadedBackbone(nn.Module):
    """A timm backbone's pooled penultimate features followed by a linear head."""

    def __init__(self, backbone: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.head(pooled_features(self.backbone, inputs))


def small_cnn(in_chans: int, num_classes: int) -> nn.Sequential:
    """Three stride-2 conv–BatchNorm–ReLU blocks (16, 32, 64 channels), a 4×4 pool and a linear layer."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_chans, 16), *block(16, 32), *block(32, 64),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, num_classes),
    )


def _feature_dim(module: nn.Module, in_chans: int, image_size: int) -> int:
    """Length of a module's pooled feature vector, read from one blank input."""
    module.eval()
    with torch.no_grad():
        return int(pooled_features(module, torch.zeros(1, in_chans, image_size, image_size)).shape[1])


def fit_logistic(features: torch.Tensor, labels: torch.Tensor, num_classes: int, c: float = PROBE_C) -> nn.Linear:
    """Multinomial logistic regression by full-batch L-BFGS, returned as a linear layer.

    Minimizes mean cross-entropy + ‖W‖² / (2·c·n) – scikit-learn's objective with ``C=c`` – on
    inputs centred by their mean (same optimum, faster convergence; the bias takes the shift back).
    """
    mean = features.mean(dim=0)
    centred = features - mean
    head = nn.Linear(features.shape[1], num_classes).to(features.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=LBFGS_STEPS, history_size=20, line_search_fn="strong_wolfe",
        tolerance_grad=1e-7, tolerance_change=1e-10,
    )
    penalty = 1.0 / (2.0 * c * len(labels))

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(head(centred), labels) + penalty * head.weight.square().sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        head.bias -= head.weight @ mean
    return head


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(dim=1).cpu() == labels.cpu()).float().mean())


def _batch_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def recalibrate_batch_norm(net: nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    """Set every BatchNorm's running statistics to their exact average over ``inputs``.

    During a short training run the running averages lag behind the fast-moving weights; one
    pass over the training images with the final weights makes evaluation match training.
    """
    norms = _batch_norms(net)
    momenta = [norm.momentum for norm in norms]
    net.eval()
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average over the batches below
        norm.train()
    with torch.no_grad():
        for chunk in inputs.split(batch_size):
            net(chunk)
    for norm, momentum in zip(norms, momenta):
        norm.momentum = momentum
    net.eval()


def _train(
    net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float, batch_size: int,
    seed: int, frozen_bn: bool,
) -> None:
    """Adam on cross-entropy for ``steps`` mini-batches drawn epoch by epoch in a seeded order."""
    net.train()
    if frozen_bn:
        for norm in _batch_norms(net):
            norm.eval()
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    step = 0
    while step < steps:
        for batch in torch.randperm(len(labels), generator=generator).split(batch_size):
            batch = batch.to(inputs.device)
            loss = F.cross_entropy(net(inputs[batch]), labels[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            if step == steps:
                break
    if frozen_bn:
        net.eval()
    else:
        recalibrate_batch_norm(net, inputs, batch_size)


@dataclass
class _Experiment:
    """One dataset and backbone; runs any strategy on a given support sample."""

    data: Dataset
    backbone: str | Classifier
    image_size: int
    steps: int
    lr: float
    batch_size: int
    device: torch.device
    cache_dir: str | Path | None
    _classifier: Classifier | None = field(default=None, init=False, repr=False)
    _features: Features | None = field(default=None, init=False, repr=False)

    @property
    def backbone_name(self) -> str:
        return self.backbone.name if isinstance(self.backbone, Classifier) else str(self.backbone).removeprefix("timm:")

    def classifier(self) -> Classifier:
        """The pretrained backbone, loaded on first use."""
        if self._classifier is None:
            if isinstance(self.backbone, Classifier):
                self._classifier = self.backbone
            else:
                self._classifier = load_model(self.backbone, device=self.device)
            check_backbone(self._classifier)
        return self._classifier

    def features(self) -> Features:
        """The backbone's features of the whole dataset, from the cache or computed on first use."""
        if self._features is None:
            self._features = dataset_features(
                self.classifier(), self.data.x_train, self.data.x_test, self.image_size, directory=self.cache_dir
            )
        return self._features

    def run(self, strategy: str, support: np.ndarray, seed: int) -> float:
        """Train ``strategy`` on the support sample and return its test accuracy."""
        gpus = []
        if self.device.type == "cuda":
            gpus = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=gpus):
            torch.manual_seed(seed)
            return getattr(self, f"_{strategy}")(support, seed)

    # ------------------------------------------------------------------ strategies
    def _linear_probe(self, support: np.ndarray, seed: int) -> float:
        head = self._probe(support)
        with torch.no_grad():
            return _accuracy(head(self.features().test.to(self.device)), self.data.y_test)

    def _pixels(self, support: np.ndarray, seed: int) -> float:
        pixels = self.data.x_train[support].flatten(1).to(self.device)
        head = fit_logistic(pixels, self.data.y_train[support].to(self.device), self.data.num_classes)
        with torch.no_grad():
            return _accuracy(head(self.data.x_test.flatten(1).to(self.device)), self.data.y_test)

    def _fine_tune(self, support: np.ndarray, seed: int) -> float:
        net = _HeadedBackbone(copy.deepcopy(self.classifier().module), self._probe(support))
        return self._train_and_score(net, support, seed, lr=self.lr, frozen_bn=True, prepare=self._backbone_input)

    def _scratch(self, support: np.ndarray, seed: int) -> float:
        random_init = load_model(self.classifier().name, pretrained=False, device="cpu").module
        head = nn.Linear(_feature_dim(random_init, self.classifier().in_chans, self.image_size), self.data.num_classes)
        net = _HeadedBackbone(random_init, head)
        return self._train_and_score(net, support, seed, lr=self.lr, frozen_bn=False, prepare=self._backbone_input)

    def _small_cnn(self, support: np.ndarray, seed: int) -> float:
        net = small_cnn(self.data.x_train.shape[1], self.data.num_classes)
        return self._train_and_score(net, support, seed, lr=SMALL_CNN_LR, frozen_bn=False, prepare=self._pixel_input)

    # --------------------------------------------------------------------- helpers
    def _probe(self, support: np.ndarray) -> nn.Linear:
        features = self.features().train[support].to(self.device)
        return fit_logistic(features, self.data.y_train[support].to(self.device), self.data.num_classes)

    def _backbone_input(self, images: torch.Tensor) -> torch.Tensor:
        return prepare_images(self.classifier(), images, self.image_size).contiguous(memory_format=torch.channels_last)

    def _pixel_input(self, images: torch.Tensor) -> torch.Tensor:
        return resize(images.to(self.device, torch.float32), self.image_size)

    def _train_and_score(
        self, net: nn.Module, support: np.ndarray, seed: int, *, lr: float, frozen_bn: bool,
        prepare: Callable[[torch.Tensor], torch.Tensor],
    ) -> float:
        net = net.to(self.device, memory_format=torch.channels_last)
        inputs = prepare(self.data.x_train[support])
        labels = self.data.y_train[support].to(self.device)
        _train(net, inputs, labels, steps=self.steps, lr=lr, batch_size=self.batch_size, seed=seed, frozen_bn=frozen_bn)
        correct = 0
        with torch.inference_mode():
            for images, targets in zip(self.data.x_test.split(128), self.data.y_test.split(128)):
                correct += int((net(prepare(images)).argmax(1).cpu() == targets).sum())
        return correct / len(self.data.y_test)


# ------------------------------------------------------------------------ validation
def _check_strategies(strategies: Iterable[str] | str) -> list[str]:
    names = [strategies] if isinstance(strategies, str) else list(strategies)
    unknown = [s for s in names if s not in STRATEGIES]
    if unknown or not names:
        close = difflib.get_close_matches(unknown[0], STRATEGIES, n=1) if unknown else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise InputError(
            f"Unknown strategy {', '.join(map(repr, unknown)) or '(none given)'}.{hint} "
            f"Choose from: {', '.join(STRATEGIES)}."
        )
    return list(dict.fromkeys(names))


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InputError(f"{name} must be a whole number of at least 1, got {value!r}.")
    return int(value)


def _check_shots(shots: Iterable[int] | int, data: Dataset) -> list[int]:
    levels = [shots] if isinstance(shots, (int, np.integer)) else list(shots)
    if not levels:
        raise InputError("shots is empty; give labelled examples per class, e.g. shots=(1, 5, 20).")
    levels = sorted({_check_positive_int("Each shots value", k) for k in levels})
    counts = torch.bincount(data.y_train, minlength=data.num_classes)
    smallest = int(counts.argmin())
    available = int(counts[smallest])
    if levels[-1] > available:
        raise InputError(
            f"shots={levels[-1]} asks for more labelled examples per class than {data.name!r} has: class "
            f"{data.class_names[smallest]!r} has only {available} training images. Use shots ≤ {available}."
        )
    return levels


def _check_dataset(dataset: str | Dataset) -> Dataset:
    data = dataset if isinstance(dataset, Dataset) else load_dataset(dataset)
    if not data.is_image:
        raise InputError(
            f"Dataset {data.name!r} holds {data.input_shape}-shaped points, not images; transfer needs image "
            "data such as 'textures', 'digits', 'cifar10' or 'imagefolder:PATH'."
        )
    return data


# ---------------------------------------------------------------------- results file
def _results_format(path: Path) -> str:
    return "json" if path.suffix.lower() == ".json" else "jsonl"


def read_results_file(path: str | Path) -> tuple[dict[str, object], list[Row]]:
    """The configuration and the finished rows stored in a ``compare_transfer(out=...)`` file."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
        if _results_format(path) == "json":
            document = json.loads(text)
            config, rows = document["config"], document["rows"]
        else:
            lines = [json.loads(line) for line in text.splitlines() if line.strip()]
            config, rows = lines[0]["config"], lines[1:]
        for row in rows:
            row["strategy"], row["shots"], row["seed"] = str(row["strategy"]), int(row["shots"]), int(row["seed"])
        if not isinstance(config, dict):
            raise TypeError("the configuration is not an object")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise InputError(
            f"{path} is not a results file written by compare_transfer ({type(exc).__name__}: {exc}). "
            "Choose another out= file, or delete this one."
        ) from None
    return config, rows


def _read_rows(path: Path, config: dict[str, object]) -> dict[tuple[str, int, int], Row]:
    """Rows already stored in ``path`` for this configuration, keyed by (strategy, shots, seed)."""
    if not path.exists():
        return {}
    stored_config, rows = read_results_file(path)
    if stored_config != config:
        differences = [
            f"{key} {stored_config.get(key)!r} there, {config.get(key)!r} now"
            for key in sorted(set(config) | set(stored_config)) if stored_config.get(key) != config.get(key)
        ]
        raise InputError(
            f"{path} holds results of a different configuration ({'; '.join(differences)}), so they cannot be "
            "resumed. Choose another out= file, or delete this one to start over."
        )
    return {(r["strategy"], r["shots"], r["seed"]): r for r in rows}


def _write_rows(path: Path, config: dict[str, object], rows: Iterable[Row]) -> None:
    """Write the whole file to a temporary sibling, then atomically replace ``path``."""
    rows = list(rows)
    if _results_format(path) == "json":
        text = json.dumps({"config": config, "rows": rows}, indent=1) + "\n"
    else:
        text = "".join(json.dumps(line) + "\n" for line in [{"config": config}, *rows])
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# ------------------------------------------------------------------------- the entry
def compare_transfer(
    dataset: str | Dataset = "textures",
    backbone: str | Classifier = "efficientnet_lite0",
    shots: Sequence[int] | int = DEFAULT_SHOTS,
    seeds: int = 3,
    strategies: Sequence[str] | str = tuple(STRATEGIES),
    image_size: int = 64,
    steps: int = 100,
    out: str | Path | None = None,
    callback: Callback | None = None,
    device: str | torch.device | None = None,
    *,
    lr: float = DEFAULT_LR,
    batch_size: int = 32,
    cache_dir: str | Path | None = None,
) -> TransferResults:
    """Compare transfer learning with training from scratch on ``shots`` labelled examples per class.

    For every shot level and seed one sample of ``shots`` training images per class is drawn and
    every strategy (see ``STRATEGIES``) trains on that same sample; accuracy is measured on the
    whole test split. Networks train for ``steps`` Adam steps on mini-batches of up to ``batch_size``;
    fine_tune and scratch share the learning rate ``lr`` (at 1e-3 Adam's first, sign-like steps
    wreck the pretrained weights on digits), small_cnn uses ``SMALL_CNN_LR``. Images are resized
    to ``image_size`` and normalized with the backbone's mean/std; frozen features are cached
    (``cache_dir``, default ``$EXPLAINER_CACHE`` or ``~/.cache/explainer``).

    ``out`` (``.jsonl``, or ``.json``) receives every finished run at once, atomically; rerunning
    the same configuration resumes and recomputes only missing runs. ``callback(done, total, row)``
    is called after each newly computed run.
    """
    start = time.perf_counter()
    names = _check_strategies(strategies)
    seed_count = _check_positive_int("seeds", seeds)
    steps = _check_positive_int("steps", steps)
    batch_size = _check_positive_int("batch_size", batch_size)
    image_size = _check_positive_int("image_size", image_size)
    if image_size < 16:
        raise InputError(f"image_size must be at least 16 pixels, got {image_size}; 64 works for pretrained features.")
    if not lr > 0:
        raise InputError(f"lr must be positive, got {lr}.")
    data = _check_dataset(dataset)
    levels = _check_shots(shots, data)
    target = resolve_device(backbone.device if isinstance(backbone, Classifier) and device is None else device)
    if isinstance(backbone, Classifier) and backbone.device != target:
        raise InputError(
            f"The backbone lives on {backbone.device} but device={str(target)!r} was asked for; leave device=None "
            "to use the backbone's device, or pass the model's name instead of the loaded model."
        )
    experiment = _Experiment(data, backbone, image_size, steps, lr, batch_size, target, cache_dir)
    config: dict[str, object] = {
        "dataset": data.name,
        "dataset_sha256": tensor_digest(data.x_train, data.y_train, data.x_test, data.y_test)[:16],
        "backbone": experiment.backbone_name,
        "image_size": image_size,
        "steps": steps,
        "lr": lr,
        "small_cnn_lr": SMALL_CNN_LR,
        "batch_size": batch_size,
        "probe_C": PROBE_C,
        "recipe": RECIPE_VERSION,
    }
    path = Path(out).expanduser() if out is not None else None
    stored = _read_rows(path, config) if path is not None else {}
    plan = [(k, seed, name) for k in levels for seed in range(seed_count) for name in names]
    pending = {name for k, seed, name in plan if (name, k, seed) not in stored}
    if pending & {"linear_probe", "fine_tune"}:
        experiment.features()  # a one-off cost, reported as feature_seconds rather than in the first run's seconds
    elif "scratch" in pending:
        experiment.classifier()
    rows: list[Row] = []
    resumed = 0
    for k, seed, name in plan:
        if (name, k, seed) in stored:
            rows.append(stored[(name, k, seed)])
            resumed += 1
            continue
        run_start = time.perf_counter()
        accuracy = experiment.run(name, few_shot_sample(data.y_train, data.num_classes, k, seed), seed)
        row: Row = {
            "dataset": data.name, "backbone": experiment.backbone_name, "strategy": name, "shots": k, "seed": seed,
            "accuracy": round(accuracy, 6), "seconds": round(time.perf_counter() - run_start, 4),
        }
        rows.append(row)
        stored[(name, k, seed)] = row
        if path is not None:
            _write_rows(path, config, stored.values())
        if callback is not None:
            callback(len(rows), len(plan), row)
    table = pd.DataFrame(rows, columns=["dataset", "backbone", "strategy", "shots", "seed", "accuracy", "seconds"])
    features = experiment._features
    return TransferResults(
        table=table,
        dataset=data.name,
        backbone=experiment.backbone_name,
        num_classes=data.num_classes,
        input_shape=data.input_shape,
        strategies=names,
        test_counts=torch.bincount(data.y_test, minlength=data.num_classes).tolist(),
        config=config,
        device=str(experiment.device),
        seconds=time.perf_counter() - start,
        feature_seconds=features.seconds if features else None,
        feature_source=features.source if features else None,
        resumed=resumed,
        out=str(path) if path is not None else None,
    )


def open_results(
    path: str | Path, callback: Callback | None = None, device: str | torch.device | None = None,
    *, cache_dir: str | Path | None = None,
) -> TransferResults:
    """Reopen a ``compare_transfer(out=path)`` file as :class:`TransferResults`.

    The file's configuration and its rows' strategies, shot levels and seeds define the call; it is
    replayed with ``out=path``, so nothing stored is recomputed – only the runs an interrupted file
    lacks are (``callback`` reports them).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"Results file {path} does not exist.")
    config, rows = read_results_file(path)
    if not rows:
        raise InputError(f"{path} holds no finished runs yet; run compare_transfer(..., out={str(path)!r}) first.")
    try:
        dataset, backbone = str(config["dataset"]), str(config["backbone"])
        options = {key: config[key] for key in ("image_size", "steps", "lr", "batch_size")}
    except KeyError as exc:
        raise InputError(f"{path} has no {exc} in its configuration; it was not written by compare_transfer.") from None
    return compare_transfer(
        dataset, backbone,
        shots=sorted({row["shots"] for row in rows}),
        seeds=max(row["seed"] for row in rows) + 1,
        strategies=list(dict.fromkeys(row["strategy"] for row in rows)),
        out=path, callback=callback, device=device, cache_dir=cache_dir, **options,
    )
