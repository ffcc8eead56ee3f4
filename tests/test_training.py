"""Training on a CPU: architectures, fit() with telemetry, divergence, one learning step, FLOPs, the CLI receipt."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

import explainer
from explainer.cli import main
from explainer.errors import InputError, ModelLoadError
from explainer.hardware import describe_device, matmul_peak_gflops
from explainer.learn.architectures import build_cnn, build_mlp, build_model
from explainer.learn.flops import count_flops
from explainer.learn.training import fit, learning_step
from explainer.plots.training import gradient_norms, learning_step_figure, training_curves, update_ratios


@pytest.fixture(scope="module")
def digits() -> explainer.Dataset:
    return explainer.load_dataset("digits")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _analytic_flops(model: nn.Sequential, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Forward and backward FLOPs (2 per multiply-add) of a Sequential of convs, linears, pools and activations."""
    forward = backward = 0
    x = torch.zeros(1, *input_shape)
    first = True
    for module in model:
        y = module(x)
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            macs = module.weight.numel() * (y[0, 0].numel() if isinstance(module, nn.Conv2d) else 1)
            forward += 2 * macs
            backward += 2 * macs * (1 if first else 2)  # weight gradient, plus input gradient after the first layer
            first = False
        x = y
    return forward, backward


# ------------------------------------------------------------------------------------------ architectures
def test_default_digits_cnn_is_conv16_conv32_pool_fc64(digits):
    model = build_model("cnn", digits)
    assert sum(p.numel() for p in model.parameters()) == 38_282
    assert [name for name, _ in model.named_children()] == [
        "conv1", "act_conv1", "conv2", "act_conv2", "pool", "flatten", "fc1", "act1", "out"]
    assert model(digits.x_train[:3]).shape == (3, 10)


@pytest.mark.parametrize("activation, kind", [("tanh", nn.Tanh), ("sigmoid", nn.Sigmoid), ("gelu", nn.GELU), ("linear", nn.Identity)])
def test_mlp_activation_and_widths(activation, kind):
    model = build_mlp((2,), 2, hidden=(8, 4), activation=activation)
    assert isinstance(model.act1, kind) and isinstance(model.act2, kind)
    assert (model.fc1.out_features, model.fc2.out_features, model.out.out_features) == (8, 4, 2)
    assert build_mlp((2,), 3, hidden=()).out.in_features == 2  # no hidden layer: a linear model


def test_build_errors_name_the_problem(digits):
    with pytest.raises(InputError, match="Unknown activation 'swishy'.*relu, tanh"):
        build_mlp((2,), 2, activation="swishy")
    with pytest.raises(InputError, match="hidden must be positive integers"):
        build_mlp((2,), 2, hidden=(8, 0))
    with pytest.raises(InputError, match="channels must be positive integers"):
        build_cnn((1, 8, 8), 10, channels=(16, -2))
    with pytest.raises(InputError, match="kernel_size needs one size or one per convolution"):
        build_cnn((1, 8, 8), 10, kernel_size=(3, 3, 3))
    with pytest.raises(InputError, match="leaves no pixels"):
        build_cnn((1, 8, 8), 10, channels=(8, 8), kernel_size=5, padding="valid")
    with pytest.raises(InputError, match="use build_mlp"):
        build_model("cnn", explainer.load_dataset("xor"))
    with pytest.raises(ModelLoadError, match="Close timm names: resnet18"):
        build_model("resnet81", digits)
    with pytest.raises(InputError, match="apply to arch 'cnn' and 'mlp' only"):
        build_model("resnet18", digits, activation="tanh")


def test_timm_architecture_by_name(digits):
    model = build_model("resnet10t", digits)
    assert model(digits.x_train[:2]).shape == (2, 10)


# ------------------------------------------------------------------------------------------------ FLOPs
def test_flops_match_analytic_counts_for_cnn_and_mnist_size_cnn(digits):
    for model, shape in (
        (build_model("cnn", digits), (1, 8, 8)),
        (build_cnn((1, 28, 28), 10, channels=(24, 32), kernel_size=(5, 3), hidden=256, pool="each", padding="valid"), (1, 28, 28)),
    ):
        count = count_flops(model, shape)
        assert (count.forward, count.backward) == _analytic_flops(model, shape)
        assert count.training == count.forward + count.backward


def test_depthwise_convolution_backward_is_not_over_counted():
    channels, size = 8, 6
    depthwise = nn.Sequential(nn.Conv2d(4, channels, 1), nn.Conv2d(channels, channels, 3, padding=1, groups=channels),
                              nn.Flatten(), nn.Linear(channels * size * size, 3))
    count = count_flops(depthwise, (4, size, size))
    depthwise_macs = channels * 9 * size * size  # one 3×3 filter per channel
    assert (count.forward, count.backward) == _analytic_flops(depthwise, (4, size, size))
    pointwise_macs, linear_macs = 4 * channels * size * size, channels * size * size * 3
    assert count.backward == 2 * (pointwise_macs + 2 * depthwise_macs + 2 * linear_macs)


def test_flop_count_rejects_a_non_logit_model():
    with pytest.raises(InputError, match="logits shaped"):
        count_flops(nn.Conv2d(1, 2, 3), (1, 8, 8))


# --------------------------------------------------------------------------------------------- hardware
def test_matmul_peak_is_measured_once_per_process():
    first = matmul_peak_gflops("cpu", seconds=0.05)
    assert 0.1 < first < 1e5
    assert matmul_peak_gflops("cpu", seconds=0.05) == first  # cached, not re-measured
    assert "1 torch thread)" in describe_device("cpu")
    with pytest.raises(InputError, match="seconds must be positive"):
        matmul_peak_gflops("cpu", seconds=0)


# -------------------------------------------------------------------------------------------------- fit
def test_cli_train_reaches_97_percent_with_a_computed_receipt(digits, capsys):
    assert main(["train", "--dataset", "digits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "reached_target" and out["test_accuracy"] >= 0.97
    assert out["parameters"] == 38_282 and out["threads"] == 1 and out["device"] == "cpu"
    assert out["flops_per_sample"] == count_flops(build_model("cnn", digits), (1, 8, 8)).training
    assert out["samples_per_second"] == pytest.approx(out["samples_seen"] / out["compute_seconds"])
    assert out["gflops_per_second"] == pytest.approx(out["flops_per_sample"] * out["samples_per_second"] / 1e9)
    assert out["peak_fraction"] == pytest.approx(out["gflops_per_second"] / out["peak_gflops"])
    assert out["samples_seen"] == out["epochs"] * len(digits.y_train)
    assert 0 < out["compute_seconds"] <= out["train_seconds"]
    receipt = out["receipt"]
    assert f"{out['parameters']:,} parameters trained to {out['test_accuracy']:.1%}" in receipt
    assert f"in {out['train_seconds']:.2f} s on this CPU (1 thread)" in receipt
    assert f"{out['gflops_per_second']:.1f} GFLOP/s = {out['peak_fraction']:.0%}" in receipt


def test_far_too_high_learning_rate_diverges_and_is_reported(digits):
    run = fit(build_model("cnn", digits), digits, epochs=5, lr=10.0)
    assert run.status == "diverged" and run.diverged
    assert "diverged" in run.message and "learning rate 10 is far too high" in run.message
    first_step_loss = math.log(10)  # about the loss of an untrained 10-class model
    last = run.history[-1].train_loss
    assert not math.isfinite(last) or last > 10 * first_step_loss
    assert "diverged" in run.receipt()


def test_step_telemetry_and_per_layer_statistics(digits):
    steps_per_epoch = math.ceil(len(digits.y_train) / 64)
    run = fit(build_model("mlp", digits), digits, epochs=2, batch_size=64, telemetry="step")
    assert run.layers == ["fc1", "out"]
    assert len(run.steps) == 2 * steps_per_epoch
    assert [s.epoch for s in run.steps].count(2) == steps_per_epoch
    for step in run.steps:
        assert set(step.grad_norm) == {"fc1", "out"} and all(v > 0 for v in step.grad_norm.values())
        assert all(0 < v < 1 for v in step.update_ratio.values())
    epoch = run.history[0]
    mean_fc1 = np.mean([s.grad_norm["fc1"] for s in run.steps if s.epoch == 1])
    assert epoch.grad_norm["fc1"] == pytest.approx(mean_fc1)
    assert epoch.train_loss == pytest.approx(
        sum(s.loss * min(64, len(digits.y_train) - 64 * i) for i, s in enumerate(run.steps[:steps_per_epoch]))
        / len(digits.y_train), rel=1e-5)
    off = fit(build_model("mlp", digits), digits, epochs=1, telemetry="off")
    assert off.history[0].grad_norm == {} and off.steps == []


def test_update_ratio_of_plain_sgd_is_lr_times_gradient_over_weight(digits):
    model = build_model("mlp", digits, hidden=())
    weight_before = model.out.weight.detach().clone()
    bias_before = model.out.bias.detach().clone()
    run = fit(model, digits, epochs=1, batch_size=len(digits.y_train), lr=0.5, optimizer="sgd", telemetry="step")
    delta = torch.cat([(model.out.weight.detach() - weight_before).flatten(), (model.out.bias.detach() - bias_before).flatten()])
    before = torch.cat([weight_before.flatten(), bias_before.flatten()])
    step = run.steps[0]
    assert step.update_ratio["out"] == pytest.approx(float(delta.norm() / before.norm()), rel=1e-4)
    assert step.update_ratio["out"] == pytest.approx(0.5 * step.grad_norm["out"] / float(before.norm()), rel=1e-4)


def test_callback_sees_every_epoch_and_can_stop(digits):
    seen = []
    run = fit(build_model("mlp", digits), digits, epochs=10, callback=lambda s: seen.append(s.epoch) or s.epoch < 2)
    assert run.status == "stopped" and run.epochs == 2 and seen == [1, 2]
    assert "Stopped by the callback after epoch 2" in run.message


def test_l2_shrinks_weights_and_unreached_target_is_reported(digits):
    plain = fit(build_model("mlp", digits, seed=1), digits, epochs=3, optimizer="sgd", lr=0.1)
    shrunk = fit(build_model("mlp", digits, seed=1), digits, epochs=3, optimizer="sgd", lr=0.1, l2=0.05,
                 target_accuracy=1.0)
    norm = lambda run: float(run.model.fc1.weight.detach().norm())  # noqa: E731
    assert norm(shrunk) < 0.8 * norm(plain)
    assert shrunk.status == "target_not_reached" and "100% was not reached" in shrunk.message
    assert plain.status == "completed"


def test_fit_errors_name_the_problem(digits):
    model = build_model("mlp", digits)
    with pytest.raises(InputError, match="lr .* must be a positive number"):
        fit(model, digits, lr=-1)
    with pytest.raises(InputError, match="Unknown optimizer 'rmsprop'"):
        fit(model, digits, optimizer="rmsprop")
    with pytest.raises(InputError, match="Unknown telemetry 'all'"):
        fit(model, digits, telemetry="all")
    with pytest.raises(InputError, match="target_accuracy is a fraction"):
        fit(model, digits, target_accuracy=97)
    with pytest.raises(InputError, match="cannot take 'digits' inputs shaped"):
        fit(build_mlp((2,), 10), digits)
    with pytest.raises(InputError, match="has 10 classes"):
        fit(build_mlp((1, 8, 8), 3), digits)


# ----------------------------------------------------------------------------------------- learning step
def test_learning_step_is_exact_and_leaves_no_hooks(digits):
    model = build_model("cnn", digits)
    reference = build_model("cnn", digits)
    batch = (digits.x_train[:16], digits.y_train[:16])
    step = learning_step(model, batch, lr=0.05)
    for name, parameter in model.named_parameters():
        assert torch.equal(step.weights_after[name], step.weights_before[name] - 0.05 * step.gradients[name])
        assert torch.equal(parameter.detach(), step.weights_after[name])
        assert torch.equal(step.updates[name], -0.05 * step.gradients[name])
    nn.functional.cross_entropy(reference(batch[0]), batch[1]).backward()
    for (name, parameter) in reference.named_parameters():
        torch.testing.assert_close(step.gradients[name], parameter.grad)
    assert list(step.activations) == ["conv1", "act_conv1", "conv2", "act_conv2", "pool", "flatten", "fc1", "act1", "out"]
    assert step.activations["conv2"].shape == (16, 32, 8, 8)
    assert torch.equal(step.activations["out"], step.logits)
    assert step.loss == pytest.approx(float(nn.functional.cross_entropy(step.logits, batch[1])))
    assert all(not module._forward_hooks for module in model.modules())
    with pytest.raises(InputError, match="cannot take this batch"):
        learning_step(model, (torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long)), lr=0.1)
    assert all(not module._forward_hooks for module in model.modules())


def test_learning_step_errors_and_mse(digits):
    model = build_model("mlp", digits)
    batch = (digits.x_train[:4], digits.y_train[:4])
    with pytest.raises(InputError, match="Unknown loss 'hinge'"):
        learning_step(model, batch, lr=0.1, loss="hinge")
    with pytest.raises(InputError, match="lr .* must be a positive number"):
        learning_step(model, batch, lr=0)
    with pytest.raises(InputError, match="pair of tensors"):
        learning_step(model, digits.x_train[:4], lr=0.1)
    step = learning_step(model, batch, lr=0.1, loss="mse")
    assert step.loss_name == "mse" and step.loss > 0


# ------------------------------------------------------------------------------------------------ figures
def test_training_figures_carry_the_run_numbers(digits):
    run = fit(build_model("cnn", digits), digits, epochs=2, telemetry="step")
    curves = training_curves(run)
    test_accuracy = next(trace for trace in curves.data if trace.name == "test accuracy")
    assert np.allclose(test_accuracy.y, [s.test_accuracy for s in run.history]) and test_accuracy.y.dtype == np.float32
    norms = gradient_norms(run, per="step")
    assert {trace.name for trace in norms.data} == {"conv1", "conv2", "fc1", "out"}
    assert len(norms.data[0].y) == len(run.steps)
    ratios = update_ratios(run)
    assert all(trace.y.dtype == np.float32 and len(trace.y) == 2 for trace in ratios.data)
    with pytest.raises(InputError, match="per must be 'epoch' or 'step'"):
        gradient_norms(run, per="batch")
    off = fit(build_model("mlp", digits), digits, epochs=1, telemetry="off")
    with pytest.raises(InputError, match="no per-layer grad_norm"):
        gradient_norms(off)
    step = learning_step(run.model, (digits.x_test[:8], digits.y_test[:8]), lr=0.1)
    figure = learning_step_figure(step, "fc1.weight")
    assert [trace.z.shape for trace in figure.data] == [(64, 512)] * 4
    assert np.allclose(figure.data[3].z, figure.data[0].z + figure.data[2].z, atol=1e-6)
    with pytest.raises(InputError, match="Unknown parameter 'fc9.weight'"):
        learning_step_figure(step, "fc9.weight")


def test_batch_norm_model_skips_a_trailing_batch_of_one(digits):
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    assert len(digits.y_train) % 4 == 1
    run = fit(model, digits, epochs=1, batch_size=4)
    assert run.samples_seen == len(digits.y_train) - 1 and run.status == "completed"


def test_cli_train_reports_bad_options(capsys):
    assert main(["train", "--arch", "mlp", "--threads", "0"]) == 2
    assert "--threads must be at least 1" in capsys.readouterr().err
    assert main(["train", "--dataset", "xor", "--arch", "cnn"]) == 2
    assert "use build_mlp" in capsys.readouterr().err


# ------------------------------------------------------------------ the user's state and the shared vocabulary
def test_build_model_and_fit_leave_the_global_rng_alone(digits):
    """build_model seeds the initial weights without reseeding the caller's global RNG, and fit's seed also
    fixes dropout (drawn inside isolated_rng), so two runs with one seed are equal."""
    models = [nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.5), nn.Linear(32, 10))
              for _ in range(2)]
    for model in models:
        with torch.no_grad():  # the same initial weights for both
            for p in model.parameters():
                p.copy_(torch.linspace(-0.1, 0.1, p.numel()).view_as(p))
    torch.manual_seed(77)
    expected = torch.rand(4)
    torch.manual_seed(77)
    assert all(torch.equal(a, b) for a, b in zip(build_model("cnn", digits, seed=3).parameters(),
                                                   build_model("cnn", digits, seed=3).parameters()))
    runs = [fit(model, digits, epochs=2, seed=4, device="cpu") for model in models]
    assert torch.equal(torch.rand(4), expected)
    assert runs[0].history[-1].train_loss == runs[1].history[-1].train_loss
    assert all(torch.equal(a, b) for a, b in zip(runs[0].model.parameters(), runs[1].model.parameters()))


def test_fit_is_keyword_only_with_old_positional_calls_deprecated(digits):
    model = build_model("mlp", digits)
    with pytest.warns(DeprecationWarning, match="epochs=..., lr=... by keyword"):
        run = fit(model, digits, 1, 1e-3)
    assert run.epochs == 1 and run.config["lr"] == 1e-3
    with pytest.raises(TypeError, match="multiple values for argument 'epochs'"):
        fit(model, digits, 1, epochs=2)


def test_fit_trains_where_the_model_is_and_reports_the_vocabulary(digits):
    run = fit(build_model("mlp", digits), digits, epochs=2)  # device=None: the model's device (CPU here)
    assert run.device == "cpu" and run.model_name == "Sequential" and run.seconds == run.train_seconds
    summary = run.summary()
    assert list(summary["epoch"]) == [1, 2] and summary["test_accuracy"].iloc[-1] == run.test_accuracy
    data = run.to_dict()
    assert json.loads(json.dumps(data, allow_nan=False))["history"][1]["epoch"] == 2
    assert data["model_name"] == "Sequential" and data["test_accuracy"] == run.test_accuracy


def test_learning_step_keeps_grads_flags_and_hooks(digits):
    model = build_model("cnn", digits)
    model(digits.x_train[:4]).sum().backward()  # the user's accumulated gradients
    model.eval()
    model.fc1.train()  # and a mixed set of flags
    grads = {name: p.grad.clone() for name, p in model.named_parameters()}
    flags = {name: m.training for name, m in model.named_modules()}
    step = learning_step(model, (digits.x_train[:8], digits.y_train[:8]), lr=0.1)
    assert {name: m.training for name, m in model.named_modules()} == flags
    assert all(torch.equal(p.grad, grads[name]) for name, p in model.named_parameters())
    assert all(not m._forward_hooks for m in model.modules())
    assert all(torch.equal(p.detach(), step.weights_after[name]) for name, p in model.named_parameters())
    assert step.method == "sgd" and step.model_name == "Sequential"
    assert list(step.summary()["parameter"]) == [name for name, _ in model.named_parameters()]
    assert json.loads(json.dumps(step.to_dict(), allow_nan=False))["lr"] == 0.1


def test_train_steps_takes_exactly_the_budget_in_fits_batch_order(digits):
    """train_steps: the step and batching of fit for a step budget (transfer's fine-tuning); equal to a
    plain Adam loop over the same seeded shuffles, and the global RNG is not touched."""
    x, y = digits.x_train[:100], digits.y_train[:100]
    first, second = build_model("mlp", digits, seed=2), build_model("mlp", digits, seed=2)
    rng = torch.get_rng_state()
    losses = explainer.train_steps(first, x, y, steps=7, lr=1e-2, batch_size=32, seed=3)  # 4 batches an epoch
    assert torch.equal(torch.get_rng_state(), rng)
    optimizer = torch.optim.Adam(second.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(3)
    expected: list[float] = []
    while len(expected) < 7:
        for batch in torch.randperm(100, generator=generator).split(32):
            loss = torch.nn.functional.cross_entropy(second(x[batch]), y[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            expected.append(loss.item())
            if len(expected) == 7:
                break
    assert losses == pytest.approx(expected, rel=1e-6, abs=1e-7) and len(losses) == 7
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(first.parameters(), second.parameters()))
    with pytest.raises(InputError, match="steps must be a positive integer"):
        explainer.train_steps(first, x, y, steps=0)


# ------------------------------------------------------------------ one path: training → inspection
def test_a_trained_model_goes_straight_into_the_inspection_calls(digits):
    model = build_model("cnn", digits, seed=0)
    run = fit(model, digits, epochs=3, seed=0)
    clf = run.classifier
    assert isinstance(clf, explainer.Classifier) and clf.module is model
    assert clf.labels == digits.class_names and clf.input_size == (8, 8) and clf.in_chans == 1
    assert model.training, "wrapping must not switch the trained model to eval mode"
    x = digits.x_test[:4]
    bare = explainer.layer_activations(run.model, x, layers="conv1")  # the bare module works too
    wrapped = explainer.layer_activations(clf, x, layers="conv1")
    assert torch.equal(bare.layers["conv1"].maps, wrapped.layers["conv1"].maps)
    e = explainer.explain(run.model, x, "saliency")
    assert e.attributions.shape[0] == 4
    ablated = explainer.ablate(run.model, x, layer="conv2", channels=[0, 1], top_k=3)
    assert len(ablated.top_after[0]) == 3
    assert explainer.model_anatomy(run.model).total_params == run.parameters
    # fit also takes the Classifier and keeps it
    again = fit(clf, digits, epochs=1, seed=0)
    assert again.classifier is clf


def test_a_module_explainer_did_not_train_says_how_to_wrap_it(digits):
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.LazyLinear(10))
    with pytest.raises(InputError, match=r"from_module\(net, input_size=\(H, W\), in_chans=1\)"):
        explainer.layer_activations(net, digits.x_test[:2])
    with pytest.raises(InputError, match=r"in_chans=1"):
        explainer.Classifier.from_module(build_cnn((1, 8, 8), 10), input_size=8, in_chans=3)
    inferred = explainer.Classifier.from_module(build_cnn((1, 8, 8), 10), input_size=8)
    assert inferred.in_chans == 1 and inferred.num_classes == 10
    assert len(repr(inferred)) < 200
