"""The probe: one pass per checkpoint, only the signals asked for, scorers isolated from each other."""

import numpy as np

from bench import registry
from bench.api import LOGITS, PIXELS, SIGNALS, Detector, DynamicsScorer
from conftest import train_and_probe


class Spy(DynamicsScorer):
    """Records which signals it was given and at which checkpoints."""

    name, family, reference = "spy", "test", "-"

    def __init__(self, needs=frozenset({LOGITS}), last_only=False, fail_on_split=None):
        self.needs, self.last_only, self.fail_on_split = frozenset(needs), last_only, fail_on_split
        self.seen_signals, self.seen_epochs, self._n = set(), set(), {}

    def observes(self, checkpoint):
        return checkpoint.is_last or not self.last_only

    def start(self, split, size):
        self._n[split] = size

    def update(self, batch, checkpoint):
        if batch.split == self.fail_on_split:
            raise RuntimeError("boom")
        self.seen_signals |= {s for s in SIGNALS if getattr(batch, s) is not None}
        self.seen_epochs.add(checkpoint.epoch)

    def scores(self, split):
        return np.zeros(self._n[split])


def test_probe_computes_only_the_signals_scorers_need(two_blobs):
    inputs, labels = two_blobs
    spy = Spy(needs={LOGITS})
    train_and_probe(inputs, labels, [spy], epochs=3)
    assert spy.seen_signals == {LOGITS}  # logits come with every forward pass; no gradient, no embedding


def test_scorer_that_observes_the_last_checkpoint_sees_only_it(two_blobs):
    inputs, labels = two_blobs
    spy = Spy(last_only=True)
    train_and_probe(inputs, labels, [spy], epochs=4)
    assert spy.seen_epochs == {4}


def test_a_failing_scorer_is_recorded_and_the_others_are_unchanged(two_blobs):
    inputs, labels = two_blobs
    alone, _ = train_and_probe(inputs, labels, [registry.create("vog")], epochs=3)
    failing = Spy(fail_on_split="train")
    with_failure, probe = train_and_probe(inputs, labels, [failing, registry.create("vog")], epochs=3)
    assert failing.spec == "spy[fail_on_split=train]"
    assert "RuntimeError: boom" in probe.failures[failing.spec]
    assert failing.spec not in with_failure["train"]
    np.testing.assert_array_equal(with_failure["train"]["vog"], alone["train"]["vog"])


def test_scores_of_the_wrong_shape_are_a_recorded_failure(two_blobs):
    class Short(Spy):
        def scores(self, split):
            return np.zeros(3)

    inputs, labels = two_blobs
    _, probe = train_and_probe(inputs, labels, [Short()], epochs=1)
    assert "shape (3,)" in probe.failures["spy"]


class Recorder(Detector):
    """A detector that keeps what it was fitted on."""

    name, reference = "recorder", "-"

    def fit(self, X, y=None):
        self.fitted_on = (X.copy(), None if y is None else y.copy())
        return self

    def decision_function(self, X):
        return X[:, 0]


def test_detectors_fit_on_training_features_of_the_final_model(two_blobs):
    inputs, labels = two_blobs
    pixels, embedding = Recorder(PIXELS), Recorder("embedding")
    table, _ = train_and_probe(inputs, labels, [pixels, embedding], epochs=2)
    np.testing.assert_array_equal(pixels.fitted_on[0], inputs)
    np.testing.assert_array_equal(pixels.fitted_on[1], labels)
    assert embedding.fitted_on[0].shape == (len(inputs), 16)  # the MLP's hidden layer
    np.testing.assert_array_equal(table["train"]["recorder"], inputs[:, 0])


def test_scorers_sharing_a_failed_state_fail_with_it(two_blobs):
    class Shared(Spy):
        state_params = ("needs",)

        def __init__(self, needs=frozenset({LOGITS}), last_only=False, fail_on_split=None, offset=0):
            super().__init__(needs, last_only, fail_on_split)
            self.offset = offset

    inputs, labels = two_blobs
    owner, follower, other = Shared(fail_on_split="train"), Shared(fail_on_split="train", offset=1), Spy()
    table, probe = train_and_probe(inputs, labels, [owner, follower, other], epochs=1)
    assert probe.sharing == {follower: owner}
    assert "RuntimeError: boom" in probe.failures[owner.spec]
    assert probe.failures[follower.spec].startswith(f"shares the running state of {owner.spec}, which failed")
    assert "spy" in table["train"] and owner.spec not in table["train"] and follower.spec not in table["train"]
