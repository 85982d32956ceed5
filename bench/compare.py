"""Comparing and merging leaderboards: joined on every key, the scorer's full spec included.

A difference between two files is judged against the noise of both: per joined row over all
seeds, Welch's test on the per-seed values of A and of B; where the seeds give no noise (one
seed, or a scorer that does not depend on the seed, whose seeds agree exactly), a z-test from
the two 95% intervals (there the bootstrap over examples), whose half-widths give the standard
errors; one file's interval stands for both where the other has none (a file of bench < 0.4).
The p-values of the rows a gate checks are adjusted together (Holm by default, or
Benjamini-Hochberg), and a row fails only when it is worse by more than its tolerance and its
adjusted p is at most ``alpha``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench.errors import BenchError
from bench.leaderboard import UNKNOWN
from bench.schema import BETTER, HEADLINES, KEYS, PROTOCOL
from bench.stats import adjust_pvalues, welch_p

RESOLUTION = 1e-5  # relative: values that agree to six significant digits (committed files are rounded so)
Z95 = stats.norm.ppf(0.975)  # an interval's half-width over the standard error, for a 95% interval


@dataclass
class Comparison:
    joined: pd.DataFrame  # keys, then value_a, value_b, delta, p (over seeds: the noise of both files)
    only_a: list[tuple]  # protocols measured in A alone
    only_b: list[tuple]
    drops: pd.DataFrame  # checked rows worse by more than their tolerance and significantly so (p_adjusted)


def require_full_specs(boards: list[tuple[str, pd.DataFrame]]) -> None:
    """Refuse leaderboards that do not say which parameters their scorers had: a short spec alone can name two methods."""
    for name, board in boards:
        if (board.full_spec == UNKNOWN).any():
            raise BenchError(f"{name} does not record its scorers' full parameters (it was written by bench < 0.3.0), so "
                             "its `vog` may be another method than today's `vog`; rerun it with this version of bench")


def compare(a: pd.DataFrame, b: pd.DataFrame, tolerances: dict[str, float], alpha: float = 0.05,
            correction: str = "holm") -> Comparison:
    """Join two leaderboards on their keys, protocol by protocol; a protocol measured by one only is reported.

    ``drops`` holds the rows over all seeds whose metric (a key of ``tolerances``) got worse by more
    than the tolerance with an adjusted p (``correction`` over the checked rows) at most ``alpha``, or
    became NaN. ``alpha = 1`` makes the gate the raw tolerance.
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
    joined["p"] = noise_p(joined, a, b)
    # the same to six significant digits, the precision of committed files: no difference to test
    joined.loc[np.isclose(joined.value_a, joined.value_b, rtol=RESOLUTION, atol=0), "p"] = 1.0
    checked = joined[(joined.seed == "all") & joined.metric.isin(list(tolerances))].copy()
    checked["p_adjusted"] = adjust_pvalues(checked.p.to_numpy(), correction) if len(checked) else []
    direction = checked.metric.map(BETTER)
    tolerance = checked.metric.map(tolerances)
    significant = checked.p_adjusted.fillna(0.0) <= alpha  # a row without a p (one seed, no interval): the raw tolerance
    worse = ((checked.delta * direction < -tolerance) & significant) | (checked.value_a.notna() & checked.value_b.isna())
    return Comparison(joined, sorted(protocols_a - protocols_b), sorted(protocols_b - protocols_a), checked[worse])


def noise_p(joined: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame) -> np.ndarray:
    """Per joined row over all seeds, the two-sided p that A and B measure the same value (NaN elsewhere):
    Welch's test on the per-seed values, or where the seeds give no noise a z-test from the 95% intervals."""
    group = [key for key in KEYS if key != "seed"]

    def per_seed(board: pd.DataFrame) -> dict[tuple, np.ndarray]:
        rows = board[board.seed != "all"]
        return {key: values.to_numpy(np.float64) for key, values in rows.groupby(group, sort=False)["value"]}

    def interval(board: pd.DataFrame) -> dict[tuple, float]:
        rows = board[(board.seed == "all") & board.metric.str.endswith(("_ci_low", "_ci_high"))]
        if rows.empty:  # a leaderboard of bench < 0.4, or without intervals
            return {}
        ends = rows.assign(bound=rows.metric.str.rpartition("_ci_")[2], metric=rows.metric.str.rpartition("_ci_")[0])
        table = ends.pivot_table(index=group, columns="bound", values="value", aggfunc="first")
        if table.empty or not {"low", "high"} <= set(table.columns):
            return {}
        return dict(zip(table.index, (table["high"] - table["low"]) / (2 * Z95)))

    seeds_a, seeds_b = per_seed(a), per_seed(b)
    errors_a, errors_b = interval(a), interval(b)
    p = np.full(len(joined), np.nan)
    for i, row in enumerate(joined[group + ["seed", "delta"]].itertuples(index=False, name=None)):
        key, seed, delta = row[:-2], row[-2], row[-1]
        if seed != "all":
            continue
        values_a, values_b = seeds_a.get(key, np.array([])), seeds_b.get(key, np.array([]))
        seed_free = all(len(v) < 2 or np.ptp(v) == 0 for v in (values_a, values_b))  # the seeds give no noise
        if not seed_free:
            p[i] = welch_p(values_a, values_b)
        elif (key in errors_a or key in errors_b) and np.isfinite(delta):
            known = [errors[key] for errors in (errors_a, errors_b) if key in errors]
            error = np.sqrt(2 * np.mean(np.square(known)))  # one file's interval stands for both where only it has one
            p[i] = 1.0 if delta == 0 else 0.0 if error == 0 else 2 * stats.norm.sf(abs(delta) / error)
    return p


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
