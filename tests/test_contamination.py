"""Exact copies of in-distribution images are dropped from every OoD split before scoring, and counted: on copies
planted by hand, through a run into the leaderboard's notes, and on the shipped CIFAR files (two CIFAR-100 test
records are CIFAR-10 images)."""

import hashlib
from pathlib import Path

import numpy as np
import pytest

from bench.benchmark import Benchmark
from bench.data import copies_of, load_dataset, with_semantic_ood, with_training_set, without_in_distribution_copies
from bench.data.arrays import from_arrays
from bench.data.dataset import Split, with_ood_splits
from bench.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
RGB = (3, 8, 8)


def images(n, seed, shape=RGB):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape), dtype=np.uint8)


def dataset_of(name, x):
    """A dataset whose test split (the one that joins another dataset as OoD) is ``x``, its training split too."""
    return from_arrays(name, x, np.arange(len(x)) % 2, x, np.arange(len(x)) % 2)


def test_planted_copies_of_training_and_test_images_are_dropped_and_counted_and_nothing_else():
    train, test = images(40, 0), images(20, 1)
    train[11] = train[11, :1]  # a gray-looking colour image: its three channels equal
    labels, test_labels = np.arange(40) % 2, np.arange(20) % 2
    published = from_arrays("base", train, labels, test, test_labels)
    base = with_training_set(published, 10, 0.0)
    left_out = int(np.flatnonzero(~copies_of(train, base.train.inputs))[0])  # not in the run's training split
    other = images(12, 2)
    planted = {2: train[5], 7: test[3], 9: train[left_out]}  # OoD position -> the in-distribution image copied there
    for position, image in planted.items():
        other[position] = image
    other[4] = test[0]
    other[4, 0, 0, 0] ^= 1  # one bit off a test image: not a copy
    gray = images(5, 3, (8, 8))
    gray[1] = train[11, 0]  # a copy once repeated into RGB, the layout of the dataset it joins
    halved, inverted = test // 2, 255 - test  # two corruptions, image i of each is test image i corrupted
    halved[6] = test[6]  # a corruption that left an image as it was (brightness at severity 0)
    corrupted = {name: Split(split, test_labels, paired_with_test=True) for name, split in (("halved", halved),
                                                                                           ("inverted", inverted))}
    with_corruptions = with_ood_splits(base, corrupted, "covariate", "two corruptions", "the test")
    dataset = with_semantic_ood(with_corruptions, [dataset_of("other", other), dataset_of("gray", gray)])

    cleaned = without_in_distribution_copies(dataset, published)

    assert cleaned.ood_dropped == {"halved": 1, "other": 3, "gray": 1}
    assert cleaned.source == (f"{dataset.source}; exact copies of in-distribution images dropped from the OoD splits: "
                              "halved 1, other 3, gray 1")
    np.testing.assert_array_equal(cleaned.ood["other"].inputs, np.delete(other, list(planted), axis=0))
    assert (cleaned.ood["other"].labels == -1).all() and len(cleaned.ood["other"].labels) == 9
    np.testing.assert_array_equal(cleaned.ood["gray"].inputs, np.repeat(np.delete(gray, 1, axis=0)[:, None], 3, axis=1))
    np.testing.assert_array_equal(cleaned.ood["halved"].inputs, np.delete(halved, 6, axis=0))
    np.testing.assert_array_equal(cleaned.ood["halved"].labels, np.delete(test_labels, 6))
    assert not cleaned.ood["halved"].paired_with_test  # image i is no longer test image i corrupted
    assert cleaned.ood["inverted"] is dataset.ood["inverted"] and cleaned.ood["inverted"].paired_with_test
    assert cleaned.train is base.train and cleaned.test is base.test
    clean = with_semantic_ood(base, [dataset_of("far", images(6, 4))])
    assert without_in_distribution_copies(clean, published) is clean  # nothing dropped: provenance and cache unchanged


def test_an_ood_split_of_copies_alone_is_refused():
    data = from_arrays("base", images(8, 0), np.arange(8) % 2, images(4, 1), np.arange(4) % 2)
    same = with_semantic_ood(data, [dataset_of("same", data.train.inputs[:3])])
    with pytest.raises(BenchError, match="OoD split same of base: each of its 3 images is an exact copy of an "
                                         "in-distribution image .* leave it out"):
        without_in_distribution_copies(same, data)


def test_a_run_drops_the_copies_and_notes_their_count_on_the_rows_of_the_split_and_of_its_means(tmp_path, capsys):
    train, test = images(60, 0), images(20, 1)
    labels = np.arange(60) % 2
    planted = images(10, 2)
    planted[[1, 4]] = train[[3, 50]]
    data = from_arrays("arrays", train, labels, test, labels[:20], ood={"planted": planted, "far": images(10, 3)})
    result = Benchmark(data, model="mlp", scorers=["loss"], seeds=[0], epochs=1, checkpoint_at_init=True,
                       bootstrap_resamples=0, out=str(tmp_path)).run(progress=False)
    assert "note: OoD split planted: 2 exact copies of in-distribution images dropped" in capsys.readouterr().err
    meta = result.tables[0].meta
    assert meta["ood_dropped"] == {"planted": 2} and "dropped from the OoD splits: planted 2" in meta["config"]["data_source"]
    assert len(result.scores("planted")) == 8 and len(result.scores("far")) == 10
    ood = result.leaderboard[result.leaderboard.task == "ood"]
    said = "planted: 2 exact copies of in-distribution images dropped before scoring"
    assert (ood[ood.split.isin(["planted", "mean"])].note.str.endswith(said)).all()
    assert not ood[ood.split == "far"].note.str.contains("dropped").any()
    assert ood[(ood.split == "planted") & (ood.seed == "all")].note.str.startswith("one seed:").all()  # kept, first
    assert not result.leaderboard[result.leaderboard.task != "ood"].note.str.contains("dropped").any()


@pytest.mark.skipif(not (SHARED / "cifar10").is_dir() or not (SHARED / "cifar100").is_dir(),
                    reason=f"the shipped CIFAR-10 and CIFAR-100 files are not in {SHARED} (ROOT/../shared/data)")
def test_the_shipped_cifar100_test_records_957_and_3342_are_found_as_cifar10_images():
    """The gzipped CIFAR-10 folder and CIFAR-100's test file alone, found by their bare names in the shared root."""
    cifar10 = load_dataset("cifar10", SHARED, corruptions=())
    cifar100 = load_dataset("cifar100", SHARED, corruptions=())
    assert (len(cifar10.train), len(cifar10.test), len(cifar100.train), len(cifar100.test)) == (50000, 10000, 0, 10000)
    records = np.concatenate([cifar10.test.labels[:, None].astype(np.uint8), cifar10.test.inputs.reshape(10000, -1)], 1)
    assert hashlib.sha256(records.tobytes()).hexdigest() == (  # test_batch.bin's, in cifar10/PROVENANCE.md
        "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b")
    assert np.flatnonzero(copies_of(cifar100.test.inputs, cifar10.test.inputs)).tolist() == [957]  # bus_s_000146
    assert np.flatnonzero(copies_of(cifar100.test.inputs, cifar10.train.inputs)).tolist() == [3342]  # dog_s_001057
    combined = without_in_distribution_copies(with_semantic_ood(cifar10, [cifar100]), cifar10)
    assert combined.ood_dropped == {"cifar100": 2}
    np.testing.assert_array_equal(combined.ood["cifar100"].inputs, np.delete(cifar100.test.inputs, [957, 3342], axis=0))
