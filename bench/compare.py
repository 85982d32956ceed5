"""Comparing and merging leaderboards: joined on every key, the scorer's full spec included.

A difference between two files is judged against the noise of both, per joined row over all
seeds (``bench.stats``): a paired t-test on the per-seed differences where both files have the
same seeds (the seed's share of the noise cancels), Welch's t-test on the per-seed values where
they have other seeds, and where the seeds give no noise (one seed, or a scorer that does not
depend on the seed, whose seeds agree exactly) a normal test from the two 95% intervals (there
the interval over examples), whose half-widths give the standard errors; one file's interval
stands for both where the other has none (a file of bench < 0.4).

The gate asks whether B is worse, so its tests are one-sided. The checked rows form two
families, tested apart so that the many per-split rows do not drown the few that summarise a
scorer: the headline rows (each task's headline split: the mean over OoD splits, the mislabel
task's training split, the difficulty task's test split) and the per-split rows (each OoD split,
the means per kind and severity). Within a family the p-values are adjusted by Holm's method
(family-wise error; or Benjamini-Hochberg), and ``alpha`` is shared equally between the families
(Bonferroni), so that a comparison with no real change fails with probability at most ``alpha``.
A row fails when it is worse by more than its tolerance and its adjusted p is at most ``alpha``.
For each checked row the gate also says the smallest drop it would detect with 80% power: at the
level of the first Holm step (``alpha`` / families / rows of the family), from the noise of the
two files, at their seed count or at another.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from bench.errors import BenchError
from bench.upgrade import UNKNOWN
from bench.schema import BETTER, HEADLINES, KEYS, PROTOCOL
from bench.stats import INTERVALS, Difference, adjust_pvalues, interval_difference, paired_difference, welch_difference

RESOLUTION = 1e-5  # relative: values that agree to six significant digits (committed files are rounded so)
Z95 = stats.norm.ppf(0.975)  # an interval's half-width over the standard error, for a 95% interval
POWER = 0.8  # of the detectable drop
PROJECTED_SEEDS = (3, 5, 10, 20)  # seed counts at which the detectable drop is shown beside the files' own
MOST_SEEDS = 200  # the most seeds per file ``seeds_to_detect`` looks at
HEADLINE, PER_SPLIT = "headline", "per-split"  # the gate's two families
HEADLINE_ROWS = {(h.task, h.split) for h in HEADLINES}
GROUP = [key for key in KEYS if key != "seed"]  # a row over all seeds and its per-seed rows share these


@dataclass
class Comparison:
    joined: pd.DataFrame  # keys, then value_a, value_b, delta, test, p (two-sided, over seeds: the noise of both files)
    only_a: list[tuple]  # protocols measured in A alone
    only_b: list[tuple]
    checked: pd.DataFrame  # the gated rows over all seeds, with family, p_worse, p_adjusted, detectable, worse
    alpha: float

    @property
    def drops(self) -> pd.DataFrame:
        """Checked rows worse by more than their tolerance and significantly so (``p_adjusted`` <= alpha), or NaN in B."""
        return self.checked[self.checked.worse]

    @property
    def missed(self) -> pd.DataFrame:
        """Checked rows worse by more than their tolerance but within the noise, with ``seeds_to_detect``: the seeds
        per file that would find a drop of that size with 80% power (or why no number of seeds would)."""
        missed = self.checked[self.checked.beyond_tolerance & ~self.checked.worse]
        return missed.assign(seeds_to_detect=[self._seeds_to_detect(row) for _, row in missed.iterrows()])

    def _seeds_to_detect(self, row: pd.Series) -> str:
        if row.test == INTERVALS:
            return "seeds do not help (the examples' noise)"
        found = self.seeds_to_detect(row, row.delta)
        return str(found) if found else f"over {MOST_SEEDS}"

    def power_table(self) -> pd.DataFrame:
        """Per family: its rows, tests and level, and the drop it detects with 80% power (median and largest over
        its rows) at the files' seeds and at ``PROJECTED_SEEDS`` seeds per file, with the files' noise per seed."""
        lines = []
        for family, checked in self.checked.groupby("family", sort=False):
            tests = checked.test.replace("", "none").value_counts()
            seeds = sorted({d.seeds[0] for d in checked.difference if d is not None and d.test != INTERVALS})
            line = {"family": family, "rows": len(checked), "tests": ", ".join(f"{t} {n}" for t, n in tests.items()),
                    "level": f"{self.levels[family]:.2g}", "seeds": ", ".join(map(str, seeds)) or "-"}
            for label, count in (("at these seeds", None), *((f"at {n} seeds", n) for n in PROJECTED_SEEDS)):
                drops = np.array([self.detectable(row, count) for _, row in checked.iterrows()], dtype=float)
                drops = drops[np.isfinite(drops)]
                line[label] = f"{np.median(drops):.3f} (max {drops.max():.3f})" if drops.size else "-"
            lines.append(line)
        return pd.DataFrame(lines)

    @functools.cached_property
    def levels(self) -> dict[str, float]:
        """Per family, the one-sided level of the first Holm step: the level at which a lone drop is tested."""
        tested = self.checked[self.checked.p_worse.notna()].family.value_counts()
        families = self.checked.family.unique()
        return {family: self.alpha / len(families) / max(int(tested.get(family, 0)), 1) for family in families}

    def detectable(self, row: pd.Series, seeds: int | None = None) -> float:
        """The drop of ``row`` (of ``checked``) found with 80% power, at the files' seeds or at ``seeds`` each."""
        difference: Difference | None = row.difference
        return np.nan if difference is None else difference.detectable_drop(self.levels[row.family], POWER, seeds)

    def seeds_to_detect(self, row: pd.Series, drop: float) -> int | None:
        """The fewest seeds per file at which the gate finds a drop of ``drop`` in ``row`` with 80% power, with the
        files' noise per seed; None where seeds do not help (the examples' noise) or more than ``MOST_SEEDS`` would."""
        difference: Difference | None = row.difference
        if difference is None or difference.test == INTERVALS:
            return None
        return next((n for n in range(2, MOST_SEEDS + 1) if self.detectable(row, n) <= abs(drop)), None)


def require_full_specs(boards: list[tuple[str, pd.DataFrame]]) -> None:
    """Refuse leaderboards that do not say which parameters their scorers had: a short spec alone can name two methods."""
    for name, board in boards:
        if (board.full_spec == UNKNOWN).any():
            raise BenchError(f"{name} does not record its scorers' full parameters (it was written by bench < 0.3.0), so "
                             "its `vog` may be another method than today's `vog`; rerun it with this version of bench")


def compare(a: pd.DataFrame, b: pd.DataFrame, tolerances: dict[str, float], alpha: float = 0.05,
            correction: str = "holm") -> Comparison:
    """Join two leaderboards on their keys, protocol by protocol; a protocol measured by one only is reported.

    The rows over all seeds whose metric is a key of ``tolerances`` are checked (see the module's
    docstring); ``alpha = 1`` makes the gate the raw tolerance.
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
    differences = row_differences(joined, a, b)
    same = np.isclose(joined.value_a, joined.value_b, rtol=RESOLUTION, atol=0)  # the precision of committed files
    joined["test"] = [d.test if d is not None else "" for d in differences]
    joined["p"] = [1.0 if equal else d.p() if d is not None else np.nan for d, equal in zip(differences, same)]
    checked = joined[(joined.seed == "all") & joined.metric.isin(list(tolerances))].copy()
    checked["difference"] = [differences[i] for i in checked.index]
    checked["family"] = [HEADLINE if key in HEADLINE_ROWS else PER_SPLIT for key in zip(checked.task, checked.split)]
    direction = checked.metric.map(BETTER)
    checked["p_worse"] = [1.0 if same[i] else d.p_worse(better) if d is not None else np.nan
                          for i, d, better in zip(checked.index, checked.difference, direction)]
    checked["p_adjusted"] = family_adjusted(checked.p_worse.to_numpy(), checked.family.to_numpy(), correction)
    significant = checked.p_adjusted.fillna(0.0) <= alpha  # a row without a p (one seed, no interval): the raw tolerance
    checked["beyond_tolerance"] = (checked.delta * direction < -checked.metric.map(tolerances)) & ~same[checked.index]
    checked["worse"] = (checked.beyond_tolerance & significant) | (checked.value_a.notna() & checked.value_b.isna())
    result = Comparison(joined, sorted(protocols_a - protocols_b), sorted(protocols_b - protocols_a), checked, alpha)
    checked["detectable"] = [result.detectable(row) for _, row in checked.iterrows()]
    return result


def family_adjusted(p_worse: np.ndarray, families: np.ndarray, correction: str = "holm") -> np.ndarray:
    """The p-values adjusted within each family (``correction``: holm or bh), then times the number of families
    (Bonferroni over them, at most 1): rows whose adjusted p is at most alpha fail, and with no real change
    the chance that any does is at most alpha (Holm; bh bounds the expected share of false failures instead)."""
    adjusted = np.full(len(p_worse), np.nan)
    names = pd.unique(families)
    for family in names:
        members = families == family
        adjusted[members] = np.minimum(adjust_pvalues(p_worse[members], correction) * len(names), 1.0)
    return adjusted


def row_differences(joined: pd.DataFrame, a: pd.DataFrame, b: pd.DataFrame) -> list[Difference | None]:
    """Per joined row over all seeds, B - A with its noise (None elsewhere, and where neither seeds nor
    intervals give one): paired over the seeds both files have, Welch's over other seeds, or the 95% intervals
    where the seeds give no noise."""
    def per_seed(board: pd.DataFrame) -> dict[tuple, dict[str, float]]:
        rows = board[board.seed != "all"]
        return {key: dict(zip(group.seed, group.value.astype(np.float64)))
                for key, group in rows.groupby(GROUP, sort=False)}

    def interval(board: pd.DataFrame) -> dict[tuple, float]:
        """The standard error of each row over all seeds that has a 95% interval (none in files of bench < 0.4)."""
        rows = board[(board.seed == "all") & board.ci_low.notna() & board.ci_high.notna()]
        return dict(zip(rows[GROUP].itertuples(index=False, name=None), (rows.ci_high - rows.ci_low) / (2 * Z95)))

    seeds_a, seeds_b = per_seed(a), per_seed(b)
    errors_a, errors_b = interval(a), interval(b)
    found: list[Difference | None] = []
    for row in joined[GROUP + ["seed", "delta"]].itertuples(index=False, name=None):
        key, seed, delta = row[:-2], row[-2], row[-1]
        values_a, values_b = seeds_a.get(key, {}), seeds_b.get(key, {})
        seed_free = all(len(set(v.values())) < 2 for v in (values_a, values_b))  # the seeds agree exactly
        difference = None
        if seed == "all" and not seed_free and len(values_a) >= 2 and values_a.keys() == values_b.keys():
            seeds = sorted(values_a)
            difference = paired_difference([values_a[s] for s in seeds], [values_b[s] for s in seeds])
        elif seed == "all" and not seed_free:
            difference = welch_difference(list(values_a.values()), list(values_b.values()))
        elif seed == "all" and (key in errors_a or key in errors_b) and np.isfinite(delta):
            known = [errors[key] for errors in (errors_a, errors_b) if key in errors]
            error_a, error_b = (errors_a.get(key, known[0]), errors_b.get(key, known[0]))  # one stands for both
            difference = interval_difference(delta, error_a, error_b)
        found.append(difference)
    return found


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
