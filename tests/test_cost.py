"""The cost task: each scorer's seconds (its own calls, its share of the passes) and peak state bytes, measured.

The charging rules are checked on a clock that moves only when the test says (no wall-clock time): what
each scorer is charged is then known in advance, whatever the machine's load."""

import numpy as np
import pytest
import torch
from scipy import stats

from bench import registry
from bench.api import LOGITS, StreamingScorer
from bench.meter import Meter
from bench.tasks.cost import MEASURED_ONCE, NOT_MEASURED, cost
from conftest import train_and_probe

NAP = 0.5  # seconds the napping scorer's update takes on the test clock (a binary fraction: sums are exact)
LAYERS = 2  # Linear layers per forward pass of train_and_probe's MLP: the hidden layer and the head


class Clock:
    """The meter's clock in these tests: it moves only when the test advances it."""

    def __init__(self):
        self.now = 0.0


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(Meter, "now", lambda self: clock.now)
    return clock


class Napper(StreamingScorer):
    """Takes NAP seconds of the test clock in every update, so its cost is known in advance."""

    name, family, reference = "napper", "test", "-"
    needs = frozenset({LOGITS})

    def __init__(self, clock):
        self.clock, self.updates, self._n = clock, 0, {}

    def start(self, split, size):
        self._n[split] = size

    def update(self, batch, checkpoint):
        self.clock.now += NAP
        self.updates += 1

    def scores(self, split):
        return np.zeros(self._n[split])


def test_the_time_of_a_scorers_update_is_charged_to_that_scorer_alone(two_blobs, clock):
    inputs, labels = two_blobs
    napper = Napper(clock)
    _, probe = train_and_probe(inputs, labels, [napper, registry.create("loss")], epochs=4)
    assert napper.updates == 4 * 2  # 4 checkpoints x 2 batches of 256
    assert probe.cost["napper"]["seconds"] == napper.updates * NAP
    assert probe.cost["loss"]["seconds"] == 0  # the nap is not shared with the other scorer


@pytest.fixture
def ticking_layers(clock, monkeypatch):
    """Every call of a Linear layer advances the clock by one: a forward pass of the MLP takes LAYERS seconds."""
    forward = torch.nn.Linear.forward

    def ticking(layer, x):
        clock.now += 1
        return forward(layer, x)

    monkeypatch.setattr(torch.nn.Linear, "forward", ticking)


def test_every_forward_pass_is_charged_once_divided_among_the_scorers_using_it(two_blobs, ticking_layers):
    """Shared passes are divided, never counted twice nor left out: 5 checkpoints x 2 batches are 10 forward passes;
    VoG alone is charged all of them, VoG and loss half each, and kde, on the pixels, none."""
    inputs, labels = two_blobs
    passes = 5 * 2
    _, alone = train_and_probe(inputs, labels, [registry.create("vog[window=all]")], epochs=5)
    assert alone.cost["vog[window=all]"]["seconds"] == passes * LAYERS
    _, probe = train_and_probe(inputs, labels, [registry.create(s) for s in ("vog[window=all]", "loss", "kde")],
                               epochs=5)
    assert sum(c["seconds"] for c in probe.cost.values()) == passes * LAYERS
    assert probe.cost["vog[window=all]"]["seconds"] == probe.cost["loss"]["seconds"] == passes * LAYERS / 2
    assert probe.cost["kde"]["seconds"] == 0


def test_state_bytes_are_the_running_state_of_the_reductions(two_blobs):
    """VoG keeps Welford's mean and second moment of every input element (float64) and the last class (int64):
    500 examples of 2 pixels -> 2 x 500 x 2 x 8 + 500 x 8 bytes, whatever the number of checkpoints."""
    inputs, labels = two_blobs
    _, probe = train_and_probe(inputs, labels, [registry.create("vog[window=all]"), registry.create("kde")], epochs=5)
    assert probe.cost["vog[window=all]"]["state_bytes"] == 2 * 500 * 2 * 8 + 500 * 8
    assert probe.cost["kde"]["state_bytes"] > 500 * 2 * 8  # the fitted detector keeps its 500 training points


def unit(seed, cost_of=None, failures=None):
    from bench.store import ScoreTable

    meta = {"dataset": "d", "model": "m", "label_mode": "predicted", "seed": seed, "scorers": ["a", "b"],
            "failures": failures or {}}
    if cost_of is not None:
        meta["cost"] = cost_of
    return ScoreTable(meta, {})


def test_cost_rows_per_seed_and_their_mean_with_the_reasons_for_nan():
    measured = {"a": {"seconds": 1.0, "state_bytes": 10}, "b": {"seconds": 3.0, "state_bytes": 20}}
    rows = cost([unit(0, measured), unit(1, {**measured, "a": {"seconds": 2.0, "state_bytes": 10}},
                                        failures={"b": "RuntimeError: boom"})])
    per = rows.set_index(["seed", "scorer", "metric"]).value
    assert per[("0", "a", "seconds")] == 1.0 and per[("1", "a", "seconds")] == 2.0
    assert per[("all", "a", "seconds")] == 1.5 and per[("all", "a", "state_bytes")] == 10
    assert np.isnan(per[("1", "b", "seconds")])  # failed: its cost stops where it failed
    notes = rows.set_index(["seed", "scorer", "metric"]).note
    assert "boom" in notes[("1", "b", "seconds")]
    old = cost([unit(0, measured), unit(1)])  # a unit of bench < 0.5 beside one that measured
    assert (old[old.seed == "1"].note == NOT_MEASURED).all() and old[old.seed == "1"].value.isna().all()
    assert cost([unit(0), unit(1)]).empty  # nothing measured at all: no rows, as a task with nothing to measure


def test_a_cost_measured_once_and_reused_by_every_seed_has_no_interval():
    measured = {"a": {"seconds": 1.0, "state_bytes": 10}, "b": {"seconds": 3.0, "state_bytes": 20}}
    rows = cost([unit(0, measured), unit(1, {**measured, "b": {"seconds": 5.0, "state_bytes": 20}})])
    per = rows.set_index(["seed", "scorer", "metric"])
    once = per.loc[("all", "a", "seconds")]
    assert np.isnan(once.ci_low) and once.value == 1.0 and once.interval == "" and once.note == MEASURED_ONCE
    interval = stats.t.interval(0.95, 1, loc=4.0, scale=1.0)  # 3 and 5: mean 4, standard error sqrt(2) / sqrt(2)
    assert (per.ci_low[("all", "b", "seconds")], per.ci_high[("all", "b", "seconds")]) == pytest.approx(interval)


def test_the_pareto_front_keeps_what_nothing_beats_on_both_cost_and_quality():
    from bench.ranking import pareto_front

    cost = np.array([1.0, 2.0, 3.0, 2.0, np.nan, 0.5, 4.0])
    quality = np.array([0.5, 0.7, 0.6, 0.7, 0.9, 0.5, 0.8])
    # (1, .5) is beaten by (.5, .5); (3, .6) by (2, .7); the two (2, .7) tie, so neither beats the other
    np.testing.assert_array_equal(pareto_front(cost, quality), [False, True, False, True, False, True, True])



class Event:
    """A CUDA event on the test clock: its time is read when it is recorded, as the device's would be."""

    def __init__(self, at):
        self.at = at

    def elapsed_time(self, end):
        return (end.at - self.at) * 1000  # milliseconds, as CUDA's


def test_the_device_is_synchronised_once_per_pass_not_once_per_call(two_blobs, ticking_layers, clock, monkeypatch):
    """5 checkpoints of one split: 5 passes, then the split's end and the scoring, settled once each, while every
    host call (the updates alone are 5 checkpoints x 2 batches x 2 hosts) is charged without a wait."""
    import bench.probe

    class EventMeter(Meter):
        """The meter as on CUDA (spans ended by events, read after one synchronisation), on the test clock."""

        def __init__(self, device):
            super().__init__(device)
            self.cuda = True

        def now(self):
            return Event(clock.now)

    synchronised = []
    monkeypatch.setattr(bench.probe, "Meter", EventMeter)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synchronised.append(device))
    inputs, labels = two_blobs
    _, probe = train_and_probe(inputs, labels, [registry.create(s) for s in ("vog[window=all]", "loss")], epochs=5)
    assert len(synchronised) == 5 + 2
    assert probe.cost["vog[window=all]"]["seconds"] == probe.cost["loss"]["seconds"] == 5 * 2 * LAYERS / 2
