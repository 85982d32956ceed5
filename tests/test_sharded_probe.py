"""The sharded probe: every split cut into consecutive ranges of examples, each probed alone, their states joined
(``Probe.shard`` and ``Probe.join``), gives the table of the unsharded probe."""

import copy

import numpy as np
import pytest
import torch

from bench import registry
from bench.api import StreamingScorer
from bench.cli import main
from bench.config import Recipe
from bench.models import PoolNet
from bench.probe import Probe, ProbeSplit, Sharding, checkpoint_ranges, example_ranges
from bench.store import ScoreTable
from bench.training import train

# Every form and reduction: std (vog), mean (loss), transitions (forgetting), sums over checkpoints (aum, tracin with
# its learning rates), one checkpoint (el2n, grand[epoch=0] at initialisation), input and parameter gradients
# (vog, odin, gradnorm), detectors on the pixels, the embedding and the logits, with the last layer (vim, react).
SPECS = ["vog", "vog[window=all]", "loss", "forgetting", "aum", "tracin", "el2n", "grand", "grand[epoch=0]",
         "cartography-variability", "margin", "max-softmax", "energy", "odin", "gradnorm", "knn", "mds", "vim",
         "react", "kde", "self-confidence"]
SHAPE = (3, 32, 32)


class Median(StreamingScorer):
    """A state of its own (the losses so far), which declares no merge."""

    name, family, reference, needs = "median-max-logit", "test", "-", frozenset({"logits"})

    def start(self, split, size):
        self.values = [[] for _ in range(size)]

    def update(self, batch, checkpoint):
        for position, value in zip(batch.index.tolist(), batch["logits"].max(1).values.tolist()):
            self.values[position].append(value)

    def scores(self, split):
        return np.array([np.median(v) for v in self.values])


@pytest.fixture(scope="module")
def trained():
    """poolnet (batch norm in every stage) trained for 3 epochs on random CIFAR-shaped images; the splits and the
    checkpoints at initialisation and after each epoch."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(120, *SHAPE, generator=generator)
    labels = torch.randint(0, 4, (120,), generator=generator)
    torch.manual_seed(0)
    model = PoolNet(SHAPE, 4)
    settings = Recipe(epochs=3, batch_size=16, lr=0.05, momentum=0.9, weight_decay=0.0, checkpoint_every=1,
                      checkpoint_at_init=True)
    checkpoints = [(checkpoint, copy.deepcopy(model.state_dict()))
                   for checkpoint in train(model, images[:70], labels[:70], settings, generator, SHAPE)]
    splits = {"train": ProbeSplit(images[:70], labels[:70], trusted_labels=True),  # 5 batches of 16: 2, 2, 1
              "test": ProbeSplit(images[70:117], labels[70:117], trusted_labels=False),  # 3 batches: 1 each
              "tiny": ProbeSplit(images[117:], labels[117:], trusted_labels=False)}  # 1 batch: the first shard's
    return model, splits, checkpoints


def probe_table(trained, shards, extra=()):
    model, splits, checkpoints = trained
    probe = Probe(splits, [registry.create(spec) for spec in SPECS] + list(extra), SHAPE, batch_size=16)
    return probe.run(model, checkpoints, sharding=Sharding(shards)), probe


def test_the_ranges_of_every_split_cover_it_in_order_in_whole_batches_as_equal_as_they_can_be():
    sizes = {"a": 100, "b": 30, "c": 7, "d": 0}
    for shards in (1, 2, 3, 7):
        pieces = example_ranges(sizes, shards, batch_size=8)
        for name, size in sizes.items():
            ranges = [piece[name] for piece in pieces]
            assert np.array_equal(np.concatenate(ranges), np.arange(size))
            batches = [-(-len(r) // 8) for r in ranges]
            assert all(r[0] % 8 == 0 for r in ranges if len(r)) and max(batches) - min(batches) <= 1


def test_the_sharded_probe_gives_the_unsharded_table_bit_for_bit(trained):
    """Every column of every split, with batch norm in the network (in eval mode: its running statistics), and
    shards of 2 and 1 batches of 16 (the split of 3 examples in the first shard alone): equal bit for bit, as every
    batch is the unsharded probe's and no reduction mixes examples."""
    whole, whole_probe = probe_table(trained, 1)
    sharded, sharded_probe = probe_table(trained, 3)
    assert not whole_probe.failures and not sharded_probe.failures
    assert whole.keys() == sharded.keys()
    for split, columns in whole.items():
        assert columns.keys() == sharded[split].keys() and {s.spec for s in whole_probe.scorers} <= columns.keys()
        for column, values in columns.items():
            np.testing.assert_array_equal(sharded[split][column], values, err_msg=f"{split} {column}")
    assert set(sharded_probe.cost) == set(whole_probe.cost)


def test_more_shards_than_batches_leave_the_extra_shards_empty(trained):
    """7 shards of splits of 5, 3 and 1 batches: the shards past the last batch have nothing to probe."""
    whole, _ = probe_table(trained, 1)
    sharded, probe = probe_table(trained, 7)
    assert not probe.failures
    for split, columns in whole.items():
        for column, values in columns.items():
            np.testing.assert_array_equal(sharded[split][column], values, err_msg=f"{split} {column}")


def test_a_scorer_whose_state_does_not_merge_fails_alone_with_the_reason(trained):
    table, probe = probe_table(trained, 2, extra=[Median()])
    assert "does not merge" in probe.failures["median-max-logit"]
    assert "median-max-logit" not in table["test"] and "vog" in table["test"]


def test_bench_run_with_shards_writes_the_unsharded_scores_and_reuses_their_units(tmp_path):
    """End to end on the embedded digits: ``--shards 3`` gives the score table of a run without it, bit for bit; the
    setting is not part of the unit, so a rerun with other shards reuses the unit and keeps its leaderboard as it
    is (it sets no leaderboard aside as one of other settings)."""
    common = ["run", "--scorers", "vog,loss,forgetting,knn,kde", "--seeds", "1", "--epochs", "2",
              "--checkpoint-at-init", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "whole")]) == 0
    assert main([*common, "--shards", "3", "--out", str(tmp_path / "sharded")]) == 0
    [whole_path], [sharded_path] = (list((tmp_path / name / "units").glob("*.npz")) for name in ("whole", "sharded"))
    whole, sharded = ScoreTable.load(whole_path), ScoreTable.load(sharded_path)
    assert sharded.meta["shards"] == {"count": 3, "on": "this process"} and "shards" not in whole.meta
    assert whole.splits.keys() == sharded.splits.keys()
    for split, columns in whole.splits.items():
        assert columns.keys() == sharded.splits[split].keys() and "vog" in columns
        for column, values in columns.items():
            np.testing.assert_array_equal(sharded.splits[split][column], values, err_msg=f"{split} {column}")
    assert not list((tmp_path / "sharded" / "shards").iterdir())  # kept until the unit was saved, then removed
    written = whole_path.stat().st_mtime_ns
    assert main([*common, "--shards", "2", "--out", str(tmp_path / "whole")]) == 0
    assert whole_path.stat().st_mtime_ns == written and list((tmp_path / "whole" / "units").iterdir()) == [whole_path]
    assert sorted(path.name for path in (tmp_path / "whole").glob("leaderboard*.csv")) == ["leaderboard.csv"]


def test_bench_run_in_ranges_of_checkpoints_is_a_unit_of_its_own_with_the_scores_to_rounding(tmp_path):
    """``--checkpoint-shards 2`` on the embedded digits: another unit (its scores differ in rounding, so it is hashed),
    equal to the plain run's to 1e-12 of each value; the meta says how it ran."""
    common = ["run", "--scorers", "vog,loss,forgetting,knn", "--seeds", "1", "--epochs", "3", "--checkpoint-at-init",
              "--no-progress", "--out", str(tmp_path)]
    assert main(common) == 0 and main([*common, "--shards", "2", "--checkpoint-shards", "2"]) == 0
    plain, cut = sorted((ScoreTable.load(path) for path in (tmp_path / "units").glob("*.npz")),
                        key=lambda table: "shards" in table.meta)
    assert cut.meta["shards"] == {"count": 2, "on": "this process", "checkpoint_ranges": 2}
    for split, columns in plain.splits.items():
        for column, values in columns.items():
            np.testing.assert_allclose(cut.splits[split][column], values, rtol=1e-12, err_msg=f"{split} {column}")


def test_an_interrupted_sharded_probe_probes_again_only_the_shards_it_did_not_keep(trained, tmp_path, monkeypatch):
    """Killed during its second shard, the probe has kept the first; a rerun probes the second and third alone and
    gives the table of an uninterrupted probe. A kept shard made by other scorers is not taken."""
    model, splits, checkpoints = trained
    specs = ["vog", "loss", "forgetting", "knn"]
    kept = lambda k: tmp_path / f"shard-{k}.npz"  # noqa: E731
    expected = Probe(splits, [registry.create(spec) for spec in specs], SHAPE, batch_size=16).run(model, checkpoints)
    probed, original = [], Probe.shard

    def killed_at_the_second(self, rows, *args, **kwargs):
        probed.append(rows)
        if len(probed) == 2:
            raise KeyboardInterrupt
        return original(self, rows, *args, **kwargs)

    monkeypatch.setattr(Probe, "shard", killed_at_the_second)
    with pytest.raises(KeyboardInterrupt):
        Probe(splits, [registry.create(spec) for spec in specs], SHAPE, batch_size=16).run(model, checkpoints,
                                                                                          sharding=Sharding(3, kept))
    assert [path.name for path in sorted(tmp_path.iterdir())] == ["shard-0.npz"]
    monkeypatch.setattr(Probe, "shard", lambda self, rows, *args, **kwargs: probed.append(rows) or original(
        self, rows, *args, **kwargs))
    probed.clear()
    table = Probe(splits, [registry.create(spec) for spec in specs], SHAPE, batch_size=16).run(model, checkpoints,
                                                                                              sharding=Sharding(3, kept))
    assert [rows["train"][0] for rows in probed] == [32, 64]  # the second and third shards' first examples
    for split, columns in expected.items():
        for column, values in columns.items():
            np.testing.assert_array_equal(table[split][column], values, err_msg=f"{split} {column}")
    probed.clear()
    Probe(splits, [registry.create(spec) for spec in ["vog", "loss"]], SHAPE, batch_size=16).run(
        model, checkpoints, sharding=Sharding(3, kept))
    assert len(probed) == 3


# Reduced over the checkpoints by counting, or by taking one checkpoint's value, or not at all: equal bit for bit when
# the checkpoints are cut; the others are sums and moments, whose additions then come in another order.
EXACT_OVER_RANGES = {"id", "label", "pred", "noisy", "forgetting", "knn", "mds", "vim", "react", "kde",
                     "self-confidence"}


def test_ranges_of_checkpoints_merge_into_the_unsharded_table_to_rounding(trained):
    """2 ranges of examples x 3 of the 4 checkpoints (1, 1 and 2 of them; the default vog reads the last 3, so its
    first range has nothing): the reductions merged (Chan's for VoG's std) equal the unsharded table to 1e-12 of
    each value, float64; counts, transitions and the detectors' last-checkpoint features bit for bit."""
    whole, _ = probe_table(trained, 1)
    model, splits, checkpoints = trained
    probe = Probe(splits, [registry.create(spec) for spec in SPECS], SHAPE, batch_size=16)
    cut = probe.run(model, checkpoints, sharding=Sharding(2, checkpoint_count=3))
    assert not probe.failures
    for split, columns in whole.items():
        assert columns.keys() == cut[split].keys()
        for column, values in columns.items():
            if column in EXACT_OVER_RANGES:
                np.testing.assert_array_equal(cut[split][column], values, err_msg=f"{split} {column}")
            else:
                np.testing.assert_allclose(cut[split][column], values, rtol=1e-12, atol=1e-300, err_msg=f"{split} {column}")


def test_checkpoint_ranges_are_consecutive_and_as_equal_as_they_can_be():
    assert checkpoint_ranges(4, 3) == [(0, 1), (1, 3), (3, 4)]  # bounds 0, 4/3, 8/3, 4 rounded
    for checkpoints in range(1, 12):
        for shards in range(1, 14):
            ranges = checkpoint_ranges(checkpoints, shards)
            assert ranges[0][0] == 0 and ranges[-1][1] == checkpoints and len(ranges) == min(shards, checkpoints)
            assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
            sizes = [stop - first for first, stop in ranges]
            assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1


def test_an_interrupted_probe_in_ranges_of_checkpoints_probes_again_only_the_shards_it_did_not_keep(trained, tmp_path,
                                                                                                    monkeypatch):
    """1 range of examples x 4 of checkpoints, killed in the third: the rerun probes the third and fourth alone,
    and its table equals an uninterrupted probe in the same ranges, bit for bit (the same merges, in the same order)."""
    model, splits, checkpoints = trained
    specs = ["vog[window=all]", "loss", "forgetting", "knn"]
    kept = lambda k: tmp_path / f"shard-{k}.npz"  # noqa: E731
    expected = Probe(splits, [registry.create(spec) for spec in specs], SHAPE, batch_size=16).run(
        model, checkpoints, sharding=Sharding(1, checkpoint_count=4))
    probed, original = [], Probe.shard

    def killed_at_the_third(self, rows, *args, **kwargs):
        probed.append(args[-1])  # the range of checkpoints
        if len(probed) == 3:
            raise KeyboardInterrupt
        return original(self, rows, *args, **kwargs)

    monkeypatch.setattr(Probe, "shard", killed_at_the_third)
    with pytest.raises(KeyboardInterrupt):
        Probe(splits, [registry.create(spec) for spec in specs], SHAPE, batch_size=16).run(
            model, checkpoints, sharding=Sharding(1, kept, checkpoint_count=4))
    assert [path.name for path in sorted(tmp_path.iterdir())] == ["shard-0.npz", "shard-1.npz"]
    probed.clear()
    table = Probe(splits, [registry.create(spec) for spec in specs], SHAPE, batch_size=16).run(
        model, checkpoints, sharding=Sharding(1, kept, checkpoint_count=4))
    assert probed == [(2, 3), (3, 4)]
    for split, columns in expected.items():
        for column, values in columns.items():
            np.testing.assert_array_equal(table[split][column], values, err_msg=f"{split} {column}")
