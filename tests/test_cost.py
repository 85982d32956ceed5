"""The cost task: each scorer's seconds (its own calls, its share of the passes) and peak state bytes, measured."""

import time

import numpy as np

from bench import registry
from bench.api import LOGITS, StreamingScorer
from bench.tasks.cost import NOT_MEASURED, cost
from conftest import train_and_probe

NAP = 0.01  # seconds the sleeping scorer sleeps per update


class Sleeper(StreamingScorer):
    """Sleeps a known time in every update, so its cost has a floor known in advance."""

    name, family, reference = "sleeper", "test", "-"
    needs = frozenset({LOGITS})

    def __init__(self):
        self.updates, self._n = 0, {}

    def start(self, split, size):
        self._n[split] = size

    def update(self, batch, checkpoint):
        time.sleep(NAP)
        self.updates += 1

    def scores(self, split):
        return np.zeros(self._n[split])


def test_a_scorer_that_sleeps_in_update_is_charged_at_least_its_sleep(two_blobs):
    inputs, labels = two_blobs
    sleeper = Sleeper()
    _, probe = train_and_probe(inputs, labels, [sleeper, registry.create("loss")], epochs=4)
    assert sleeper.updates == 4 * 2  # 4 checkpoints x 2 batches of 256
    assert probe.cost["sleeper"]["seconds"] >= sleeper.updates * NAP
    assert probe.cost["loss"]["seconds"] < sleeper.updates * NAP  # the nap is not shared with the other scorer


def test_the_charges_add_up_to_no_more_than_the_probe_took(two_blobs):
    """Shared passes are divided, never counted twice: the scorers' seconds sum to at most the probe's own,
    and with VoG alone most of the probe is VoG's."""
    inputs, labels = two_blobs
    _, probe = train_and_probe(inputs, labels, [registry.create(s) for s in ("vog[window=all]", "loss", "kde")],
                               epochs=5)
    total = sum(probe.seconds.values())
    charged = sum(c["seconds"] for c in probe.cost.values())
    assert 0 < charged <= total
    _, alone = train_and_probe(inputs, labels, [registry.create("vog[window=all]")], epochs=5)
    assert 0.5 * sum(alone.seconds.values()) <= alone.cost["vog[window=all]"]["seconds"] <= sum(alone.seconds.values())


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
    per = rows.set_index(["seed", "scorer", "metric"]).value
    assert np.isnan(per[("all", "a", "seconds_ci_low")]) and per[("all", "a", "seconds")] == 1.0
    assert per[("all", "b", "seconds_ci_low")] < 4.0 < per[("all", "b", "seconds_ci_high")]


def test_the_pareto_front_keeps_what_nothing_beats_on_both_cost_and_quality():
    from bench.ranking import pareto_front

    cost = np.array([1.0, 2.0, 3.0, 2.0, np.nan, 0.5, 4.0])
    quality = np.array([0.5, 0.7, 0.6, 0.7, 0.9, 0.5, 0.8])
    # (1, .5) is beaten by (.5, .5); (3, .6) by (2, .7); the two (2, .7) tie, so neither beats the other
    np.testing.assert_array_equal(pareto_front(cost, quality), [False, True, False, True, False, True, True])
