"""Every scorer family against a known answer: numpy formulas on given logits, autograd, blobs, planted outliers."""

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import spearmanr
from torch import nn

from bench import registry
from bench.api import LOGITS, Batch, Checkpoint
from bench.gradients import (GradNormComputer, conv_ghost_norms, conv_weight_norms, ghost_is_cheaper, last_layer_grad,
                             param_grad_norms)
from bench.metrics import auroc
from bench.models import MLP, build_model
from bench.hosts import CheckpointHost, observed_checkpoints
from conftest import train_and_probe


def feed(scorer, logits, target):
    """Give a scorer the logits (checkpoints, n, classes) one checkpoint at a time, as the probe does; its scores."""
    checkpoints, n, _ = logits.shape
    schedule = [Checkpoint(index=k, epoch=k + 1, total=checkpoints) for k in range(checkpoints)]
    host = CheckpointHost([scorer], observed_checkpoints(scorer, schedule), torch.float64)
    host.start("train", n)
    target = torch.as_tensor(target)
    for checkpoint in schedule:
        if checkpoint.index in host.observed:
            host.update(Batch("train", torch.arange(n), {"target": target, "label": target},
                              {LOGITS: torch.as_tensor(logits[checkpoint.index])}), checkpoint)
    host.end("train")
    return host.scores(scorer, "train")


@pytest.fixture
def logits_case():
    rng = np.random.default_rng(0)
    return rng.normal(size=(5, 40, 4)) * 3, rng.integers(0, 4, 40)


def other_max(values, target):
    masked = values.copy()
    masked[..., np.arange(len(target)), target] = -np.inf
    return masked.max(axis=-1)


def oracles(logits, target):
    p = softmax(logits, axis=-1)
    rows = np.arange(len(target))
    p_y, z_y = p[:, rows, target], logits[:, rows, target]
    ce = -np.log(p_y)
    onehot = np.eye(logits.shape[-1])[target]
    return {
        "action-score": ce.sum(0),
        "loss": ce.mean(0),
        "el2n": np.linalg.norm(p[0] - onehot, axis=-1),
        "el2n[epoch=none]": np.linalg.norm(p - onehot, axis=-1).mean(0),
        "el2n[epoch=3]": np.linalg.norm(p[2] - onehot, axis=-1),
        "aum": -(z_y - other_max(logits, target)).mean(0),
        "margin": -(p_y - other_max(p, target)).mean(0),
        "cartography-confidence": -p_y.mean(0),
        "cartography-variability": p_y.std(0),
        "max-softmax": -p[-1].max(-1),
        "entropy": -(p[-1] * np.log(p[-1])).sum(-1),
    }


@pytest.mark.parametrize("spec", list(oracles(np.zeros((5, 2, 4)), np.zeros(2, int))))
def test_logit_scores_equal_their_formulas(logits_case, spec):
    logits, target = logits_case
    np.testing.assert_allclose(feed(registry.create(spec), logits, target), oracles(logits, target)[spec], rtol=1e-5)


def test_forgetting_counts_correct_to_wrong_and_ranks_never_learned_highest():
    correct_at = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [1, 1, 1, 1], [0, 1, 1, 0], [0, 0, 1, 1]]).T  # (checkpoints, n)
    logits = np.where(correct_at[..., None] == 1, [[5.0, 0.0]], [[0.0, 5.0]])  # class 0 predicted when correct
    scores = feed(registry.create("forgetting"), logits, np.zeros(5, int))
    np.testing.assert_array_equal(scores, [2, 4, 0, 1, 0])  # the never-learned example scores the checkpoint count


def test_el2n_at_an_epoch_missing_from_the_schedule_fails_with_a_reason(logits_case):
    logits, target = logits_case
    with pytest.raises(ValueError, match="observed no checkpoint"):
        feed(registry.create("el2n[epoch=9]"), logits, target)


def test_closed_form_last_layer_gradient_equals_autograd():
    torch.manual_seed(0)
    model = MLP((6,), 4, hidden=(5,))
    x, y = torch.randn(7, 6), torch.randint(0, 4, (7,))
    embedding = model.embed(x)
    closed = last_layer_grad(model.head(embedding), y, embedding)
    for i in range(7):
        loss = nn.functional.cross_entropy(model(x[i: i + 1]), y[i: i + 1])
        (expected,) = torch.autograd.grad(loss, model.head.weight)
        torch.testing.assert_close(closed[i], expected)


def autograd_norm(model, x, y):
    grads = torch.autograd.grad(nn.functional.cross_entropy(model(x[None]), y[None]), list(model.parameters()))
    return torch.sqrt(sum(g.pow(2).sum() for g in grads))


@pytest.mark.parametrize("name, shape", [("mlp", (6,)), ("lenet", (1, 28, 28)), ("poolnet", (3, 32, 32))])
def test_grand_every_method_equals_autograd_one_example_at_a_time(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 3).eval()
    for layer in model.modules():  # batch norms whose statistics and affine map are not the identity
        if isinstance(layer, nn.BatchNorm2d):
            for tensor, low, high in ((layer.running_mean, -0.5, 0.5), (layer.running_var, 0.5, 2.0),
                                      (layer.weight.data, 0.5, 1.5), (layer.bias.data, -0.2, 0.2)):
                tensor.uniform_(low, high)
    x, y = torch.rand(9, *shape), torch.randint(0, 3, (9,))
    expected = torch.stack([autograd_norm(model, xi, yi) for xi, yi in zip(x, y)])
    model.requires_grad_(False)  # as in the probe
    for method in ("layers", "vmap", "loop"):
        torch.testing.assert_close(param_grad_norms(model, x, y, method), expected, msg=method)
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name, shape, ghosts", [("lenet", (1, 28, 28), 0), ("poolnet", (3, 32, 32), 3)])
def test_the_ghost_norm_equals_the_formed_gradients_norm_and_is_taken_where_it_costs_less(name, shape, ghosts):
    """LeNet-5 keeps the formed gradients (its scores unchanged); poolnet's three convolutions on 7x7 and 3x3 maps
    take the ghost norm. Both give every layer's squared norms to float precision."""
    torch.manual_seed(0)
    model = build_model(name, shape, 3).eval()
    convolutions = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    inputs, outputs = {}, {}

    def keep(module, args, output):
        inputs[module], outputs[module] = args[0], output

    hooks = [m.register_forward_hook(keep) for m in convolutions]
    model(torch.rand(4, *shape))
    for hook in hooks:
        hook.remove()
    grads = {m: torch.randn_like(outputs[m]) for m in convolutions}  # any output gradient: the identity is linear algebra
    for m in convolutions:
        torch.testing.assert_close(conv_ghost_norms(m, inputs[m], grads[m]), conv_weight_norms(m, inputs[m], grads[m]),
                                   rtol=1e-4, atol=1e-4)
    assert sum(ghost_is_cheaper(m, grads[m]) for m in convolutions) == ghosts


def test_grand_falls_back_to_vmap_for_layers_it_cannot_read():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 2, 3, stride=2), nn.Flatten(), nn.Linear(2 * 3 * 3, 3)).eval()
    x, y = torch.rand(5, 1, 7, 7), torch.randint(0, 3, (5,))
    computer = GradNormComputer()
    with pytest.warns(UserWarning, match="layers failed"):
        norms = computer(model, x, y)
    assert computer.method == "vmap"
    torch.testing.assert_close(norms, torch.stack([autograd_norm(model, xi, yi) for xi, yi in zip(x, y)]))


BOUNDARY_SCORERS = ["vog[window=all]", "el2n", "loss", "margin", "aum"]


def test_scores_rank_the_points_nearest_the_boundary_highest(two_blobs):
    inputs, labels = two_blobs
    table, probe = train_and_probe(inputs, labels, [registry.create(s) for s in BOUNDARY_SCORERS])
    assert not probe.failures
    distance = np.abs(inputs[:, 0])
    for spec in BOUNDARY_SCORERS:
        assert spearmanr(table["train"][spec], distance).statistic < -0.5, spec


MISLABEL_SCORERS = ["loss", "aum", "el2n", "oga", "oga[detector=l2]", "forgetting", "grand"]


def test_mislabel_scorers_find_flipped_labels(two_blobs):
    inputs, labels = two_blobs
    rng = np.random.default_rng(1)
    flipped = np.zeros(len(labels), bool)
    flipped[rng.choice(len(labels), len(labels) // 10, replace=False)] = True
    noisy = np.where(flipped, 1 - labels, labels)
    table, probe = train_and_probe(inputs, noisy, [registry.create(s) for s in MISLABEL_SCORERS])
    assert not probe.failures
    for spec in MISLABEL_SCORERS:
        scores = table["train"][spec]
        assert auroc(scores[flipped], scores[~flipped]) > 0.9, spec


DETECTORS = ["kde", "pca", "kpca", "svdd", "mve", "docc", "ae", "aegan", "gaussian[features=pixels]"]


@pytest.mark.parametrize("spec", DETECTORS)
def test_detector_finds_planted_outliers_with_the_right_orientation(spec):
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, 8)).astype(np.float32)
    labels = (train[:, 0] > 0).astype(int)
    inliers = rng.normal(size=(100, 8)).astype(np.float32)
    outliers = rng.normal(0.0, 1.0, size=(20, 8)).astype(np.float32) + 6.0
    detector = registry.create(spec).fit(train, labels)
    scores_in, scores_out = detector.decision_function(inliers), detector.decision_function(outliers)
    assert auroc(scores_out, scores_in) > 0.95
    assert auroc(-scores_out, -scores_in) < 0.05  # a negated detector would fail


@pytest.mark.parametrize("spec", DETECTORS)
def test_detectors_give_finite_scores_on_features_that_never_vary(spec):
    """Images have pixels that are always 0; no detector may divide by their zero variance."""
    rng = np.random.default_rng(1)
    train, test = rng.random((300, 12)).astype(np.float32), rng.random((50, 12)).astype(np.float32)
    train[:, :4] = 0
    test[:, :4] = 0
    scores = registry.create(spec).fit(train, (train[:, 5] > 0.5).astype(int)).decision_function(test)
    assert np.isfinite(scores).all()


def test_grand_at_initialisation_equals_a_per_example_loop_on_the_initial_model(two_blobs):
    import copy

    from bench.probe import Probe, ProbeSplit
    from bench.config import Recipe
    from bench.training import train

    inputs, labels = (torch.as_tensor(a) for a in two_blobs)
    torch.manual_seed(0)
    model = MLP((2,), 2, hidden=(16,))
    initial = copy.deepcopy(model)
    settings = Recipe(epochs=3, batch_size=32, lr=0.05, momentum=0.9, weight_decay=0.0, checkpoint_every=1,
                             checkpoint_at_init=True)
    states = [(c, copy.deepcopy(model.state_dict()))
              for c in train(model, inputs, labels, settings, torch.Generator().manual_seed(0), (2,))]
    probe = Probe({"train": ProbeSplit(inputs, labels, trusted_labels=True)}, [registry.create("grand[epoch=0]")], (2,))
    scores = probe.run(model, states)["train"]["grand[epoch=0]"]
    expected = torch.stack([autograd_norm(initial, x, y) for x, y in zip(inputs, labels)]).detach().numpy()
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    initial.load_state_dict(states[1][1])  # the model after one epoch: a different answer, so the test can tell
    after_one = torch.stack([autograd_norm(initial, x, y) for x, y in zip(inputs, labels)]).detach().numpy()
    assert not np.allclose(scores, after_one, rtol=1e-2)
