"""Training recipes: the learning-rate schedules in closed form and against torch's schedulers, crops and flips,
AdamW's steps by hand, a checkpoint at initialisation."""

import copy
import math

import numpy as np
import pytest
import torch
from torch.nn import functional
from torch.optim import lr_scheduler

from bench.config import Recipe, RunConfig
from bench.errors import BenchError
from bench.models import MLP
from bench.training import PADDING, crop_flip, lr_factor, train


@pytest.mark.parametrize("schedule, points", [
    ("constant", [(0, 1.0), (99, 1.0)]),
    ("step", [(0, 1.0), (49, 1.0), (50, 0.1), (74, 0.1), (75, 0.01), (99, 0.01)]),
    ("cosine", [(0, 1.0), (50, 0.5), (25, 0.5 * (1 + math.cos(math.pi / 4)))]),
    ("onecycle", [(0, 1 / 25), (15, 1 / 25 + (1 - 1 / 25) / 2), (30, 1.0), (65, 1 / 625 + (1 - 1 / 625) / 2)]),
])
def test_schedules_follow_their_closed_forms(schedule, points):
    for step, expected in points:
        assert lr_factor(schedule, step, 100) == pytest.approx(expected)


def blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    inputs = (np.array([[-1.5, 0.0], [1.5, 0.0]])[labels] + rng.normal(size=(n, 2))).astype(np.float32)
    return torch.as_tensor(inputs), torch.as_tensor(labels)


def run(settings, seed=0):
    torch.manual_seed(seed)
    inputs, labels = blobs()
    model = MLP((2,), 2, hidden=(8,))
    initial = copy.deepcopy(model.state_dict())
    checkpoints = [(c, copy.deepcopy(model.state_dict()))
                   for c in train(model, inputs, labels, settings, torch.Generator().manual_seed(seed), (2,))]
    return model, initial, checkpoints


def settings(**changes):
    return Recipe(**{**dict(epochs=4, batch_size=32, lr=0.1, momentum=0.9, weight_decay=0.0,
                                   checkpoint_every=1), **changes})


def torch_schedule(schedule, optimizer, total):
    """torch's scheduler for each of the harness's schedules over ``total`` steps. ``onecycle`` is a linear
    warm-up then a cosine (torch's ``OneCycleLR`` warms up along a cosine too, and ends a step earlier)."""
    warm = round(0.3 * total)  # a whole number of steps in this test
    return {
        "constant": lambda: lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0),
        "step": lambda: lr_scheduler.MultiStepLR(optimizer, [math.ceil(total / 2), math.ceil(3 * total / 4)], 0.1),
        "cosine": lambda: lr_scheduler.CosineAnnealingLR(optimizer, T_max=total),
        "onecycle": lambda: lr_scheduler.SequentialLR(optimizer, [
            lr_scheduler.LinearLR(optimizer, start_factor=1 / 25, total_iters=warm),
            lr_scheduler.CosineAnnealingLR(optimizer, T_max=total - warm, eta_min=optimizer.defaults["lr"] / 625),
        ], milestones=[warm]),
    }[schedule]()


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "onecycle"])
def test_training_steps_at_the_learning_rates_of_torchs_schedulers(monkeypatch, schedule):
    seen = []
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        seen.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    run(settings(schedule=schedule, epochs=10, batch_size=48))
    total = 10 * 2  # 10 epochs of 96 examples in batches of 48: the steps' milestones fall on whole steps
    monkeypatch.undo()
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler, expected = torch_schedule(schedule, optimizer, total), []
    for _ in range(total):
        expected.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx(expected, rel=1e-12, abs=0)


def test_a_checkpoint_at_initialisation_holds_the_untrained_model():
    _, initial, checkpoints = run(settings(checkpoint_at_init=True))
    assert [c.epoch for c, _ in checkpoints] == [0, 1, 2, 3, 4] and checkpoints[0][0].total == 5
    for name, tensor in initial.items():
        assert torch.equal(checkpoints[0][1][name], tensor)
    _, _, without = run(settings())
    for name, tensor in without[-1][1].items():  # the checkpoint at init draws nothing: training is the same
        assert torch.equal(checkpoints[-1][1][name], tensor)


def test_adamw_steps_as_adam_with_decoupled_weight_decay():
    """Three full-batch steps against AdamW written out (Loshchilov & Hutter 2019, Algorithm 2, the decay
    scaled by the learning rate as torch does): SGD, or Adam with the decay added to the gradient, moves
    the parameters elsewhere."""
    lr, decay, (beta1, beta2), eps = 0.05, 0.1, (0.9, 0.999), 1e-8
    _, initial, checkpoints = run(settings(optimizer="adamw", lr=lr, weight_decay=decay, epochs=3, batch_size=96))
    inputs, labels = blobs()
    model = MLP((2,), 2, hidden=(8,))
    model.load_state_dict(initial)
    first = {name: torch.zeros_like(p) for name, p in model.named_parameters()}  # first and second moment estimates
    second = {name: torch.zeros_like(p) for name, p in model.named_parameters()}
    for t, (_, trained) in enumerate(checkpoints, start=1):
        model.zero_grad()
        functional.cross_entropy(model(inputs), labels).backward()
        with torch.no_grad():
            for name, p in model.named_parameters():
                first[name] = beta1 * first[name] + (1 - beta1) * p.grad
                second[name] = beta2 * second[name] + (1 - beta2) * p.grad ** 2
                mean, square = first[name] / (1 - beta1 ** t), second[name] / (1 - beta2 ** t)  # bias-corrected
                p.copy_(p * (1 - lr * decay) - lr * mean / (square.sqrt() + eps))
        for name, p in model.named_parameters():
            torch.testing.assert_close(trained[name], p.detach(), rtol=0, atol=1e-6)


def test_crops_are_windows_of_the_zero_padded_image_and_half_are_flipped():
    torch.manual_seed(0)
    x = torch.rand(200, 3, 8, 6)
    out = crop_flip(x, torch.Generator().manual_seed(1))
    padded = torch.nn.functional.pad(x, (PADDING,) * 4)
    flipped, offsets = 0, set()
    for image, source in zip(out, padded):
        windows = [(dy, dx, flip) for dy in range(2 * PADDING + 1) for dx in range(2 * PADDING + 1) for flip in (0, 1)
                   if torch.equal(image, source[:, dy:dy + 8, dx:dx + 6].flip(2) if flip else source[:, dy:dy + 8, dx:dx + 6])]
        assert windows, "an output is no window of its padded image"
        flipped += windows[0][2]
        offsets.add(windows[0][:2])
    assert 70 < flipped < 130 and len(offsets) > 40


def test_an_unknown_recipe_is_refused_with_the_choices():
    with pytest.raises(BenchError, match="'optimizer' is 'adam'; allowed: sgd, adamw"):
        RunConfig(optimizer="adam")
    with pytest.raises(BenchError, match="'schedule' is 'linear'; allowed: constant, step, cosine, onecycle"):
        RunConfig(schedule="linear")


def after_every_step(monkeypatch, model_holder):
    """The model's parameters after each optimizer step, recorded by wrapping ``SGD.step``."""
    states = []
    step = torch.optim.SGD.step

    def recording(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        states.append(copy.deepcopy(model_holder[0].state_dict()))
        return result

    monkeypatch.setattr(torch.optim.SGD, "step", recording)
    return states


def states_of_each_new_mlp_after_every_step(monkeypatch):
    """``after_every_step`` for the MLP that ``run`` builds."""
    holder = []
    original = MLP.__init__

    def remember(self, *args, **kwargs):
        original(self, *args, **kwargs)
        holder.append(self)

    monkeypatch.setattr(MLP, "__init__", remember)
    return after_every_step(monkeypatch, holder)


def test_checkpoints_in_steps_hold_the_model_after_the_steps_they_name(monkeypatch):
    states = states_of_each_new_mlp_after_every_step(monkeypatch)
    _, initial, checkpoints = run(settings(checkpoint_every=5, checkpoint_unit="step", checkpoint_at_init=True))
    # 96 examples in batches of 32: 3 steps an epoch, 12 in all; checkpoints after steps 5 and 10, the last, and at init
    assert [c.epoch for c, _ in checkpoints] == [0, 5 / 3, 10 / 3, 4]
    assert [(c.index, c.total) for c, _ in checkpoints] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert len(states) == 12
    for (_, state), expected in zip(checkpoints, [initial, states[4], states[9], states[11]]):
        assert all(torch.equal(state[name], expected[name]) for name in expected)


def test_early_checkpoints_hold_the_model_after_their_steps_beside_the_epochs_checkpoints(monkeypatch):
    states = states_of_each_new_mlp_after_every_step(monkeypatch)
    _, initial, checkpoints = run(settings(checkpoint_every=2, early_checkpoints=[2, 1, 6], checkpoint_at_init=True))
    # 3 steps an epoch, 12 in all: at init, after steps 1 and 2, after epoch 2 (step 6, asked for twice: once), epoch 4
    assert [c.epoch for c, _ in checkpoints] == [0, 1 / 3, 2 / 3, 2, 4]
    assert [(c.index, c.total) for c, _ in checkpoints] == [(k, 5) for k in range(5)]
    for (_, state), expected in zip(checkpoints, [initial, states[0], states[1], states[5], states[11]]):
        assert all(torch.equal(state[name], expected[name]) for name in expected)
    _, _, plain = run(settings(checkpoint_every=2))
    assert all(torch.equal(plain[-1][1][name], tensor) for name, tensor in checkpoints[-1][1].items())
    with pytest.raises(BenchError, match="checkpoint after step 12, but the training takes 12 steps"):
        run(settings(early_checkpoints=[12]))
    with pytest.raises(BenchError, match="'early_checkpoints' repeats a step"):
        RunConfig(early_checkpoints=[3, 3])
    with pytest.raises(BenchError, match="'early_checkpoints' has 0; give optimizer steps of 1 or more"):
        RunConfig(early_checkpoints=[0, 4])


def test_checkpoints_in_steps_train_the_same_model_as_checkpoints_in_epochs():
    _, _, in_steps = run(settings(checkpoint_every=2, checkpoint_unit="step"))
    _, _, in_epochs = run(settings())
    assert len(in_steps) == 6 and len(in_epochs) == 4
    assert all(torch.equal(in_steps[-1][1][name], tensor) for name, tensor in in_epochs[-1][1].items())


def test_mixed_precision_runs_the_forward_pass_in_bfloat16_on_the_cpu_and_repeats_bit_for_bit(monkeypatch):
    dtypes = []
    forward = torch.nn.Linear.forward
    monkeypatch.setattr(torch.nn.Linear, "forward", lambda self, x: dtypes.append(forward(self, x).dtype) or forward(self, x))
    model, _, first = run(settings(amp=True))
    assert set(dtypes) == {torch.bfloat16}
    _, _, again = run(settings(amp=True))
    _, _, full = run(settings())
    assert all(torch.equal(again[-1][1][name], tensor) for name, tensor in first[-1][1].items())
    assert not all(torch.equal(full[-1][1][name], tensor) for name, tensor in first[-1][1].items())
    inputs, labels = blobs()
    assert (model(inputs).argmax(1) == labels).float().mean() > 0.85


def test_every_recipe_option_at_once_gives_the_same_scores_bit_for_bit(tmp_path):
    from bench.runner import run as run_benchmark

    recipe = dict(dataset="digits-c", model="mlp", scorers=["vog", "loss", "grand[epoch=0]", "el2n"], seeds=[0], epochs=2,
                  batch_size=64, optimizer="adamw", lr=0.01, schedule="onecycle", augment="crop-flip",
                  checkpoint_at_init=True, checkpoint_unit="step", checkpoint_every=10, normalize=True, amp=True,
                  state_dtype="float32", probe_batch_size=100)
    first, second = (run_benchmark(RunConfig(**recipe, out=str(tmp_path / name)), progress=False) for name in "ab")
    (a,), (b,) = first.tables, second.tables
    assert a.meta["config_hash"] == b.meta["config_hash"] != run_benchmark(
        RunConfig(**{**recipe, "amp": False}, out=str(tmp_path / "c")), progress=False).tables[0].meta["config_hash"]
    for split, columns in a.splits.items():
        for name, values in columns.items():
            assert np.array_equal(values, b.splits[split][name], equal_nan=True), (split, name)
    from bench.data import load_dataset

    mean, std = load_dataset("digits-c").channel_statistics()
    assert a.meta["input_statistics"] == {"mean": mean, "std": std, "normalized": True}
    epochs = load_checkpoints_epochs(first)
    steps_per_epoch = math.ceil(len(a.splits["train"]["label"]) / 64)
    assert epochs == [0, *[s / steps_per_epoch for s in range(10, 2 * steps_per_epoch, 10)], 2]


def load_checkpoints_epochs(result):
    from bench.store import load_checkpoints

    (path,) = (result.unit_paths[0].parent.parent / "checkpoints").glob("*")
    return load_checkpoints(path)[1]["checkpoint_epochs"]
