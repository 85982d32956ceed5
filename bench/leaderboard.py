"""Leaderboard CSVs: tidy rows, one measurement each with its statistics, and the provenance of the run.

The columns are ``bench.schema.COLUMNS`` (documented in ``leaderboards/README.md``). Values
are written at full precision (``repr``), so a CSV reproduces the numbers it was made from;
printed tables round. Files of bench 0.6.0 and older are upgraded as they are read
(``bench.upgrade``). Reading needs pandas and scipy, not torch.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.errors import BenchError
from bench.files import write_atomically
from bench.schema import COLUMNS, KEYS, PROVENANCE
from bench.upgrade import UNKNOWN, upgrade


def attach_provenance(rows: pd.DataFrame, units: list) -> pd.DataFrame:
    """Give each row the provenance of its unit (score tables); rows over all seeds get the values the units share."""
    by_seed = {str(t.meta["seed"]): t.meta["provenance"] for t in units}
    combined = {key: "; ".join(sorted({p[key] for p in by_seed.values()})) for key in PROVENANCE}
    board = rows.copy()
    for key in PROVENANCE:
        board[key] = [by_seed.get(seed, combined)[key] for seed in board["seed"]]
    return board[COLUMNS].reset_index(drop=True)


def write_csv(board: pd.DataFrame, path: Path) -> None:
    write_atomically(Path(path), lambda temporary: board.to_csv(temporary, index=False))


def read_csv(path: Path) -> pd.DataFrame:
    """A leaderboard CSV as written by ``write_csv`` or by an older bench (upgraded), plain or gzipped
    (``.csv.gz``); a clear error for a file that is not one.

    A leaderboard written before scorers carried their full spec gets ``full_spec`` = ``unknown``.
    """
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"no leaderboard at {path}; `bench run` writes one as <out>/leaderboard.csv")
    text = dict.fromkeys([*KEYS, "interval", "note"], str)
    try:
        board = pd.read_csv(path, dtype={**text, "n_seeds": "Int64"}, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError) as error:
        raise BenchError(f"{path} is not a readable CSV ({error}); is it a leaderboard written by `bench run`?") from None
    present = [column for column in text if column in board.columns]
    board[present] = board[present].fillna("")  # empty text (no second scorer, no interval, no note) stays text
    if "note" not in board.columns:
        board["note"] = ""
    if "full_spec" not in board.columns and "scorer" in board.columns:  # bench < 0.3 did not record it
        board.insert(board.columns.get_loc("scorer") + 1, "full_spec", UNKNOWN)
    missing = [column for column in set(KEYS + ["value"]) - {"vs_scorer", "vs_full_spec"}
               if column not in board.columns]
    if missing:
        raise BenchError(f"{path} is not a bench leaderboard: it has no column {', '.join(sorted(missing))} "
                         f"(see leaderboards/README.md for the schema)")
    return upgrade(board, str(path))
