"""A dataset's own flags of mislabeled training labels (``from_arrays(mislabeled=...)``, an npz's ``mislabeled``): the
mislabel task finds those, as scikit-learn scores the same scores against the same flags."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from bench.benchmark import Benchmark
from bench.data import load_dataset
from bench.data.arrays import from_arrays
from bench.errors import BenchError


@pytest.fixture(scope="module")
def audited():
    """sklearn's digits with 10% of the training labels moved to the next class, and the flags of those."""
    digits = load_digits()
    images, labels = (digits.images * 255 / 16).astype(np.uint8), digits.target
    given = labels[:1400].copy()
    flagged = np.random.default_rng(0).permutation(1400)[:140]
    given[flagged] = (given[flagged] + 1) % 10
    mislabeled = np.zeros(1400, dtype=bool)
    mislabeled[flagged] = True
    return images, labels, given, mislabeled


def test_the_mislabel_task_finds_the_flagged_labels_as_sklearn_scores_them(audited, tmp_path):
    images, labels, given, mislabeled = audited
    data = from_arrays("audited", images[:1400], given, images[1400:], labels[1400:], mislabeled=mislabeled)
    result = Benchmark(data, model="mlp", scorers=["loss"], seeds=[0], epochs=2, checkpoint_at_init=True,
                       out=str(tmp_path / "out")).run(progress=False)
    (table,) = result.tables
    np.testing.assert_array_equal(table.splits["train"]["noisy"], mislabeled)
    board = result.leaderboard
    auroc = board.query("task == 'mislabel' and scorer == 'loss' and metric == 'auroc' and seed == '0'").value.item()
    assert auroc == pytest.approx(roc_auc_score(mislabeled, table.splits["train"]["loss"]), abs=1e-12)


def test_other_flags_are_another_unit_of_the_same_trained_model(audited, tmp_path):
    images, labels, given, mislabeled = audited
    runs = [Benchmark(from_arrays("audited", images[:1400], given, images[1400:], labels[1400:], mislabeled=flags),
                      model="mlp", scorers=["loss"], seeds=[0], epochs=1, out=str(tmp_path / "out")).run(progress=False)
            for flags in (mislabeled, np.roll(mislabeled, 1))]
    assert runs[0].unit_paths != runs[1].unit_paths
    assert len(list((tmp_path / "out" / "checkpoints").glob("*.npz"))) == 1


def test_an_npz_carries_its_flags(audited, tmp_path):
    images, labels, given, mislabeled = audited
    path = tmp_path / "audited.npz"
    np.savez(path, x_train=images[:1400], y_train=given, x_test=images[1400:], y_test=labels[1400:],
             mislabeled=mislabeled.astype(np.uint8))
    np.testing.assert_array_equal(load_dataset(f"npz:{path}", None, ()).train.noisy, mislabeled)


@pytest.mark.parametrize("flags, message", [
    (np.zeros(10, dtype=bool), "has shape (10,) for 1400 training images"),
    (np.full(1400, 2), "values other than 0 and 1"),
])
def test_flags_that_do_not_fit_are_refused(audited, flags, message):
    images, labels, given, _ = audited
    with pytest.raises(BenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_arrays("audited", images[:1400], given, images[1400:], labels[1400:], mislabeled=flags)


def test_a_dataset_with_its_own_flags_takes_no_label_noise(audited, tmp_path):
    images, labels, given, mislabeled = audited
    data = from_arrays("audited", images[:1400], given, images[1400:], labels[1400:], mislabeled=mislabeled)
    with pytest.raises(BenchError, match="carries its own flags of mislabeled training labels"):
        Benchmark(data, model="mlp", scorers=["loss"], seeds=[0], epochs=1, label_noise=0.2,
                  out=str(tmp_path / "out")).run(progress=False)
