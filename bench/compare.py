"""Comparing and merging leaderboards: joined on every key, the scorer's full spec included."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.errors import BenchError
from bench.leaderboard import UNKNOWN
from bench.schema import BETTER, HEADLINES, KEYS, PROTOCOL


@dataclass
class Comparison:
    joined: pd.DataFrame  # keys, then value_a, value_b, delta
    only_a: list[tuple]  # protocols measured in A alone
    only_b: list[tuple]
    drops: pd.DataFrame  # joined rows that got worse by more than their tolerance


def require_full_specs(boards: list[tuple[str, pd.DataFrame]]) -> None:
    """Refuse leaderboards that do not say which parameters their scorers had: a short spec alone can name two methods."""
    for name, board in boards:
        if (board.full_spec == UNKNOWN).any():
            raise BenchError(f"{name} does not record its scorers' full parameters (it was written by bench < 0.3.0), so "
                             "its `vog` may be another method than today's `vog`; rerun it with this version of bench")


def compare(a: pd.DataFrame, b: pd.DataFrame, tolerances: dict[str, float]) -> Comparison:
    """Join two leaderboards on their keys, protocol by protocol; a protocol measured by one only is reported.

    ``drops`` holds the rows over all seeds whose metric (a key of ``tolerances``) got worse
    by more than the tolerance, or became NaN.
    """
    require_full_specs([("A", a), ("B", b)])
    protocols_a = set(a[PROTOCOL].itertuples(index=False, name=None))
    protocols_b = set(b[PROTOCOL].itertuples(index=False, name=None))
    if not protocols_a & protocols_b:
        raise BenchError(
            f"the leaderboards measure different protocols (dataset, model, label mode): A has {sorted(protocols_a)}, "
            f"B has {sorted(protocols_b)}; nothing is comparable, so nothing was joined"
        )
    joined = a[KEYS + ["value"]].merge(b[KEYS + ["value"]], on=KEYS, suffixes=("_a", "_b"))
    joined["delta"] = joined.value_b - joined.value_a
    checked = joined[(joined.seed == "all") & joined.metric.isin(list(tolerances))]
    direction = checked.metric.map(BETTER)
    tolerance = checked.metric.map(tolerances)
    worse = (checked.delta * direction < -tolerance) | (checked.value_a.notna() & checked.value_b.isna())
    return Comparison(joined, sorted(protocols_a - protocols_b), sorted(protocols_b - protocols_a), checked[worse])


def merge(boards: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Stack leaderboards ((name, board) pairs) into one, e.g. the runs of one study in two label modes.

    A measurement present in two of them (the same keys) is refused: the merged file must hold
    one value per key, and which of the two is meant cannot be guessed.
    """
    require_full_specs(boards)
    stacked = pd.concat([board.assign(_source=name) for name, board in boards], ignore_index=True)
    repeated = stacked[stacked.duplicated(KEYS, keep=False)]
    if not repeated.empty:
        first = repeated.iloc[0]
        sources = sorted(set(repeated[(repeated[KEYS] == first[KEYS]).all(axis=1)]._source))
        raise BenchError(
            f"{len(repeated.drop_duplicates(KEYS))} measurements are in more than one file, e.g. "
            f"{' / '.join(str(first[k]) for k in KEYS)} in {' and '.join(sources)}; merge leaderboards of "
            "different protocols or scorers only (`bench compare` joins the same rows)"
        )
    return stacked.drop(columns="_source")


def headline_rows(joined: pd.DataFrame) -> pd.DataFrame:
    """The rows of a join that summaries show: headline metrics over all seeds."""
    wanted = pd.DataFrame([(h.task, h.split, h.metric) for h in HEADLINES], columns=["task", "split", "metric"])
    return joined[joined.seed == "all"].merge(wanted, on=["task", "split", "metric"])
