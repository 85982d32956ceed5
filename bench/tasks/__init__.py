"""Evaluation tasks: pure functions from score tables to tidy leaderboard rows, no training.

Each task takes the score tables of one run (one per seed) and returns rows with the
leaderboard's keys, a value, its statistics (``bench.tasks.rows``) and a note saying why a
value or statistic is NaN; a task with nothing to measure (no corruptions, no label noise)
returns no rows.
"""

from __future__ import annotations

import pandas as pd

from bench.schema import KEYS, MEASUREMENT
from bench.store import ScoreTable
from bench.tasks.boundary import boundary
from bench.tasks.consistency import consistency
from bench.tasks.cost import cost
from bench.tasks.difficulty import difficulty
from bench.tasks.mislabel import mislabel
from bench.tasks.ood import ood, with_dropped_copies_noted
from bench.tasks.rows import ROW_COLUMNS, OverExamples

ONE_SEED = "one seed: a std or t-interval over seeds needs two or more (e.g. --seeds 3)"


def evaluate(tables: list[ScoreTable], how: OverExamples = OverExamples()) -> pd.DataFrame:
    """The rows of every task, each with its scorer's ``full_spec`` as stored in the units (rows of no scorer,
    such as the mislabel task's ``(model)``, keep their name); ``how``: the intervals over examples of a
    one-seed run and of scorers the seed does not change (consistency needs several seeds, and has none). The
    notes of OoD rows say last how many in-distribution copies were dropped from their splits."""
    tasks = [ood(tables, how), mislabel(tables, how), difficulty(tables, how), boundary(tables, how),
             consistency(tables), cost(tables)]
    results = [rows for rows in tasks if not rows.empty]
    board = pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=ROW_COLUMNS)
    full = {spec: full for table in tables for spec, full in table.meta["config"]["scorers"].items()}
    board["full_spec"] = [full.get(scorer, scorer) for scorer in board["scorer"]]
    board["vs_full_spec"] = [full.get(scorer, scorer) for scorer in board["vs_scorer"].fillna("")]
    board["vs_scorer"], board["interval"] = board["vs_scorer"].fillna(""), board["interval"].fillna("")
    board["n_seeds"] = board["n_seeds"].astype("Int64")
    if len(tables) == 1:  # the spread over seeds that one seed cannot give, NaN for no other reason, says so
        alone = board.n_seeds.notna() & board[["std_seeds", "ci_low", "ci_high"]].isna().any(axis=1) & (board.note == "")
        board.loc[alone, "note"] = ONE_SEED
    return with_dropped_copies_noted(board, tables)[KEYS + MEASUREMENT]
