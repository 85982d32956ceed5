"""Leaderboards of bench 0.2-0.6 in today's layout: their statistics rows folded into columns.

Those versions wrote each statistic as a row of its own, the metric with a suffix
(``auroc_std_seeds``, ``auroc_ci_low``, ``auroc_ci_high``, ``auroc_std_corruptions``), and a row
comparing two scorers with both in its scorer (``vog[window=early] vs vog``) or the second in its
metric (``spearman_with:vog``). Today a row carries its statistics as columns (``bench.schema``).

A file is told apart by its layout, not its version number: one without the ``ci_low`` column is
of the old layout, and its ``bench_version`` must be one that wrote it (0.6.0 or older). Rows keep
their provenance, so a converted file still says which version computed its values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from bench.errors import BenchError
from bench.schema import BINOMIAL, BOOTSTRAP, COLUMNS, KEYS, T_SEEDS

LAST_OLD_LAYOUT = (0, 6, 0)  # the last version that wrote statistics as suffixed rows
SUFFIXES = {"std_seeds": "std_seeds", "ci_low": "ci_low", "ci_high": "ci_high", "std_corruptions": "std_splits"}
SUFFIX = rf"^(?P<base>.+)_(?P<stat>{'|'.join(SUFFIXES)})$"
OLD_PAIR = " vs "
OLD_CROSS = "spearman_with:"
UNKNOWN = "unknown"  # the full spec of a scorer in a leaderboard that did not record it
GROUP = [key for key in KEYS if key != "seed"]  # a row over all seeds and its per-seed rows share these


def is_old_layout(board: pd.DataFrame) -> bool:
    return "ci_low" not in board.columns


def version(text: str) -> tuple[int, ...]:
    """The newest version in a ``bench_version`` cell (an aggregate row joins its units' with ``; ``)."""
    try:
        return max(tuple(int(part) for part in one.strip().split(".")[:3]) for one in str(text).split(";"))
    except ValueError:
        raise BenchError(f"bench_version {text!r} is not a version such as 0.6.0") from None


def upgrade(board: pd.DataFrame, name: str = "the leaderboard") -> pd.DataFrame:
    """``board`` in today's columns (``bench.schema.COLUMNS``); a board already in them is returned as is.

    Every value of a statistics row lands unchanged in its column; a row's note joins the notes of its
    statistics rows that it does not already say (e.g. why a spread over one seed is NaN).
    """
    if not is_old_layout(board):
        return board
    if "bench_version" in board.columns:
        newest = max(map(version, board.bench_version.dropna().unique()), default=(0,))
        if newest > LAST_OLD_LAYOUT:
            raise BenchError(f"{name} says bench {'.'.join(map(str, newest))} wrote it, but it has no `ci_low` column "
                             "(the layout of bench 0.6.0 and older); was it edited by hand? Rewrite it with "
                             "`bench run` or restore the columns")
    board = split_pairs(board.copy())
    parts = board.metric.str.extract(SUFFIX)
    is_stat = parts.base.notna()
    values, stat_rows = board[~is_stat], board[is_stat].assign(metric=parts.base[is_stat],
                                                                stat=parts.stat[is_stat].map(SUFFIXES))
    wide = stat_rows.pivot(index=KEYS, columns="stat", values="value")
    notes = stat_rows.pivot(index=KEYS, columns="stat", values="note")
    orphans = wide.index.difference(pd.MultiIndex.from_frame(values[KEYS]))
    if len(orphans):
        raise BenchError(f"{name} has statistics rows without their value row, e.g. {' / '.join(orphans[0])}; "
                         "it is not a leaderboard written by bench")
    folded = values.join(wide.reindex(columns=list(SUFFIXES.values())), on=KEYS)
    folded["note"] = folded_notes(folded.note, values.join(notes, on=KEYS), list(SUFFIXES.values()))
    seeds_stats = stat_rows[stat_rows.stat != "std_splits"]  # a row with these is a mean over seeds
    over_seeds = pd.MultiIndex.from_frame(folded[KEYS]).isin(pd.MultiIndex.from_frame(seeds_stats[KEYS]))
    folded["n_seeds"] = seed_counts(folded).where(over_seeds).astype("Int64")
    folded["interval"] = interval_kinds(folded)
    columns = COLUMNS + [c for c in folded.columns if c not in COLUMNS]
    return folded.reindex(columns=columns, fill_value="").reset_index(drop=True)  # no provenance: unknown, ""


def split_pairs(board: pd.DataFrame) -> pd.DataFrame:
    """``a vs b`` scorers into scorer ``a`` and ``vs_scorer`` ``b``; ``spearman_with:b`` metrics into ``spearman_with``
    with ``vs_scorer`` ``b``, whose full spec is the one its own rows give (``unknown`` where it has none)."""
    board["vs_scorer"], board["vs_full_spec"] = "", ""
    pair = board.scorer.str.contains(OLD_PAIR, regex=False)
    if pair.any():
        scorers = board.scorer[pair].str.split(OLD_PAIR, n=1, regex=False)
        full = board.full_spec[pair].where(board.full_spec[pair] != UNKNOWN, UNKNOWN + OLD_PAIR + UNKNOWN)
        specs = full.str.split(OLD_PAIR, n=1, regex=False)
        board.loc[pair, "scorer"], board.loc[pair, "vs_scorer"] = scorers.str[0], scorers.str[1]
        board.loc[pair, "full_spec"], board.loc[pair, "vs_full_spec"] = specs.str[0], specs.str[1]
    cross = board.metric.str.startswith(OLD_CROSS)
    if cross.any():
        protocol = ["dataset", "model", "label_mode"]
        own = board[~cross & ~pair].drop_duplicates([*protocol, "scorer"]).set_index([*protocol, "scorer"]).full_spec
        other = board.metric[cross].str.removeprefix(OLD_CROSS)
        lookup = pd.MultiIndex.from_arrays([*(board[column][cross] for column in protocol), other])
        board.loc[cross, "vs_scorer"] = other
        board.loc[cross, "vs_full_spec"] = own.reindex(lookup).fillna(UNKNOWN).to_numpy()
        board.loc[cross, "metric"] = OLD_CROSS.rstrip(":")
    return board


def folded_notes(note: pd.Series, with_notes: pd.DataFrame, columns: list[str]) -> list[str]:
    """Each row's note, then those of its statistics rows that it does not already contain, joined with ``; ``."""
    out = []
    for row in zip(note.fillna(""), *(with_notes[c].fillna("") if c in with_notes else [""] * len(note)
                                      for c in columns)):
        text = row[0]
        for extra in row[1:]:
            if extra and extra not in text:
                text = f"{text}; {extra}" if text else extra
        out.append(text)
    return out


def per_seed_groups(board: pd.DataFrame, of: pd.Series | None = None) -> pd.core.groupby.SeriesGroupBy:
    """``of`` (by default the values) grouped by the keys a row over all seeds shares with its per-seed rows."""
    per_seed = board.seed != "all"
    rows = board[per_seed]
    of = rows.value.astype(np.float64) if of is None else of[per_seed]
    return of.groupby([rows[k] for k in GROUP], sort=False, dropna=False)


def seed_counts(board: pd.DataFrame) -> pd.Series:
    """For each row, how many per-seed rows share its keys (the seeds a row over all seeds averages)."""
    counts = per_seed_groups(board).size()
    return pd.Series(counts.reindex(pd.MultiIndex.from_frame(board[GROUP])).to_numpy(), index=board.index)


def interval_kinds(board: pd.DataFrame) -> pd.Series:
    """What each row's interval is, as the old files did not say: the t-interval of its per-seed values where
    it is that (to the six digits of rounded files), the exact binomial one for the early/late flip where it is
    that, else the bootstrap over examples (the one other interval bench wrote); "" where there is none."""
    groups = per_seed_groups(board)
    index = pd.MultiIndex.from_frame(board[GROUP])
    n, mean, std = (groups.size().reindex(index).to_numpy(dtype=float), groups.mean().reindex(index).to_numpy(),
                    groups.std(ddof=1).reindex(index).to_numpy())
    finite = per_seed_groups(board, pd.Series(np.isfinite(board.value.to_numpy(dtype=float)), index=board.index)).all()
    finite = finite.reindex(index).fillna(False).to_numpy(dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.isf(0.025, n - 1) * std / np.sqrt(n)
    low, high = board.ci_low.to_numpy(dtype=float), board.ci_high.to_numpy(dtype=float)

    def near(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.isclose(a, b, rtol=1e-5, atol=1e-12)

    is_t = finite & (n >= 2) & near(low, mean - half) & near(high, mean + half)
    flips = (board.metric == "early_late_flip").to_numpy() & finite & (n >= 2)
    is_binomial = np.zeros(len(board), bool)
    for i in np.flatnonzero(flips & ~is_t & np.isfinite(low)):
        interval = stats.binomtest(int(round(mean[i] * n[i])), int(n[i])).proportion_ci(method="exact")
        is_binomial[i] = near(low[i], interval.low) and near(high[i], interval.high)
    kind = np.where(is_t, T_SEEDS, np.where(is_binomial, BINOMIAL, BOOTSTRAP))
    return pd.Series(np.where(np.isfinite(low), kind, ""), index=board.index)
