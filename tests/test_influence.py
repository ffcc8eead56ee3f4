"""Training-data attribution (Captum TracInCP) on a really trained network."""

from __future__ import annotations

import pytest
import torch

import explainer
from explainer.errors import InputError
from explainer.learn.influence import gradient_layers, precision_at_k, self_influence, training_losses


@pytest.fixture(scope="module")
def run_and_data():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = explainer.load_dataset("planted", n_train=300, n_test=60, shortcut=0.0, mislabeled=0.1, seed=1)
        network = explainer.build_model("cnn", data, seed=1, channels=(8, 16), pool="each", hidden=32)
        run = explainer.fit(network, data, epochs=5, seed=1, telemetry="off", device="cpu", keep_checkpoints=True)
        yield run, data
    finally:
        torch.set_num_threads(threads)


def test_fit_keeps_one_checkpoint_per_epoch_as_copies(run_and_data):
    run, _ = run_and_data
    assert len(run.checkpoints) == run.epochs == 5
    last = run.checkpoints[-1]
    assert all(torch.equal(last[name], value) for name, value in run.model.state_dict().items())
    assert not torch.equal(run.checkpoints[0]["out.weight"], last["out.weight"])  # it learned between epochs
    assert last["out.weight"].data_ptr() != run.model.state_dict()["out.weight"].data_ptr()


def _by_hand(run, x, y, layers):
    """Σ over checkpoints of lr · ‖∇ loss‖² in ``layers``' weights, one image at a time with plain autograd."""
    import copy

    import torch.nn.functional as F

    model = copy.deepcopy(run.model).eval()
    total = torch.zeros(len(y))
    for state in run.checkpoints:
        model.load_state_dict(state)
        weights = [p for name, p in model.named_parameters() if name.rpartition(".")[0] in layers]
        for i in range(len(y)):
            loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1], reduction="sum")
            total[i] += float(run.config["lr"]) * sum(g.square().sum() for g in torch.autograd.grad(loss, weights))
    return total


@pytest.mark.parametrize("layers", [None, ["conv1", "out"]])  # the last two layers; the first and the last
def test_self_influence_equals_per_example_gradients_by_hand(run_and_data, layers):
    run, data = run_and_data
    x, y = data.x_train[:24], data.y_train[:24]
    chosen = layers or gradient_layers(run.model)
    scores = self_influence(run, (x, y), layers=layers, batch_size=10)
    expected = _by_hand(run, x, y, chosen)
    assert torch.allclose(scores, expected, rtol=1e-4, atol=1e-8)


def test_data_attribution_helpful_and_harmful_images(run_and_data):
    run, data = run_and_data
    before = {name: value.clone() for name, value in run.model.state_dict().items()}
    result = explainer.data_attribution(run, data, data.x_test[:6], top_k=5)
    assert result.helpful.shape == result.harmful.shape == (6, 5) and result.checkpoints == 5
    assert bool((result.helpful_scores[:, :-1] >= result.helpful_scores[:, 1:]).all())
    assert bool((result.harmful_scores[:, 0] < 0).all()) and bool((result.helpful_scores[:, 0] > 0).all())
    # the training images that helped a prediction mostly carry the predicted label
    targets = torch.tensor(result.targets)
    agree = (data.y_train[result.helpful] == targets[:, None]).float().mean()
    assert agree > 0.7, agree
    assert len(result.self_influence) == len(data.y_train)
    assert torch.allclose(result.self_influence, self_influence(run, data), rtol=1e-4)
    assert all(torch.equal(before[name], value) for name, value in run.model.state_dict().items())  # untouched
    assert result.layers == gradient_layers(run.model) == ["fc1", "out"]  # 'same'-padded convolutions left out
    assert list(result.summary().columns)[:3] == ["image", "target", "most_helpful"]
    assert "TracIn over 5 checkpoint(s)" in result.verdict()


def test_mislabeled_images_rank_high_on_self_influence_and_loss(run_and_data):
    run, data = run_and_data
    search = explainer.find_mislabeled(run, data, data.truth.mislabeled, seed=0)
    share = len(data.truth.mislabeled) / len(data.y_train)
    assert search.precision["tracin_self_influence"] > 2 * share
    assert search.precision["training_loss"] > 2 * share
    assert search.k == len(data.truth.mislabeled) == 30
    losses = training_losses(run.model, data.x_train, data.y_train)
    assert precision_at_k(losses, data.truth.mislabeled, search.k) == search.precision["training_loss"]


def test_precision_at_k_and_bad_input(run_and_data):
    with pytest.raises(InputError, match=r"not linear or convolution layers.*'fc1'"):
        self_influence(run_and_data[0], run_and_data[1], layers=["act1"])
    run, data = run_and_data
    assert precision_at_k(torch.tensor([0.1, 0.9, 0.5, 0.7]), [1, 2], 2) == 0.5
    with pytest.raises(InputError, match="top_k must be a positive"):
        explainer.data_attribution(run, data, data.x_test[:2], top_k=0)
    with pytest.raises(InputError, match="Unknown data-attribution method"):
        explainer.data_attribution(run, data, data.x_test[:2], method="trak")
    with pytest.raises(InputError, match="needs a TrainingRun"):
        explainer.data_attribution("model", data, data.x_test[:2])
    with pytest.raises(InputError, match="no mislabeled"):
        explainer.find_mislabeled(run, data, [])


# ------------------------------------------------------------------------ estimate, progress and budget
def test_data_attribution_prints_an_estimate_and_a_bar_and_nothing_without_progress(run_and_data, capsys):
    run, data = run_and_data
    before = {name: value.clone() for name, value in run.model.state_dict().items()}
    shown = explainer.data_attribution(run, data, data.x_test[:2], top_k=3, batch_size=100)
    err = capsys.readouterr().err
    # helpful, harmful and self-influence each walk the 3 training batches of 100, at each of the 5 checkpoints
    assert "estimate: ≈" in err and "3 pass(es) × 3 training batch(es) of 100 × 5 checkpoint(s)" in err
    assert "data_attribution: 100%" in err and "9/9" in err
    silent = explainer.data_attribution(run, data, data.x_test[:2], top_k=3, batch_size=100, progress=False)
    assert capsys.readouterr().err == ""
    assert torch.equal(silent.helpful, shown.helpful) and torch.allclose(silent.self_influence, shown.self_influence)
    assert all(torch.equal(before[name], value) for name, value in run.model.state_dict().items())  # untouched


def test_influence_over_budget_is_refused_before_the_work_with_the_estimate(run_and_data, capsys):
    run, data = run_and_data
    with pytest.raises(InputError, match=r"This data_attribution call is estimated at ≈ .*over the time budget.*"
                                         r"fewer checkpoints \(5 now\).*budget_seconds=None"):
        explainer.data_attribution(run, data, data.x_test[:2], budget_seconds=1e-6)
    with pytest.raises(InputError, match=r"This find_mislabeled call is estimated at ≈ .*over the time budget"):
        explainer.find_mislabeled(run, data, data.truth.mislabeled, budget_seconds=1e-6)
    assert "%" not in capsys.readouterr().err  # no bar was opened
    explainer.find_mislabeled(run, data, data.truth.mislabeled, progress=False)
    assert capsys.readouterr().err == ""
