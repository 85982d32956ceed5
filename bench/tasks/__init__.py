"""Evaluation tasks: pure functions from score tables to tidy leaderboard rows, no training.

Each task takes the score tables of one run (one per seed) and returns rows with the
leaderboard's keys, a value and a note saying why a value is NaN; a task with nothing to
measure (no corruptions, no label noise) returns no rows.
"""

from __future__ import annotations

import pandas as pd

from bench.results import ScoreTable
from bench.tasks.consistency import consistency
from bench.tasks.difficulty import difficulty
from bench.tasks.mislabel import mislabel
from bench.tasks.ood import ood
from bench.tasks.rows import ROW_COLUMNS

TASKS = {"ood": ood, "mislabel": mislabel, "difficulty": difficulty, "consistency": consistency}


def evaluate(tables: list[ScoreTable]) -> pd.DataFrame:
    """The rows of every task, in the order of ``TASKS``."""
    results = [rows for task in TASKS.values() if not (rows := task(tables)).empty]
    return pd.concat(results, ignore_index=True) if results else pd.DataFrame(columns=ROW_COLUMNS)
