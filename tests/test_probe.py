"""The probe: one pass per checkpoint, only the signals asked for, scorers isolated from each other."""

import numpy as np

import torch

from bench import registry
from bench.api import LOGITS, PIXELS, CheckpointScore, Detector, StreamingScorer
from bench.probe import ProbeSplit
from conftest import train_and_probe


class Spy(StreamingScorer):
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
        self.seen_signals |= set(batch.signals)
        self.seen_epochs.add(checkpoint.epoch)

    def scores(self, split):
        return np.zeros(self._n[split])


def test_probe_computes_only_the_signals_scorers_need(two_blobs):
    inputs, labels = two_blobs
    spy = Spy(needs={LOGITS})
    train_and_probe(inputs, labels, [spy], epochs=3)
    assert spy.seen_signals == {LOGITS}  # logits come with every forward pass; no gradient, no embedding


def test_needs_may_be_signal_names_and_a_name_of_no_signal_fails_its_scorer_alone(two_blobs):
    inputs, labels = two_blobs
    named, wrong = Spy(needs={"logits"}), Spy(needs={"logit"}, last_only=True)
    table, probe = train_and_probe(inputs, labels, [named, wrong], epochs=2)
    assert named.seen_signals == {LOGITS} and "spy" in table["train"]
    assert "'logit' is not a signal" in probe.failures[wrong.spec] and wrong.spec not in table["train"]


def test_scorer_that_observes_the_last_checkpoint_sees_only_it(two_blobs):
    inputs, labels = two_blobs
    spy = Spy(last_only=True)
    train_and_probe(inputs, labels, [spy], epochs=4)
    assert spy.seen_epochs == {4}


def test_observes_is_asked_once_per_checkpoint_in_order_before_any_pass(two_blobs):
    """Two splits of 4 checkpoints each: still 4 questions, the first before any signal is computed."""
    class Counting(Spy):
        def observes(self, checkpoint):
            asked.append((checkpoint.epoch, bool(self.seen_epochs)))
            return checkpoint.epoch % 2 == 0

    asked = []
    inputs, labels = two_blobs
    test = ProbeSplit(torch.as_tensor(inputs[:50]), torch.as_tensor(labels[:50]), trusted_labels=False)
    counting = Counting()
    _, probe = train_and_probe(inputs, labels, [counting], epochs=4, extra_splits={"test": test})
    assert asked == [(1, False), (2, False), (3, False), (4, False)]
    assert counting.seen_epochs == {2, 4} and probe.observed["spy"] == {1, 3}  # checkpoint indices


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


class Shifted(CheckpointScore):
    """A loss whose ``offset`` only ``finish`` reads: variants share one pass and one state."""

    name, family, reference = "shifted", "test", "-"
    needs = frozenset({LOGITS})
    reduce = "mean"
    finish_params = ("offset",)

    def __init__(self, offset=0.0, fail=False):
        self.offset, self.fail = offset, fail

    def value(self, batch):
        if self.fail:
            raise RuntimeError("boom")
        return torch.nn.functional.cross_entropy(batch[LOGITS], batch.target, reduction="none")

    def finish(self, reduced, split):
        return reduced[split] + self.offset


def test_variants_differing_in_finish_params_share_a_state_and_fail_together(two_blobs):
    inputs, labels = two_blobs
    table, probe = train_and_probe(inputs, labels, [Shifted(), Shifted(offset=1.0), registry.create("loss")], epochs=2)
    assert [len(host.scorers) for host in probe.hosts] == [2, 1]
    np.testing.assert_array_equal(table["train"]["shifted"], table["train"]["loss"])  # the same mean loss
    np.testing.assert_array_equal(table["train"]["shifted[offset=1.0]"], table["train"]["loss"] + 1.0)
    owner, follower, other = Shifted(fail=True), Shifted(offset=1.0, fail=True), Spy()
    table, probe = train_and_probe(inputs, labels, [owner, follower, other], epochs=1)
    assert "RuntimeError: boom" in probe.failures[owner.spec] and "RuntimeError: boom" in probe.failures[follower.spec]
    assert "spy" in table["train"] and owner.spec not in table["train"] and follower.spec not in table["train"]


def test_float32_running_state_changes_vog_by_less_than_a_millionth():
    """VoG's per-pixel state in float32 (half the memory) against float64, on LeNet-5 trained for 10 epochs."""
    import copy

    from scipy.stats import spearmanr

    from bench.data import load_dataset
    from bench.models import build_model
    from bench.probe import Probe, ProbeSplit
    from bench.config import Recipe
    from bench.training import train

    digits = load_dataset("digits-c")
    x, y = torch.as_tensor(digits.train.inputs[:300]), torch.as_tensor(digits.train.labels[:300])
    torch.manual_seed(0)
    model = build_model("lenet", digits.input_shape, 10)
    settings = Recipe(epochs=10, batch_size=32, lr=0.03, momentum=0.9, weight_decay=5e-4, checkpoint_every=1)
    states = [(c, copy.deepcopy(model.state_dict()))
              for c in train(model, x, y, settings, torch.Generator().manual_seed(0), digits.input_shape)]
    specs = ["vog", "vog[window=all,target=logit]"]
    scores = {dtype: Probe({"train": ProbeSplit(x, y, trusted_labels=True)}, [registry.create(s) for s in specs],
                           digits.input_shape, state_dtype=dtype).run(model, states)["train"]
              for dtype in (torch.float64, torch.float32)}
    for spec in specs:
        exact, half = scores[torch.float64][spec], scores[torch.float32][spec]
        assert not np.array_equal(exact, half)  # the state really was float32
        assert np.max(np.abs(half - exact) / np.abs(exact)) < 1e-6
        assert spearmanr(exact, half).statistic > 0.99999


def test_input_gradients_are_taken_only_at_the_checkpoints_a_scorer_reads(two_blobs, monkeypatch):
    """VoG's default window is the last 3 of 10 checkpoints: no input gradient is taken at the other 7."""
    from bench import probe as probe_module
    from bench import registry

    asked = []
    compute = probe_module.compute_signals

    def spying(model, x, classes, needed, *args):
        asked.append(any(signal.kind == "input_grad" for signal in needed))
        return compute(model, x, classes, needed, *args)

    monkeypatch.setattr(probe_module, "compute_signals", spying)
    inputs, labels = two_blobs
    train_and_probe(inputs, labels, [registry.create("vog")], epochs=10)
    batches = -(-len(labels) // 256)  # the probe's batches per pass over the split
    assert sum(asked) == 3 * batches
    assert len(asked) == 3 * batches  # and no pass at all where nothing is wanted (the last checkpoint is one of the 3)
    asked.clear()
    train_and_probe(inputs, labels, [registry.create("vog[window=all]")], epochs=10)
    assert sum(asked) == 10 * batches
