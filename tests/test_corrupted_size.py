"""``corrupted_size``: each corrupted split cut to the copies of the same test images, drawn per class in proportion,
scored apart from the clean images, the cut written in the provenance but not in the training's."""

import numpy as np

from bench.benchmark import Benchmark
from bench.config import RunConfig
from bench.data import load_dataset, with_corrupted_size, with_semantic_ood
from bench.data.arrays import from_arrays
from bench.errors import BenchError


def positions(whole, part):
    """For each image of ``part``, the first index of an equal image in ``whole``."""
    equal = (whole.reshape(len(whole), 1, -1) == part.reshape(1, len(part), -1)).all(axis=2)
    assert equal.any(axis=0).all()
    return equal.argmax(axis=0)


def test_every_corrupted_split_keeps_the_copies_of_the_same_test_images_in_each_classs_proportion():
    digits = load_dataset("digits-c")
    cut = with_corrupted_size(digits, 90)
    kept = {name: positions(split.inputs, cut.ood[name].inputs) for name, split in digits.ood.items()}
    first = next(iter(kept.values()))
    assert len(first) == 90 and (np.diff(first) > 0).all()  # in their order
    assert all(np.array_equal(index, first) for index in kept.values())  # the same test images in every split
    assert all(not split.paired_with_test for split in cut.ood.values())
    assert all(np.array_equal(cut.ood[name].labels, digits.test.labels[first]) for name in kept)
    labels = digits.test.labels
    shares = np.bincount(labels[first], minlength=10) / 90
    assert np.abs(shares - np.bincount(labels, minlength=10) / len(labels)).max() <= 1.5 / 90
    assert cut.trained_on == digits.trained_on and cut.source == (
        f"{digits.source}; the corrupted copies of 90 test images in each corrupted split (stratified, seed 0)")
    assert with_corrupted_size(digits, 0) is digits and with_corrupted_size(digits, len(labels)) is digits


def test_another_datasets_split_is_not_cut():
    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8), dtype=np.uint8)
    base = from_arrays("base", x, np.arange(40) % 2, x, np.arange(40) % 2)
    other = with_semantic_ood(base, [from_arrays("other", x[:30], np.arange(30) % 2, x[:30], np.arange(30) % 2)])
    assert with_corrupted_size(other, 10) is other


def test_a_run_scores_the_cut_splits_unpaired_and_reuses_the_model_of_the_uncut_run(tmp_path):
    settings = dict(dataset="digits-c", model="mlp", scorers=["loss"], seeds=[0], epochs=1, checkpoint_at_init=True,
                    corruptions=["fog", "zigzag"],
                    out=str(tmp_path))
    whole = Benchmark(**settings).run(progress=False)
    cut = Benchmark(**settings, corrupted_size=60).run(progress=False)
    assert set(whole.tables[0].meta["ood_paired"]) == {"fog", "zigzag"} and cut.tables[0].meta["ood_paired"] == []
    board = whole.leaderboard
    assert board[(board.task == "ood") & (board.split == "fog") & (board.seed == "all")].interval.str.endswith(
        "over examples (paired)").all()
    assert len(cut.scores("fog")) == 60 and len(cut.scores("test")) == len(whole.scores("test"))
    assert len(list((tmp_path / "checkpoints").glob("*.npz"))) == 1  # trained once
    rows = cut.leaderboard[(cut.leaderboard.task == "ood") & (cut.leaderboard.split == "fog")
                           & (cut.leaderboard.seed == "all")]
    assert len(rows) == 5 and rows.interval.str.endswith("over examples (stratified)").all()


def test_a_negative_size_is_refused_with_the_key_named():
    try:
        RunConfig(corrupted_size=-1).check()
    except BenchError as error:
        assert "corrupted_size" in str(error)
    else:
        raise AssertionError("corrupted_size -1 was accepted")
