"""Evaluation tasks: pure functions from score tables to tidy leaderboard rows, no training.

Each task takes the score tables of one run (one per seed) and returns rows with the
leaderboard's keys, a value and a note saying why a value is NaN; a task with nothing to
measure (no corruptions, no label noise) returns no rows.
"""

from __future__ import annotations

import pandas as pd

from bench.schema import PAIR
from bench.store import ScoreTable
from bench.tasks.boundary import boundary
from bench.tasks.consistency import consistency
from bench.tasks.cost import cost
from bench.tasks.difficulty import difficulty
from bench.tasks.mislabel import mislabel
from bench.tasks.ood import ood
from bench.tasks.rows import OVER_SEEDS, ROW_COLUMNS

ONE_SEED = "one seed: a std or t-interval over seeds needs two or more (e.g. --seeds 3)"


def evaluate(tables: list[ScoreTable], resamples: int = 1000) -> pd.DataFrame:
    """The rows of every task, each with its scorer's ``full_spec`` as stored in the units (rows of no scorer,
    such as the mislabel task's ``(model)``, keep their name); ``resamples``:
    the bootstrap's, for the intervals of a one-seed run (consistency needs several seeds, and has none)."""
    tasks = [ood(tables, resamples), mislabel(tables, resamples), difficulty(tables, resamples),
             boundary(tables, resamples), consistency(tables), cost(tables)]
    results = [rows for rows in tasks if not rows.empty]
    board = pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=ROW_COLUMNS)
    full = {spec: full for table in tables for spec, full in table.meta["config"]["scorers"].items()}
    full_spec = [PAIR.join(full.get(part, part) for part in scorer.split(PAIR)) for scorer in board["scorer"]]
    board.insert(board.columns.get_loc("scorer") + 1, "full_spec", full_spec)
    if len(tables) == 1:  # the spread over seeds that one seed cannot give, NaN for no other reason, says so
        alone = (board.seed == "all") & board.value.isna() & (board.note == "") & board.metric.str.endswith(OVER_SEEDS)
        board.loc[alone, "note"] = ONE_SEED
    return board
