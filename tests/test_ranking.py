"""Friedman ranks of a leaderboard's scorers over independent blocks (bench.ranking): checked against scipy on
blocks averaged by hand, against the exact permutation distribution, and by simulation under the null."""

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.cli import main
from bench.leaderboard import write_csv
from bench.ranking import CHI2_MIN_BLOCKS, blocks, permutation_p, ranking_caption, ranking_table, rankings
from bench.schema import COLUMNS


def leaderboard(values: dict[tuple[str, str, str], float], task: str = "ood", metric: str = "auroc",
                dataset: str = "mnist-c") -> pd.DataFrame:
    """A leaderboard of per-seed rows {(split, seed, scorer): value} of one metric, with the rows the ranking must
    leave out beside them: the means over seeds and over splits. A scorer (a, b) is a row comparing two."""
    rows = [{"dataset": dataset, "model": "lenet", "task": task, "split": split,
             **dict(zip(["scorer", "vs_scorer"], (scorer, "") if isinstance(scorer, str) else scorer)),
             "full_spec": scorer if isinstance(scorer, str) else scorer[0], "vs_full_spec": "", "label_mode": "predicted", "seed": seed, "metric": metric, "value": value,
             "note": "", "bench_version": "0.1.0", "git_sha": "abc", "config_hash": "123", "torch_version": "2",
             "device": "cpu", "created_at": "2026-01-01T00:00:00+00:00"}
            for (split, seed, scorer), value in values.items()]
    frame = pd.DataFrame(rows, columns=COLUMNS)
    means = frame.groupby(["split", "scorer", "vs_scorer"], as_index=False).value.mean().assign(seed="all")
    overall = frame.groupby(["seed", "scorer", "vs_scorer"], as_index=False).value.mean().assign(split="mean")
    # the means are made far apart, so that ranking them by mistake would show
    decoys = pd.concat([means, overall]).assign(value=lambda rows: rows.scorer.rank() * 10.0)
    template = frame.iloc[:1].drop(columns=["split", "scorer", "vs_scorer", "seed", "value"])
    return pd.concat([frame, decoys.merge(template, how="cross")[COLUMNS]], ignore_index=True)


def as_values(array: np.ndarray, splits: list[str]) -> dict[tuple[str, str, str], float]:
    """{(split, seed, scorer): value} of an array splits x seeds x scorers."""
    return {(split, str(seed), f"s{scorer}"): float(array[i, seed, scorer])
            for i, split in enumerate(splits) for seed in range(array.shape[1]) for scorer in range(array.shape[2])}


def corruption_effects(rng: np.random.Generator, corruptions: int, seeds: int, scorers: int,
                       seed_noise: float) -> np.ndarray:
    """Splits x seeds x scorers under the null: each corruption favours scorers at random (N(0, 1), shared by its
    seeds) and each seed adds N(0, seed_noise); no scorer is better over corruptions."""
    return rng.normal(size=(corruptions, 1, scorers)) + seed_noise * rng.normal(size=(corruptions, seeds, scorers))


# --- Blocks ----------------------------------------------------------------------------------------------------


def test_one_block_per_ood_split_gives_scipy_p_on_the_seed_means_where_split_x_seed_blocks_would_not():
    """12 corruptions x 5 seeds x 4 scorers, each corruption ranking the scorers its own way and its seeds
    agreeing: over the 12 seed means the ranks differ little (Friedman chi2 = 4, p = 0.26), but counted as 60
    (corruption, seed) blocks the same ranks give chi2 = 20, p = 0.00017."""
    ranks = np.array([[2, 4, 1, 3], [1, 3, 2, 4], [1, 2, 3, 4], [2, 3, 4, 1], [2, 1, 4, 3], [2, 1, 4, 3],
                      [3, 2, 1, 4], [2, 3, 1, 4], [1, 2, 4, 3], [4, 2, 3, 1], [3, 1, 2, 4], [1, 4, 3, 2]])
    seed_noise = np.random.default_rng(3).uniform(-0.01, 0.01, size=(12, 5, 4))  # never reorders 0.05 steps
    values = 0.95 - 0.05 * ranks[:, None, :] + seed_noise
    splits = [f"corruption_{i:02d}" for i in range(12)]
    ranking = rankings(leaderboard(as_values(values, splits)))["mnist-c", "lenet", "predicted", "ood"]

    by_hand = stats.friedmanchisquare(*values.mean(axis=1).T)
    pseudo_replicated = stats.friedmanchisquare(*values.reshape(60, 4).T)
    assert (ranking.friedman.statistic, ranking.friedman.p) == pytest.approx((by_hand.statistic, by_hand.pvalue),
                                                                             rel=1e-12)
    assert by_hand.statistic == pytest.approx(4) and pseudo_replicated.statistic == pytest.approx(20)
    assert (ranking.friedman.blocks, ranking.permutations) == (12, 0)
    assert ranking.friedman.average_ranks.to_dict() == pytest.approx({f"s{j}": rank for j, rank in
                                                                      enumerate(ranks.mean(axis=0))})
    assert "average rank over 12 blocks (OoD splits, each the mean over 5 seeds)" in ranking_caption(
        ("mnist-c", "lenet", "predicted", "ood"), ranking)
    assert list(ranking_table(ranking).columns) == ["scorer", "average rank", "vs best: Nemenyi p"]


def test_the_severities_of_a_corruption_are_one_block_and_a_semantic_dataset_another():
    rng = np.random.default_rng(1)
    corruptions = [f"corruption_{i}" for i in range(10)]
    splits = [f"{corruption}@{severity}" for corruption in corruptions for severity in (1, 2, 3)] + ["fashion-mnist"]
    values = rng.random((len(splits), 3, 4))
    table = blocks(leaderboard(as_values(values, splits)), "ood")

    per_corruption = values[:30].reshape(10, 3 * 3, 4).mean(axis=1)  # its 3 severities x 3 seeds
    expected = pd.DataFrame(np.vstack([per_corruption, values[30].mean(axis=0)]), columns=[f"s{j}" for j in range(4)],
                            index=pd.Index(corruptions + ["fashion-mnist"], name="block"))
    pd.testing.assert_frame_equal(table.sort_index(), expected.sort_index(), check_names=False, check_exact=False,
                                  rtol=1e-12)
    ranking = rankings(leaderboard(as_values(values, splits)))["mnist-c", "lenet", "predicted", "ood"]
    assert ranking.friedman.p == pytest.approx(stats.friedmanchisquare(*expected.to_numpy().T).pvalue, rel=1e-12)
    assert "11 blocks (OoD splits, the severities of a corruption as one, each the mean over 3 seeds)" in (
        ranking_caption(("mnist-c", "lenet", "predicted", "ood"), ranking))


def test_difficulty_and_mislabel_rank_one_block_per_seed_without_pairs_or_the_model_rows():
    rng = np.random.default_rng(2)
    values = {("test", str(seed), scorer): float(rng.random()) for seed in range(12) for scorer in ("a", "b", "c")}
    extra = {("test", str(seed), ("a", "b")): 0.0 for seed in range(12)}
    board = leaderboard({**values, **extra}, task="difficulty", metric="error_auroc")
    model_rows = leaderboard({("train", str(seed), "(model)"): 1.0 for seed in range(12)}, task="mislabel")
    mislabel = leaderboard({("train", seed, scorer): value for (_, seed, scorer), value in values.items()},
                           task="mislabel")
    found = rankings(pd.concat([board, mislabel, model_rows], ignore_index=True))

    per_seed = pd.DataFrame(values.values(), index=pd.MultiIndex.from_tuples(values)).unstack()[0]
    for task in ("difficulty", "mislabel"):
        ranking = found["mnist-c", "lenet", "predicted", task]
        assert list(ranking.friedman.average_ranks.sort_index().index) == ["a", "b", "c"]
        assert ranking.friedman.blocks == 12 and "blocks (seeds, each an independent training run)" in (
            ranking_caption(("mnist-c", "lenet", "predicted", task), ranking))
        assert ranking.friedman.p == pytest.approx(
            stats.friedmanchisquare(*per_seed.loc["test"].to_numpy().T).pvalue, rel=1e-12)


def test_a_seed_a_scorer_lacks_leaves_every_block_for_all_scorers_and_a_block_without_a_seed_is_dropped():
    values = as_values(np.random.default_rng(4).random((12, 3, 3)), [f"c{i:02d}" for i in range(12)])
    values.update({(split, "1", "s0"): np.nan for split in [f"c{i:02d}" for i in range(12)]})  # s0 failed on seed 1
    values.update({("c11", seed, "s2"): np.nan for seed in "02"})  # ...and s2 on c11 on the other seeds
    values.update({(split, seed, "never"): np.nan for split, seed, _ in list(values)})  # no value anywhere
    table = blocks(leaderboard(values), "ood")

    assert list(table.columns) == ["s0", "s1", "s2"] and table.loc["c11"].isna().all()
    assert table.loc["c03", "s1"] == pytest.approx(np.mean([values["c03", seed, "s1"] for seed in "02"]))
    ranking = rankings(leaderboard(values))["mnist-c", "lenet", "predicted", "ood"]
    assert (ranking.friedman.blocks, ranking.friedman.dropped_blocks) == (11, 1)
    assert "(OoD splits, each the mean over 2 seeds; 1 more left out for a NaN)" in ranking_caption(
        ("mnist-c", "lenet", "predicted", "ood"), ranking)


# --- Few blocks: the permutation test --------------------------------------------------------------------------


def exact_permutation_p(table: pd.DataFrame) -> float:
    """P(the sum of squared rank sums >= the observed) over every combination of permutations of the blocks'
    ranks, enumerated."""
    ranks = stats.rankdata(table.to_numpy(), axis=1)
    observed = np.square(ranks.sum(axis=0)).sum()
    sums = [np.square(np.sum(blocks_, axis=0)).sum()
            for blocks_ in itertools.product(*(list(itertools.permutations(row)) for row in ranks))]
    return float(np.mean(np.array(sums) >= observed - 1e-9))


@pytest.mark.parametrize("rows", [
    [[3, 2, 1]] * 3,  # one order three times: chi2 = 6, p 0.050 by chi-square, exactly 6 / 216 = 0.028
    [[3, 2, 1], [3, 1, 2], [2, 3, 1], [1, 1, 2]],  # a tie in the last block
    [[1, 2, 3, 4], [2, 1, 4, 3], [4, 3, 2, 1]],
])
def test_permutation_p_matches_the_enumerated_exact_p(rows):
    """9,999 draws: the Monte Carlo sd of p is at most sqrt(.25 / 9999) = 0.005; 0.015 is 3 of them."""
    table = pd.DataFrame(rows, columns=[f"s{j}" for j in range(len(rows[0]))], dtype=float)
    assert permutation_p(table) == pytest.approx(exact_permutation_p(table), abs=0.015)


def test_under_ten_blocks_the_p_is_the_permutation_tests_and_the_caption_says_so():
    board = leaderboard({("test", str(seed), scorer): value for seed in range(3)
                         for scorer, value in (("a", 0.9), ("b", 0.8), ("c", 0.7))},
                        task="difficulty", metric="error_auroc")
    ranking = rankings(board)["mnist-c", "lenet", "predicted", "difficulty"]
    assert ranking.friedman.blocks == 3 < CHI2_MIN_BLOCKS and ranking.permutations == 9999
    assert ranking.friedman.statistic == pytest.approx(6.0)  # chi-square's p would be exp(-3) = 0.0498
    assert ranking.friedman.p == pytest.approx(6 / 216, abs=0.005)  # 3 Monte Carlo sd
    assert "from 9,999 permutations (too few blocks for the chi-square approximation)" in ranking_caption(
        ("mnist-c", "lenet", "predicted", "difficulty"), ranking)


# --- Calibration -------------------------------------------------------------------------------------------------


def test_under_the_null_the_ood_blocks_reject_at_the_nominal_rate_and_split_x_seed_blocks_far_more():
    """400 simulated leaderboards, 15 corruptions x 5 seeds x 5 scorers, seeds correlated within a corruption
    (corruption effect sd 1, seed noise sd 0.5), blocked by ``blocks`` in one leaderboard (simulation i's
    corruptions are the splits ``i/...``) and tested 15 blocks at a time. At alpha 0.05 the binomial sd of the
    rejection rate is 0.011, so [0.02, 0.085] is about 3 sd either side (chi-square's level at 15 blocks and 5
    scorers is a little under 5%). Counting each (corruption, seed) as a block rejects about half the time."""
    rng = np.random.default_rng(5)
    simulated = np.concatenate([corruption_effects(rng, 15, 5, 5, seed_noise=0.5) for _ in range(400)])
    splits = [f"{i:03d}/corruption_{j:02d}" for i in range(400) for j in range(15)]
    table = blocks(leaderboard(as_values(simulated, splits)), "ood").sort_index()
    assert table.shape == (6000, 5)

    honest = [stats.friedmanchisquare(*table.iloc[15 * i:15 * (i + 1)].to_numpy().T).pvalue for i in range(400)]
    pseudo_replicated = [stats.friedmanchisquare(*simulated[15 * i:15 * (i + 1)].reshape(75, 5).T).pvalue
                         for i in range(400)]
    assert 0.02 <= np.mean(np.array(honest) < 0.05) <= 0.085
    assert np.mean(np.array(pseudo_replicated) < 0.05) > 0.3


# --- The command line --------------------------------------------------------------------------------------------


def test_show_ranks_prints_the_blocks(tmp_path, capsys):
    values = corruption_effects(np.random.default_rng(6), 12, 3, 3, seed_noise=0.1)
    path = tmp_path / "ranked.csv"
    write_csv(leaderboard(as_values(values, [f"c{i:02d}" for i in range(12)])), path)
    assert main(["show", str(path), "--ranks"]) == 0
    out = capsys.readouterr().out
    assert "average rank over 12 blocks (OoD splits, each the mean over 3 seeds); Friedman chi2" in out
    assert sum(line.split()[:1] in (["s0"], ["s1"], ["s2"]) for line in out.splitlines()) == 3
