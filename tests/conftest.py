import copy

import numpy as np
import pytest
import torch

from bench.models import MLP
from bench.probe import Probe, ProbeSplit
from bench.config import Recipe
from bench.training import train


@pytest.fixture
def two_blobs():
    """The VoG paper's toy data: two isotropic 2-D Gaussian blobs, the Bayes boundary at x0 = 0."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 500)
    inputs = (np.array([[-1.5, 0.0], [1.5, 0.0]])[labels] + rng.normal(size=(500, 2))).astype(np.float32)
    return inputs, labels


def train_and_probe(inputs, labels, scorers, epochs=15, seed=0, extra_splits=None, lr=0.05):
    """Train a one-hidden-layer MLP on (inputs, labels), then probe its checkpoints as the runner does;
    returns the score table and the probe."""
    torch.manual_seed(seed)
    shape = inputs.shape[1:]
    model = MLP(shape, int(labels.max()) + 1, hidden=(16,))
    splits = {"train": ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True)}
    splits.update(extra_splits or {})
    probe = Probe(splits, scorers, shape)
    settings = Recipe(epochs=epochs, batch_size=32, lr=lr, momentum=0.9, weight_decay=0.0, checkpoint_every=1)
    states = [(checkpoint, copy.deepcopy(model.state_dict()))
              for checkpoint in train(model, splits["train"].inputs, splits["train"].labels, settings,
                                      torch.Generator().manual_seed(seed), shape)]
    return probe.run(model, states), probe


def without_costs(board):
    """A leaderboard without its cost rows: seconds are measurements of this machine's moment, which no rerun
    repeats, while every other row is a function of the config and seed."""
    return board[board.task != "cost"].reset_index(drop=True)


@pytest.fixture
def isolated_registry():
    """Scorers registered inside the test are forgotten after it."""
    from bench import api, registry

    registry.available()
    saved = dict(api.registered)
    yield
    api.registered.clear()
    api.registered.update(saved)


@pytest.fixture(autouse=True)
def empty_data_roots(monkeypatch, tmp_path_factory):
    """The data roots a test sees by default, ``BENCH_DATA`` and the project's ``datasets/``, point at an empty
    folder: what `bench data fetch` put on this machine must not change what a test finds. A test that needs
    files passes ``--data-dir`` (searched first), or sets these again."""
    import bench.data.dataset

    empty = tmp_path_factory.mktemp("data-roots")
    monkeypatch.setattr(bench.data.dataset, "PROJECT_DATA", empty)
    monkeypatch.setenv("BENCH_DATA", str(empty))
