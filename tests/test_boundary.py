"""The VoG paper's Fig. 1 as a result: the two-blobs data, the boundary task, and the toy-boundary preset."""

import numpy as np
import pytest
from scipy.stats import binomtest, norm, spearmanr

from bench.data import load_dataset, with_training_set
from bench.data.blobs import CENTRE
from bench.stats import spearman_along
from bench.store import ScoreTable
from bench.tasks.boundary import boundary
from bench.tasks.rows import OverExamples
from tests.test_tasks import make_table, value


def test_two_blobs_knows_its_bayes_boundary():
    """The distance recorded is |x0|, and the Bayes classifier, sign(x0), errs at its closed-form rate
    Φ(-CENTRE) on the 1,000 points (exact binomial test)."""
    dataset = load_dataset("two-blobs")
    assert dataset.input_shape == (1, 1, 2) and dataset.n_classes == 2
    errors = 0
    for split in (dataset.train, dataset.test):
        points = split.inputs.reshape(len(split), 2)
        np.testing.assert_array_equal(split.boundary_distance, np.abs(points[:, 0]))
        assert np.bincount(split.labels).tolist() == [len(split) // 2] * 2
        errors += int(((points[:, 0] > 0) != split.labels).sum())
    assert binomtest(errors, 2 * len(dataset.train), norm.cdf(-CENTRE)).pvalue > 1e-3


def test_the_distances_follow_the_examples_a_training_subset_keeps():
    full = load_dataset("two-blobs")
    small = with_training_set(full, 100, 0.2)
    points = small.train.inputs.reshape(100, 2)
    np.testing.assert_array_equal(small.train.boundary_distance, np.abs(points[:, 0]))
    assert small.train.noisy.any()


def test_spearman_along_an_axis_is_scipys_with_ties():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 5, (3, 40)), rng.normal(size=(3, 40))
    expected = [spearmanr(a, b).statistic for a, b in zip(x, y)]
    np.testing.assert_allclose(spearman_along(x, y), expected, rtol=1e-12)


def boundary_table(seed):
    rng = np.random.default_rng(seed)
    distance = rng.uniform(0, 3, 400)
    columns = {"boundary_distance": distance, "nearest-first": -distance, "farthest-first": distance + 1,
               "noisy-nearness": -distance + rng.normal(0, 1, 400), "constant": np.zeros(400)}
    return make_table(seed, {"train": columns, "test": dict(columns)}), distance


def test_the_task_is_spearman_with_minus_the_distance_and_its_interval_over_seeds():
    (first, _), (second, _) = boundary_table(0), boundary_table(1)
    board = boundary([first, second])
    assert value(board, "nearest-first", "nearness_spearman", split="train").value == pytest.approx(1.0, abs=1e-12)
    assert value(board, "farthest-first", "nearness_spearman", split="test").value == pytest.approx(-1.0, abs=1e-12)
    noisy = [spearmanr(t.splits["train"]["noisy-nearness"], -t.splits["train"]["boundary_distance"]).statistic
             for t in (first, second)]
    assert value(board, "noisy-nearness", "nearness_spearman", seed="0", split="train").value == pytest.approx(noisy[0])
    assert value(board, "noisy-nearness", "nearness_spearman", split="train").value == pytest.approx(np.mean(noisy))
    mean = value(board, "noisy-nearness", "nearness_spearman", split="train")
    assert mean.ci_low < np.mean(noisy) < mean.ci_high and mean.interval == "t over seeds"
    constant = value(board, "constant", "nearness_spearman", split="train")
    assert np.isnan(constant.value) and "all scores are equal" in constant.note


@pytest.mark.parametrize("how, kind", [(OverExamples(), "Fisher z over examples"),
                                       (OverExamples("bootstrap"), "bootstrap over examples")])
def test_a_score_that_is_the_same_on_every_seed_gets_an_interval_over_examples(how, kind):
    """One seed: no t-interval, so Fisher's z (by default) or the percentile bootstrap over (score, distance) pairs;
    it holds the estimate, is not degenerate, and is about as wide as the standard error of a correlation of 400
    pairs."""
    table, _ = boundary_table(0)
    board = boundary([table], how)
    mean = value(board, "noisy-nearness", "nearness_spearman", split="train")
    rho, low, high = mean.value, mean.ci_low, mean.ci_high
    assert low < rho < high and mean.interval == kind
    assert 0.5 < (high - low) / (2 * 1.96 * (1 - rho**2) / np.sqrt(400)) < 2


def test_data_without_a_boundary_gives_no_rows():
    table = make_table(0, {"train": {"loss": np.arange(5.0)}, "test": {"loss": np.arange(3.0)}})
    assert boundary([table]).empty


@pytest.mark.slow
def test_the_toy_boundary_preset_reproduces_fig_1_for_the_probability_target(tmp_path):
    """Two seeds of the preset with VoG alone: the probability's VoG ranks the points nearest the Bayes boundary
    highest (Spearman > 0.8 on each seed), the score tables carry the distances, and the report draws the figures."""
    from bench import runner
    from bench.config import load_preset
    from bench.report import write_report

    config = load_preset("toy-boundary").updated(seeds=[0, 1], scorers=["vog", "vog[window=all,target=logit]"],
                                                 out=str(tmp_path))
    board = runner.run(config, progress=False).leaderboard
    for seed in ("0", "1"):
        assert value(board, "vog", "nearness_spearman", seed=seed, split="train").value > 0.8
    table = ScoreTable.load(next((tmp_path / "units").glob("*seed0*.npz")))
    points = load_dataset("two-blobs").train.inputs.reshape(-1, 2)
    np.testing.assert_array_equal(table.splits["train"]["boundary_distance"], np.abs(points[:, 0]))
    section = write_report(tmp_path).read_text().split('id="boundary"')[1].split("<h2")[0]
    assert section.count("<img") == 2
