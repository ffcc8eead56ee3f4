"""The shared guards and helpers (explainer.guards, .rng, .baselines, .jsonable, .models.predictions), each on a
real model the user owns."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import explainer
from explainer.baselines import baseline, blur_sigma
from explainer.errors import InputError
from explainer.guards import eval_mode, hook_guard, preserved_grads, user_state_guard
from explainer.jsonable import json_ready
from explainer.models.predictions import resolve_targets, top_k
from explainer.rng import isolated_rng, seeded_generator


class _Net(nn.Module):
    """A tiny CNN with BatchNorm (running statistics) and dropout, so train/eval mode matters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.drop(self.pool(self.act(self.bn(self.conv(x)))).flatten(1)))


def _user_model() -> nn.Module:
    """A model as a user leaves it mid-training: train mode, one submodule in eval, accumulated grads."""
    generator = torch.Generator().manual_seed(1)
    model = _Net()
    model.train()
    model.bn.eval()  # the user froze the batch norm on purpose
    x = torch.randn(4, 3, 8, 8, generator=generator)
    model(x).sum().backward()
    model.head.bias.grad = None  # one parameter without a gradient
    return model


def _state(model: nn.Module) -> dict:
    return {
        "params": {n: p.detach().clone() for n, p in model.named_parameters()},
        "buffers": {n: b.detach().clone() for n, b in model.named_buffers()},
        "training": {n: m.training for n, m in model.named_modules()},
        "grads": {n: None if p.grad is None else p.grad.detach().clone() for n, p in model.named_parameters()},
        "grad_ids": {n: None if p.grad is None else id(p.grad) for n, p in model.named_parameters()},
    }


def _assert_same(before: dict, model: nn.Module) -> None:
    after = _state(model)
    assert after["training"] == before["training"]
    for key in ("params", "buffers"):
        for name, value in before[key].items():
            assert torch.equal(after[key][name], value), f"{key} {name} changed"
    for name, grad in before["grads"].items():
        if grad is None:
            assert after["grads"][name] is None, f"grad of {name} appeared"
        else:
            assert torch.equal(after["grads"][name], grad), f"grad of {name} changed"
    assert after["grad_ids"] == before["grad_ids"]


# ------------------------------------------------------------------------------- eval_mode
def test_eval_mode_restores_every_submodules_flag():
    model = _user_model()
    before = {n: m.training for n, m in model.named_modules()}
    with eval_mode(model):
        assert not any(m.training for m in model.modules())
    assert {n: m.training for n, m in model.named_modules()} == before
    assert model.training and not model.bn.training


def test_eval_mode_restores_on_error():
    model = _user_model()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(model):
        raise RuntimeError("boom")
    assert model.training and model.drop.training and not model.bn.training


# ------------------------------------------------------------------------- preserved_grads
def test_preserved_grads_survive_zero_grad_and_backward():
    model = _user_model()
    before = _state(model)
    with preserved_grads(model):
        model.zero_grad(set_to_none=False)  # zeroes the user's grad tensors in place
        model(torch.ones(2, 3, 8, 8)).sum().backward()  # and creates one for head.bias
        model.zero_grad(set_to_none=True)
    _assert_same(before, model)


def test_preserved_grads_restore_on_error():
    model = _user_model()
    before = _state(model)
    with pytest.raises(ValueError), preserved_grads(model):
        model(torch.ones(2, 3, 8, 8)).sum().backward()
        raise ValueError
    _assert_same(before, model)


# ------------------------------------------------------------------------------ hook_guard
def _hook_counts(model: nn.Module) -> dict:
    return {
        n: (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks), len(m._backward_pre_hooks))
        for n, m in model.named_modules()
    }


def test_hook_guard_removes_hooks_added_inside_and_keeps_the_users():
    model = _user_model()
    calls: list[str] = []
    model.conv.register_forward_hook(lambda *_: calls.append("user"))
    before = _hook_counts(model)
    with hook_guard(model):
        model.bn.register_forward_hook(lambda *_: calls.append("leak"))
        model.act.register_forward_pre_hook(lambda *_: calls.append("leak-pre"))
        model.head.register_full_backward_hook(lambda *_: calls.append("leak-bwd"))
        model.head.register_full_backward_pre_hook(lambda *_: calls.append("leak-bwd-pre"))
        model.pool.register_forward_hook(lambda *_: None, with_kwargs=True)
        torch.nn.modules.module.register_module_forward_hook(lambda *_: calls.append("leak-global"))
        model(torch.ones(1, 3, 8, 8, requires_grad=True)).sum().backward()
    assert {"leak", "leak-pre", "leak-bwd", "leak-global"} <= set(calls)
    assert _hook_counts(model) == before
    calls.clear()
    model(torch.ones(1, 3, 8, 8, requires_grad=True)).sum().backward()
    assert calls == ["user"]


def test_hook_guard_removes_hooks_on_error():
    model = _user_model()
    before = _hook_counts(model)
    with pytest.raises(KeyError), hook_guard(model):
        model.conv.register_forward_hook(lambda *_: None)
        raise KeyError
    assert _hook_counts(model) == before


def test_user_state_guard_leaves_everything_as_found():
    model = _user_model()
    before = _state(model)
    hooks = _hook_counts(model)
    with user_state_guard(model):
        assert not model.training
        model.conv.register_forward_hook(lambda *_: None)
        model(torch.randn(2, 3, 8, 8)).sum().backward()
    _assert_same(before, model)
    assert _hook_counts(model) == hooks


# ------------------------------------------------------------------------------------- RNG
def test_seeded_generator_is_reproducible_and_private():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = torch.rand(4, generator=seeded_generator(7))
    second = torch.rand(4, generator=seeded_generator(7))
    assert torch.equal(first, second)
    assert not torch.equal(first, torch.rand(4, generator=seeded_generator(8)))
    assert torch.equal(torch.rand(3), expected)  # the global stream did not move
    with pytest.raises(InputError):
        seeded_generator(1.5)  # type: ignore[arg-type]


def test_isolated_rng_seeds_inside_and_restores_all_global_states():
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(5)
    np.random.seed(5)
    random.seed(5)
    with isolated_rng(0):
        inside = nn.Linear(4, 4).weight.detach().clone()  # nn.init draws from the global RNG
        np.random.rand(10)
        random.random()
    with isolated_rng(0):
        again = nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(inside, again)
    after = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(after[0], expected[0])
    assert np.array_equal(after[1], expected[1])
    assert after[2] == expected[2]


def test_isolated_rng_restores_on_error():
    torch.manual_seed(9)
    expected = torch.rand(2)
    torch.manual_seed(9)
    with pytest.raises(ZeroDivisionError), isolated_rng(1):
        torch.rand(100)
        _ = 1 / 0
    assert torch.equal(torch.rand(2), expected)


# -------------------------------------------------------------------------------- targets
@pytest.fixture(scope="module")
def tiny_classifier() -> explainer.Classifier:
    return explainer.Classifier.from_module(
        _Net().eval(), labels=["cat", "dog", "bird"], input_size=8, name="tiny"
    )


def test_resolve_targets_vocabulary(tiny_classifier):
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 1.0]])
    assert resolve_targets(tiny_classifier, None, logits) == [1, 0]
    assert resolve_targets(tiny_classifier, 2, logits) == [2, 2]
    assert resolve_targets(tiny_classifier, "Dog", logits) == [1, 1]
    assert resolve_targets(tiny_classifier, ["bird", 0], logits) == [2, 0]
    assert resolve_targets(tiny_classifier, torch.tensor([2, 1]), logits) == [2, 1]
    assert resolve_targets(tiny_classifier, torch.tensor(1), logits) == [1, 1]
    assert resolve_targets(tiny_classifier, np.array([0, 2]), count=2) == [0, 2]
    assert resolve_targets(tiny_classifier, "cat", count=3) == [0, 0, 0]
    with pytest.raises(InputError, match="one per image"):
        resolve_targets(tiny_classifier, [0, 1, 2], logits)
    with pytest.raises(InputError, match="out of range"):
        resolve_targets(tiny_classifier, 3, logits)
    with pytest.raises(InputError, match="logits"):
        resolve_targets(tiny_classifier, None, count=2)


# ------------------------------------------------------------------------------- baselines
def test_baseline_vocabulary_and_alias():
    inputs = torch.rand(2, 3, 40, 60)
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.5)
    assert torch.equal(baseline(inputs, "zero"), torch.zeros_like(inputs))
    assert torch.equal(baseline(inputs, "zeros"), baseline(inputs, "zero"))
    black = baseline(inputs, "black", mean=mean, std=std)
    white = baseline(inputs, "white", mean=mean, std=std)
    assert black[0, :, 0, 0].tolist() == pytest.approx([-0.5 / 0.2, -0.4 / 0.25, -0.3 / 0.5])
    assert white[1, :, 5, 5].tolist() == pytest.approx([0.5 / 0.2, 0.6 / 0.25, 0.7 / 0.5])
    blurred = baseline(inputs, "blur")
    assert blurred.shape == inputs.shape
    assert blur_sigma(40, 60) == pytest.approx(2.0)  # 1/20 of the shorter side
    assert blurred.std() < inputs.std() / 2  # noise is smoothed away
    assert blurred.mean() == pytest.approx(float(inputs.mean()), abs=0.02)
    tiny = torch.rand(1, 1, 1, 5)
    assert torch.equal(baseline(tiny, "blur"), tiny)  # too small for a kernel: unchanged
    with pytest.raises(InputError, match="zero, black, white, blur"):
        baseline(inputs, "gray")


# ----------------------------------------------------------------------------------- top_k
def test_top_k_predictions():
    probabilities = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])
    rows = top_k(probabilities, ["a", "b", "c"], 2)
    assert [[(p.label, p.index) for p in row] for row in rows] == [[("b", 1), ("c", 2)], [("a", 0), ("c", 2)]]
    assert rows[0][0].probability == pytest.approx(0.7)
    assert len(top_k(probabilities, ["a", "b", "c"], 10)[0]) == 3
    with pytest.raises(InputError):
        top_k(probabilities, ["a", "b", "c"], 0)


# ------------------------------------------------------------------------------ json_ready
@dataclass
class _Result:
    name: str
    value: float
    array: np.ndarray
    tensor: torch.Tensor
    nested: dict
    model: nn.Module


def test_json_ready_handles_numpy_torch_nan_and_dataclasses():
    result = _Result(
        name="r", value=float("nan"), array=np.array([1.5, np.inf]), tensor=torch.tensor([[1, 2]]),
        nested={1: np.float32(0.25), "t": (np.int64(3), torch.tensor(float("-inf")))}, model=nn.Linear(1, 1),
    )
    ready = json_ready(result)
    assert ready == {"name": "r", "value": None, "array": [1.5, None], "tensor": [[1, 2]],
                     "nested": {"1": 0.25, "t": [3, None]}, "model": "Linear"}
    assert json.loads(json.dumps(ready, allow_nan=False)) == ready
    assert "model" not in json_ready(result, exclude=("model",))
    assert math.isnan(result.value)  # the object itself is untouched


# ------------------------------------------------- the CAM-layer probe leaves the user's model alone
@pytest.mark.parametrize("method", ["gradcam", "gradcam_plus_plus"])
def test_explain_cam_on_a_training_model_leaves_it_as_found(one_torch_thread, method):
    """explain() with a CAM method (which probes for the CAM layer with a forward and backward pass) on
    a model in train mode with accumulated gradients: parameters, buffers, training and .grad unchanged."""
    import timm

    torch.manual_seed(0)
    module = timm.create_model("test_efficientnet", pretrained=False, num_classes=4)
    classifier = explainer.Classifier.from_module(module, input_size=64, name="test_efficientnet")
    module.train()  # the user goes on training after wrapping
    generator = torch.Generator().manual_seed(3)
    x, y = torch.randn(4, 3, 64, 64, generator=generator), torch.tensor([0, 1, 2, 3])
    nn.functional.cross_entropy(module(x), y).backward()  # BN statistics move, gradients accumulate
    module.classifier.bias.grad = None
    before = _state(module)
    hooks = _hook_counts(module)
    rng = torch.get_rng_state()
    result = explainer.explain(classifier, torch.rand(2, 3, 64, 64, generator=generator), method=method)
    assert result.attributions.shape == (2, 3, 64, 64)
    _assert_same(before, module)
    assert _hook_counts(module) == hooks
    assert torch.equal(torch.get_rng_state(), rng)


# -------------------------------------------- every library call on a model the user is still training
def _training_classifier(frozen_bn: bool = True) -> tuple[explainer.Classifier, nn.Module]:
    module = _Net()
    classifier = explainer.Classifier.from_module(module, labels=["cat", "dog", "bird"], input_size=16, name="net")
    module.train()
    if frozen_bn:
        module.bn.eval()
    module(torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))).sum().backward()
    return classifier, module


_CALLS = {
    "predict": lambda c, x: c.predict(x, top_k=2),
    "layer_activations": lambda c, x: explainer.layer_activations(c, x, layers=["conv", "bn"]),
    "model_anatomy": lambda c, x: explainer.model_anatomy(c),
    "ablate": lambda c, x: explainer.ablate(c, x, layer="act", channels=[0, 1]),
    "cam_channel_importance": lambda c, x: explainer.cam_channel_importance(c, x, layer="act"),
    "top_activating": lambda c, x: explainer.top_activating(c, x, layer="act", channel=1, top_k=2),
    "visualize_channel": lambda c, x: explainer.visualize_channel(
        c, layer="act", channel=1, steps=2, size=16, reference_images=x),
    "embed_dataset": None,  # needs a Dataset; covered in test_inside
    "conv_step": lambda c, x: explainer.conv_step(c, x, out_channel=1, row=2, col=3),
}


@pytest.mark.parametrize("frozen_bn", [True, False], ids=["bn-frozen", "all-training"])
@pytest.mark.parametrize("name", [name for name, call in _CALLS.items() if call is not None])
def test_library_calls_leave_a_training_model_as_found(name, frozen_bn):
    """Mixed training flags come back exactly; with BatchNorm training, its running statistics stay put."""
    classifier, module = _training_classifier(frozen_bn)
    before = _state(module)
    hooks = _hook_counts(module)
    rng = torch.get_rng_state()
    _CALLS[name](classifier, torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(4)))
    _assert_same(before, module)
    assert _hook_counts(module) == hooks
    assert torch.equal(torch.get_rng_state(), rng)


def test_results_are_json_ready_and_summarized():
    classifier, _ = _training_classifier()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(5))
    results = [
        explainer.layer_activations(classifier, images, layers=["conv", "act"]),
        explainer.model_anatomy(classifier),
        explainer.ablate(classifier, images, layer="act", channels=[0]),
        explainer.cam_channel_importance(classifier, images, layer="act"),
        explainer.top_activating(classifier, images, layer="act", channel=0, top_k=1),
        explainer.conv_step(classifier, images, out_channel=0, row=0, col=0),
    ]
    for result in results:
        data = result.to_dict()
        assert json.loads(json.dumps(data, allow_nan=False)) == data
        assert data["model_name"] == "net" and data["device"] == "cpu" and data["seconds"] >= 0
        assert len(result.summary()) >= 1 and hasattr(result.summary(), "columns")
    assert results[2].to_dict()["method"] == "zero" and results[3].method == "gradient_x_activation"


# ------------------------------------------------------------------------------ API evolution
def test_old_positional_calls_still_work_with_a_deprecation_warning():
    classifier, _ = _training_classifier()
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(6))
    with pytest.warns(DeprecationWarning, match=r"ablate\(\): pass layer=\.\.\., channels=\.\.\. by keyword"):
        old = explainer.ablate(classifier, images, "act", [0, 1])
    assert old.channels == explainer.ablate(classifier, images, layer="act", channels=[0, 1]).channels
    with pytest.warns(DeprecationWarning, match="is now top_activating"):
        top = explainer.top_activating(classifier, "act", 1, images, 1)
    assert top.channel == 1 and len(top.indices) == 1
    importance = explainer.cam_channel_importance(classifier, images, layer="act")
    with pytest.warns(DeprecationWarning, match=r"top_k= \(not k=\)"):
        assert importance.top(k=2) == importance.top(2)
    with pytest.warns(DeprecationWarning, match="model_anatomy"):
        explainer.models.anatomy.anatomy(classifier)
    with pytest.raises(TypeError, match="positional argument"):
        explainer.ablate(classifier, images, "act", [0], "zero")
