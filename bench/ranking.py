"""Which scorer is better, and is it: Friedman ranks over the blocks of a leaderboard, DeLong's test
of two scorers on the same examples, and the scorers no other beats on both quality and cost.

A block is one measurement every scorer has: for OoD detection, one (OoD split, seed) of a
protocol; for difficulty and mislabel, one seed. Scorers are ranked within each block (1 =
best), Friedman's test asks whether the ranks differ at all, and the Nemenyi post-hoc test
which pairs do (``bench.stats``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bench.schema import BETTER, PAIR, PROTOCOL
from bench.stats import FriedmanRanking, delong_test, friedman_ranking
from bench.store import ScoreTable

RANKED = {"ood": "auroc", "difficulty": "error_auroc", "mislabel": "auroc"}  # task -> the metric ranked


def blocks(board: pd.DataFrame, task: str) -> pd.DataFrame:
    """Blocks x scorers of the task's ranked metric over one protocol: per-seed rows of every single
    OoD split (not the means), or of the one split of the other tasks; scorer pairs, and scorers
    without a value anywhere (failed, or constant), are left out."""
    rows = board[(board.task == task) & (board.metric == RANKED[task]) & (board.seed != "all")
                 & ~board.split.str.startswith("mean") & ~board.scorer.str.contains(PAIR, regex=False)]
    table = rows.pivot_table(index=["split", "seed"], columns="scorer", values="value", aggfunc="first", dropna=False)
    return table.dropna(axis=1, how="all")


def rankings(board: pd.DataFrame, alpha: float = 0.05) -> dict[tuple, FriedmanRanking]:
    """(dataset, model, label mode, task) -> the Friedman ranking of its scorers, where 2 scorers or more
    have a complete block."""
    found = {}
    for protocol, rows in board.groupby(PROTOCOL, sort=False):
        for task, metric in RANKED.items():
            table = blocks(rows, task)
            if table.shape[1] >= 2 and table.notna().all(axis=1).any():
                found[(*protocol, task)] = friedman_ranking(table, BETTER[metric] > 0, alpha)
    return found


def ranking_table(ranking: FriedmanRanking) -> pd.DataFrame:
    """Scorer, average rank, and whether the Nemenyi test tells it from the best scorer at ``alpha``."""
    best = ranking.average_ranks.index[0]
    return pd.DataFrame({
        "scorer": ranking.average_ranks.index,
        "average rank": [f"{rank:.2f}" for rank in ranking.average_ranks],
        "vs best: Nemenyi p": [f"{ranking.nemenyi.loc[best, scorer]:.3g}" if scorer != best else "" for scorer in
                               ranking.average_ranks.index],
    })


def ranking_caption(key: tuple, ranking: FriedmanRanking) -> str:
    dataset, model, label_mode, task = key
    dropped = f", {ranking.dropped_blocks} left out for a NaN" if ranking.dropped_blocks else ""
    unit = "OoD split x seed" if task == "ood" else "seeds"
    return (f"{dataset} / {model} / {label_mode}, {task} ({RANKED[task]}): average rank over {ranking.blocks} blocks "
            f"({unit}{dropped}); Friedman chi2 = {ranking.statistic:.1f}, p = {ranking.p:.2g}; "
            f"Nemenyi critical difference {ranking.critical_difference:.2f} at alpha {ranking.alpha:g}")


def delong_against_best(tables: list[ScoreTable], split: str, scorers: list[str]) -> pd.DataFrame:
    """DeLong's paired test of each scorer against the first of ``scorers`` on one OoD split (clean test
    vs ``split``), per seed: the same examples, so the two AUROCs' covariance is accounted for."""
    rows = []
    for table in tables:
        if scorers[0] in table.meta["failures"]:
            continue
        inlier, outlier = table.splits["test"], table.splits[split]
        labels = np.r_[np.zeros(len(inlier["label"]), bool), np.ones(len(outlier[scorers[0]]), bool)]
        best = np.r_[inlier[scorers[0]], outlier[scorers[0]]]
        for other in (s for s in scorers[1:] if s not in table.meta["failures"]):
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
