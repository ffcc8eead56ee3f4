"""What the transfer strategies train: a logistic-regression head, a headed backbone and a small CNN;
the networks train through :func:`explainer.learn.training.train_steps`, the loop ``fit`` shares."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from explainer.learn.stepping import train_steps
from explainer.transfer.feature_cache import pooled_features

#: Inverse L2 strength of both logistic regressions (scikit-learn's ``C``), and their L-BFGS iterations.
PROBE_C = 1.0
LBFGS_STEPS = 100


def batch_norms(net: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm layer of ``net``."""
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


class HeadedBackbone(nn.Module):
    """A timm backbone's pooled penultimate features followed by a linear head.

    With ``frozen_norms`` its BatchNorm layers stay in eval mode (running statistics fixed) even
    when the network is put in training mode: fine-tuning on a handful of images must not replace
    ImageNet's statistics by those of one tiny batch.
    """

    def __init__(self, backbone: nn.Module, head: nn.Linear, *, frozen_norms: bool = False) -> None:
        super().__init__()
        self.backbone, self.head = backbone, head
        self.frozen_norms = frozen_norms

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Logits of normalized ``inputs``."""
        return self.head(pooled_features(self.backbone, inputs))

    def train(self, mode: bool = True) -> HeadedBackbone:
        """Set training mode; with ``frozen_norms`` the BatchNorm layers stay in eval mode."""
        super().train(mode)
        if self.frozen_norms:
            for norm in batch_norms(self):
                norm.eval()
        return self


def small_cnn(in_chans: int, num_classes: int) -> nn.Sequential:
    """Three stride-2 conv–BatchNorm–ReLU blocks (16, 32, 64 channels), a 4×4 pool and a linear layer."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(
        *block(in_chans, 16), *block(16, 32), *block(32, 64),
        nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(64 * 16, num_classes),
    )


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
        head.bias.sub_(head.weight @ mean)
    return head


def recalibrate_batch_norm(net: nn.Module, inputs: torch.Tensor, batch_size: int) -> None:
    """Set every BatchNorm's running statistics to their exact average over ``inputs``; ``net`` ends in eval mode.

    During a short training run the running averages lag behind the fast-moving weights; one
    pass over the training images with the final weights makes evaluation match training.
    """
    norms = batch_norms(net)
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


def train_network(
    net: nn.Module, inputs: torch.Tensor, labels: torch.Tensor, *, steps: int, lr: float, batch_size: int, seed: int,
) -> list[float]:
    """Train ``net`` for ``steps`` Adam steps on the support; eval mode after; the step losses.

    The steps are :func:`explainer.learn.training.train_steps` – the step and batching ``fit`` uses,
    with a step budget and without fit's per-epoch test pass and divergence stop (a fine-tune starts at
    the probe head's near-zero loss; fit's rule, 10× the first loss, stopped it after 2 of 100 steps).

    A network whose BatchNorm trained gets its running statistics recomputed over ``inputs`` at the
    end; a :class:`HeadedBackbone` with frozen norms keeps ImageNet's.
    """
    net.train()
    losses = train_steps(net, inputs, labels, steps=steps, lr=lr, optimizer="adam", batch_size=batch_size, seed=seed)
    if isinstance(net, HeadedBackbone) and net.frozen_norms:
        net.eval()
    else:
        recalibrate_batch_norm(net, inputs, batch_size)
    return losses
