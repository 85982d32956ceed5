"""VoG against closed forms: a linear model, whose input gradient of logit y is the weight row w_y,
and the paper's toy check (Fig. 1)."""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from bench import registry
from bench.api import Checkpoint
from bench.hosts import make_hosts
from bench.models import Classifier
from bench.probe import Probe, ProbeSplit
from bench.specs import expand_grid
from conftest import train_and_probe


class Linear(Classifier):
    def __init__(self, dim, classes):
        super().__init__()
        self.embed = nn.Flatten()
        self.head = nn.Linear(dim, classes)


def probe_linear_checkpoints(weights, biases, splits, scorers):
    """Probe a linear model whose parameters at checkpoint k are weights[k], biases[k]."""
    model = Linear(weights.shape[2], weights.shape[1])
    states = [(Checkpoint(index=k, epoch=k + 1, total=len(weights)),
               {"head.weight": torch.as_tensor(weights[k]), "head.bias": torch.as_tensor(biases[k])})
              for k in range(len(weights))]
    return Probe(splits, scorers, (weights.shape[2],)).run(model, states)


def logit_vog(**params):
    """VoG of the logit's gradient over every checkpoint unless told otherwise: the closed forms here are for it."""
    params = {"window": "all", "target": "logit", **params}
    return registry.create(f"vog[{','.join(f'{key}={value}' for key, value in params.items())}]")


def predicted_classes(weights, biases, inputs):
    """(checkpoints, n): the class a linear model predicts for each input at each checkpoint."""
    return np.argmax(np.einsum("kcd,nd->knc", weights, inputs) + biases[:, None, :], axis=2)


@pytest.fixture
def linear_case():
    rng = np.random.default_rng(1)
    checkpoints, classes, dim, n = 6, 3, 5, 40
    weights = rng.normal(size=(checkpoints, classes, dim)).astype(np.float32)
    biases = rng.normal(size=(checkpoints, classes)).astype(np.float32)
    inputs = rng.normal(size=(n, dim)).astype(np.float32)
    labels = rng.integers(0, classes, n)
    return weights, biases, inputs, labels


def test_vog_of_a_linear_model_is_the_std_of_the_weight_rows(linear_case):
    weights, biases, inputs, labels = linear_case
    split = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True)
    vog = logit_vog()
    table = probe_linear_checkpoints(weights, biases, {"train": split}, [vog])
    # Gradient of logit y is w_y at every checkpoint: VoG = mean over pixels of the population std over checkpoints.
    expected = weights[:, labels, :].std(axis=0, ddof=0).mean(axis=1)
    np.testing.assert_allclose(table["train"][vog.spec], expected, rtol=1e-5)


def test_default_vog_is_the_std_of_the_probability_gradient_in_closed_form(linear_case):
    """The default (softmax probability, last 3 checkpoints): for z = Wx + b the input gradient of
    p_y is p_y (w_y - sum_c p_c w_c), labelled examples taking their label, unlabelled ones the class
    predicted at each checkpoint."""
    weights, biases, inputs, labels = linear_case
    splits = {"train": ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True),
              "ood": ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=False)}
    vog = registry.create("vog")
    table = probe_linear_checkpoints(weights, biases, splits, [vog])
    logits = np.einsum("kcd,nd->knc", weights.astype(np.float64), inputs) + biases[:, None, :]
    p = np.exp(logits - logits.max(2, keepdims=True))
    p /= p.sum(2, keepdims=True)  # (k, n, c)
    mixed = np.einsum("knc,kcd->knd", p, weights)  # sum_c p_c w_c
    for split, classes in (("train", np.broadcast_to(labels, p.shape[:2])), ("ood", p.argmax(2))):
        k, n = np.indices(classes.shape)
        gradient = p[k, n, classes][..., None] * (weights[k, classes] - mixed)  # (k, n, d)
        expected = gradient[-3:].std(axis=0, ddof=0).mean(axis=1)
        np.testing.assert_allclose(table[split]["vog"], expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("window, checkpoints", [("early", slice(0, 3)), ("late", slice(-3, None))])
def test_vog_windows_use_the_first_or_last_three_checkpoints(linear_case, window, checkpoints):
    weights, biases, inputs, labels = linear_case
    split = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True)
    vog = logit_vog(window=window)
    table = probe_linear_checkpoints(weights, biases, {"train": split}, [vog])
    expected = weights[checkpoints][:, labels, :].std(axis=0).mean(axis=1)
    np.testing.assert_allclose(table["train"][vog.spec], expected, rtol=1e-5)


def test_vog_with_predicted_labels_follows_the_argmax_at_each_checkpoint(linear_case):
    weights, biases, inputs, labels = linear_case
    train = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True)
    unlabeled = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=False)
    vog = logit_vog()
    table = probe_linear_checkpoints(weights, biases, {"train": train, "ood": unlabeled}, [vog])
    predicted = predicted_classes(weights, biases, inputs)  # (k, n)
    assert (predicted != predicted[-1]).any()  # the case tells the two label sources apart
    rows = weights[np.arange(len(weights))[:, None], predicted]  # (k, n, d): w of the predicted class
    np.testing.assert_allclose(table["ood"][vog.spec], rows.std(axis=0).mean(axis=1), rtol=1e-5)


def test_vog_with_the_final_label_follows_the_final_models_class_at_every_checkpoint(linear_case):
    weights, biases, inputs, labels = linear_case
    train = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True)
    unlabeled = ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=False)
    vog = logit_vog(label="final")
    table = probe_linear_checkpoints(weights, biases, {"train": train, "ood": unlabeled}, [vog])
    final = predicted_classes(weights, biases, inputs)[-1]
    np.testing.assert_allclose(table["ood"][vog.spec], weights[:, final, :].std(axis=0).mean(axis=1), rtol=1e-5)
    np.testing.assert_allclose(table["train"][vog.spec], weights[:, labels, :].std(axis=0).mean(axis=1), rtol=1e-5)


def test_a_grid_over_norm_keeps_one_running_state_and_equals_each_variant_alone(linear_case):
    weights, biases, inputs, labels = linear_case
    # Predicted classes on both splits, so that raw VoG varies within a class and every z is finite.
    splits = {"train": ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=False),
              "ood": ProbeSplit(torch.as_tensor(inputs[::-1].copy()), torch.as_tensor(labels), trusted_labels=False)}
    scorers = [registry.create(spec) for spec in expand_grid("vog[norm=none|z|abs-z|split-z|split-abs-z,window=all|late]")]
    hosts = make_hosts(scorers, {scorer.spec: frozenset() for scorer in scorers})
    assert [host.first.spec for host in hosts] == ["vog[window=all]", "vog"]  # one pass and state per window
    together = probe_linear_checkpoints(weights, biases, splits, scorers)
    for scorer in scorers:
        alone = probe_linear_checkpoints(weights, biases, splits, [registry.create(scorer.spec)])
        for split in splits:
            assert np.isfinite(alone[split][scorer.spec]).all()
            assert together[split][scorer.spec].tobytes() == alone[split][scorer.spec].tobytes(), (scorer.spec, split)


def test_split_normalisation_uses_the_scored_splits_own_class_statistics(linear_case):
    weights, biases, inputs, labels = linear_case
    splits = {"train": ProbeSplit(torch.as_tensor(inputs), torch.as_tensor(labels), trusted_labels=True),
              "ood": ProbeSplit(torch.as_tensor(2 * inputs), torch.as_tensor(labels), trusted_labels=False)}
    raw, z, abs_z = (logit_vog(norm=norm).spec for norm in ("none", "split-z", "split-abs-z"))
    table = probe_linear_checkpoints(weights, biases, splits, [registry.create(s) for s in (raw, z, abs_z)])
    scores, classes = table["ood"][raw], predicted_classes(weights, biases, 2 * inputs)[-1]
    expected = np.array([(scores[i] - scores[classes == c].mean()) / scores[classes == c].std() for i, c in enumerate(classes)])
    np.testing.assert_allclose(table["ood"][z], expected, rtol=1e-9)
    np.testing.assert_allclose(table["ood"][abs_z], np.abs(expected), rtol=1e-9)
    for c in np.unique(classes):  # within each class the split's own z-scores are standardised
        assert abs(table["ood"][z][classes == c].mean()) < 1e-9


@pytest.mark.parametrize("trusted, label", [(True, "checkpoint"), (False, "checkpoint"), (False, "final")])
def test_class_normalisation_uses_training_statistics_per_class(two_blobs, trusted, label):
    inputs, labels = two_blobs
    rng = np.random.default_rng(5)
    test_labels = rng.integers(0, 2, 200)
    test_inputs = (np.array([[-1.5, 0.0], [1.5, 0.0]])[test_labels] + rng.normal(size=(200, 2))).astype(np.float32)
    test = ProbeSplit(torch.as_tensor(test_inputs), torch.as_tensor(test_labels), trusted_labels=trusted)
    raw, z, abs_z = (logit_vog(norm=norm, label=label) for norm in ("none", "z", "abs-z"))
    table, _ = train_and_probe(inputs, labels, [raw, z, abs_z], extra_splits={"test": test})
    raw_train, raw_test = table["train"][raw.spec], table["test"][raw.spec]
    # The class of a test example: its label, or without trusted labels the final model's prediction
    # (for label=checkpoint, the prediction at the last checkpoint: the same).
    test_classes = test_labels if trusted else table["test"]["pred"]
    expected = np.empty_like(raw_test)
    for cls in (0, 1):
        reference = raw_train[labels == cls]
        assert reference.std() > 0
        expected[test_classes == cls] = (raw_test[test_classes == cls] - reference.mean()) / reference.std()
    np.testing.assert_allclose(table["test"][z.spec], expected, rtol=1e-9)
    np.testing.assert_allclose(table["test"][abs_z.spec], np.abs(expected), rtol=1e-9)


def test_toy_blobs_vog_is_highest_near_the_decision_boundary(two_blobs):
    """Fig. 1 of the paper, with the official toy code's target: the gradient of the softmax probability.

    (For a linear model the gradient of a logit is the same for every point of a class, so the
    toy's ranking by distance comes from the probability, whose gradient vanishes far from
    the boundary.)
    """
    inputs, labels = two_blobs
    vog = registry.create("vog[window=all,target=prob]")
    table, _ = train_and_probe(inputs, labels, [vog])
    distance_to_boundary = np.abs(inputs[:, 0])
    rho = spearmanr(table["train"][vog.spec], distance_to_boundary).statistic
    assert rho < -0.8
    nearest, farthest = np.argsort(distance_to_boundary)[:50], np.argsort(distance_to_boundary)[-50:]
    assert table["train"][vog.spec][nearest].min() > table["train"][vog.spec][farthest].max()
