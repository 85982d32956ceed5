"""Which scorer is better, and is it: Friedman ranks over the independent blocks of a leaderboard,
DeLong's test of two scorers on the same examples, and the scorers no other beats on both quality
and cost.

A block is one measurement every scorer has, and Friedman's test takes the blocks as independent.
For difficulty and mislabel a block is one seed: each is its own training run. For OoD detection
a block is one OoD split, its per-seed values averaged over the seeds: the seeds of one split
share its corruption, and the splits of one seed share its model, so a block per (split, seed)
would count one corruption several times (pseudo-replication: far too small p-values). The
severities of one corruption (``gaussian_noise@3``) are one block, for the same reason; a
semantic OoD dataset (``--ood``) is one block. Scorers are ranked within each block (1 = best),
Friedman's test asks whether the ranks differ at all, and the Nemenyi post-hoc test which pairs
do (``bench.stats``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from scipy import stats

from bench.schema import BETTER, MODEL_ROW, PROTOCOL
from bench.stats import FriedmanRanking, delong_test, friedman_ranking
from bench.store import ScoreTable

RANKED = {"ood": "auroc", "difficulty": "error_auroc", "mislabel": "auroc"}  # task -> the metric ranked
SEVERITY = re.compile(r"@\d+$")  # the severity of a corruption's split, ``gaussian_noise@3``
CHI2_MIN_BLOCKS = 10  # from this many blocks on, Friedman's p is the chi-square approximation's
PERMUTATIONS = 9999  # random permutations of the ranks behind Friedman's p under CHI2_MIN_BLOCKS blocks


@dataclass(frozen=True)
class Ranking:
    """The Friedman ranking of one protocol and task, and what its blocks are."""

    friedman: FriedmanRanking
    block: str  # what one block is, e.g. "OoD splits, each the mean over 5 seeds"
    permutations: int  # the permutations Friedman's p is from; 0 for the chi-square approximation


def _cells(board: pd.DataFrame, task: str) -> pd.DataFrame:
    """(block, split, seed) x scorers of the task's ranked metric over one protocol: per-seed rows of every
    single OoD split (not the means), or of the one split of the other tasks. Scorer pairs, the model's own
    rows, and scorers without a value anywhere (failed, or constant) are left out."""
    rows = board[(board.task == task) & (board.metric == RANKED[task]) & (board.seed != "all")
                 & ~board.split.str.startswith("mean") & (board.vs_scorer == "")
                 & (board.scorer != MODEL_ROW)]
    table = rows.pivot_table(index=["split", "seed"], columns="scorer", values="value", aggfunc="first", dropna=False)
    split, seed = (table.index.get_level_values(level) for level in ("split", "seed"))
    block = split.str.replace(SEVERITY, "", regex=True) if task == "ood" else seed
    table.index = pd.MultiIndex.from_arrays([block, split, seed], names=["block", "split", "seed"])
    return table.dropna(axis=1, how="all")


def _mean_per_block(cells: pd.DataFrame) -> pd.DataFrame:
    """Blocks x scorers: each block the mean of its (split, seed) cells where every scorer has a value, so that
    all scorers are averaged over the same seeds; NaN where no cell has."""
    complete = cells[cells.notna().all(axis=1)]
    return complete.groupby(level="block").mean().reindex(cells.index.unique("block"))


def blocks(board: pd.DataFrame, task: str) -> pd.DataFrame:
    """Independent blocks x scorers of the task's ranked metric over one protocol: for OoD one row per OoD split
    (the severities of a corruption together), the mean over seeds; for the other tasks one row per seed."""
    return _mean_per_block(_cells(board, task))


def _block_description(cells: pd.DataFrame, task: str) -> str:
    """What one block of ``cells`` is, in words, for the caption."""
    if task != "ood":
        return "seeds, each an independent training run"
    complete = cells[cells.notna().all(axis=1)].index.to_frame(index=False)
    seeds = complete.groupby("block").seed.nunique()
    counted = f"{seeds.min()}" if seeds.min() == seeds.max() else f"{seeds.min()}-{seeds.max()}"
    splits = ("OoD splits, the severities of a corruption as one" if complete.split.str.contains(SEVERITY).any()
              else "OoD splits")
    return f"{splits}, each the mean over {counted} seed{'s' if seeds.max() > 1 else ''}"


def permutation_p(table: pd.DataFrame) -> float:
    """Friedman's p from the permutation distribution of its statistic, over the blocks (rows) where every
    scorer (column) has a value.

    Under Friedman's null the ranks within each block are exchangeable, so shuffling each block's ranks on
    its own draws from the statistic's exact distribution, for any number of blocks; with ties, a block keeps
    its tie correction, so the sum of squared rank sums orders the draws as chi-square does. The p is
    (1 + draws at least as large) / (1 + ``PERMUTATIONS``), never below 1 / (1 + ``PERMUTATIONS``); the
    draws are seeded, so the p is reproducible.
    """
    ranks = stats.rankdata(table.dropna().to_numpy(np.float64), axis=1)
    draws = np.random.default_rng(0).permuted(np.broadcast_to(ranks, (PERMUTATIONS, *ranks.shape)), axis=2)
    observed = np.square(ranks.sum(axis=0)).sum()
    return float((1 + (np.square(draws.sum(axis=1)).sum(axis=1) >= observed).sum()) / (1 + PERMUTATIONS))


def rankings(board: pd.DataFrame, alpha: float = 0.05) -> dict[tuple, Ranking]:
    """(dataset, model, label mode, task) -> the Friedman ranking of its scorers over independent blocks
    (``blocks``), where 2 scorers or more have a complete block.

    Under ``CHI2_MIN_BLOCKS`` blocks (a 5-seed run's difficulty, a run with a few semantic OoD datasets)
    Friedman's chi-square approximation misjudges its level: simulated under the null at a nominal 5%,
    over 3 to 9 blocks it rejects 1.8-4.2% of the time for 5 to 26 scorers (power lost) and 2.7-6.9% for
    3 scorers; Demšar (2006) asks for more than 10 blocks. There the p is the permutation test's
    (``permutation_p``), exact for any number of blocks, so that a few seeds still get a test rather than
    none. The Nemenyi p-values and critical difference stay asymptotic (scikit-posthocs): simulated over 3
    to 9 blocks, their family-wise error is 0.2-6% at a nominal 5%, mostly below it.
    """
    found = {}
    for protocol, rows in board.groupby(PROTOCOL, sort=False):
        for task, metric in RANKED.items():
            cells = _cells(rows, task)
            table = _mean_per_block(cells)
            if table.shape[1] < 2 or not table.notna().all(axis=1).any():
                continue
            ranking, permutations = friedman_ranking(table, BETTER[metric] > 0, alpha), 0
            if ranking.blocks < CHI2_MIN_BLOCKS and np.isfinite(ranking.statistic):
                ranking, permutations = replace(ranking, p=permutation_p(table)), PERMUTATIONS
            found[(*protocol, task)] = Ranking(ranking, _block_description(cells, task), permutations)
    return found


def ranking_table(ranking: Ranking) -> pd.DataFrame:
    """Scorer, average rank, and whether the Nemenyi test tells it from the best scorer at ``alpha``."""
    ranks, nemenyi = ranking.friedman.average_ranks, ranking.friedman.nemenyi
    best = ranks.index[0]
    return pd.DataFrame({
        "scorer": ranks.index,
        "average rank": [f"{rank:.2f}" for rank in ranks],
        "vs best: Nemenyi p": [f"{nemenyi.loc[best, scorer]:.3g}" if scorer != best else "" for scorer in ranks.index],
    })


def ranking_caption(key: tuple, ranking: Ranking) -> str:
    """What was ranked, over how many blocks and what a block is, and the tests' results."""
    dataset, model, label_mode, task = key
    friedman = ranking.friedman
    dropped = f"; {friedman.dropped_blocks} more left out for a NaN" if friedman.dropped_blocks else ""
    p = f"p = {friedman.p:.2g}"
    if ranking.permutations:
        sign = "<=" if friedman.p == 1 / (1 + ranking.permutations) else "="  # no draw was as large
        p = (f"p {sign} {friedman.p:.2g} from {ranking.permutations:,} permutations (too few blocks for the "
             f"chi-square approximation)")
    return (f"{dataset} / {model} / {label_mode}, {task} ({RANKED[task]}): average rank over {friedman.blocks} "
            f"blocks ({ranking.block}{dropped}); Friedman chi2 = {friedman.statistic:.1f}, {p}; "
            f"Nemenyi critical difference {friedman.critical_difference:.2f} at alpha {friedman.alpha:g}")


def delong_against_best(tables: list[ScoreTable], split: str, scorers: list[str]) -> pd.DataFrame:
    """DeLong's paired test of each scorer against the first of ``scorers`` on one OoD split (clean test
    vs ``split``), per seed: the same examples, so the two AUROCs' covariance is accounted for."""
    rows = []
    for table in tables:
        if scorers[0] not in table.scorers:
            continue
        inlier, outlier = table.splits["test"], table.splits[split]
        labels = np.r_[np.zeros(len(inlier["label"]), bool), np.ones(len(outlier[scorers[0]]), bool)]
        best = np.r_[inlier[scorers[0]], outlier[scorers[0]]]
        for other in (s for s in scorers[1:] if s in table.scorers):
            result = delong_test(labels, best, np.r_[inlier[other], outlier[other]])
            rows.append({"seed": table.meta["seed"], "scorer": other, "AUROC": result.auroc_b,
                         f"AUROC of {scorers[0]}": result.auroc_a, "z": result.z, "p": result.p})
    return pd.DataFrame(rows)


def pareto_front(cost: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """Whether each point is on the Pareto front: no other point costs at most as much with at least the
    quality, and strictly better in one of the two. NaN points are never on it."""
    cost, quality = np.asarray(cost, dtype=float), np.asarray(quality, dtype=float)
    usable = np.isfinite(cost) & np.isfinite(quality)
    no_worse = (cost[None, :] <= cost[:, None]) & (quality[None, :] >= quality[:, None]) & usable[None, :]
    better = (cost[None, :] < cost[:, None]) | (quality[None, :] > quality[:, None])
    return usable & ~(no_worse & better).any(axis=1)
