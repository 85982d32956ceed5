"""What every task shares: the keys of a unit's rows, the scores each scorer left, and the one aggregator
that gives a mean over seeds (or over OoD splits) its statistics as columns.

A task writes per-seed rows and declares, per metric, how the 95% interval of its mean over seeds is
computed (a ``Policy``); ``over_seeds`` computes every such mean with its statistics in one pass.
Where a scorer's seeds agree exactly (one seed, or a scorer that does not depend on the training seed,
such as a detector on pixels), the seeds say nothing about its noise; a metric's policy then takes a
bootstrap over examples (``bench.stats``'s engine, run by the task: only it has the examples), keeps
the degenerate t-interval, or gives none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from bench.schema import BINOMIAL, BOOTSTRAP, MEASUREMENT, STRATIFIED, T_SEEDS, TASK_KEYS
from bench.stats import bootstrap_distribution, percentile_interval, stable_std, t_interval
from bench.store import ScoreTable

ROW_COLUMNS = [*TASK_KEYS, *MEASUREMENT]
STATISTICS_OVER_SEEDS = ["std_seeds", "ci_low", "ci_high", "n_seeds", "interval"]
BOOTSTRAP_SEED = 0  # of the bootstrap over examples that gives a one-seed run its intervals
Intervals = dict[tuple[str, str, str], tuple[float, float, str]]  # (split, scorer, metric) -> (low, high, what)


@dataclass(frozen=True)
class Policy:
    """How a metric's 95% interval over seeds is computed: ``over_seeds`` (``T_SEEDS``, or ``BINOMIAL`` for a
    fraction of seeds) and, where a scorer's seeds agree exactly, ``seeds_agree``: ``T_SEEDS`` (the degenerate
    interval, or none for one seed), ``BOOTSTRAP`` (over examples, where the task could draw one) or ``""`` (none)."""

    over_seeds: str = T_SEEDS
    seeds_agree: str = T_SEEDS


T_INTERVAL = Policy()  # the default: t over seeds, degenerate where the seeds agree
BOOTSTRAPPED = Policy(seeds_agree=BOOTSTRAP)


def unit_keys(table: ScoreTable, task: str) -> dict[str, str]:
    """The keys shared by every row of one unit's results on one task."""
    meta = table.meta
    return {"dataset": meta["dataset"], "model": meta["model"], "task": task,
            "label_mode": meta["label_mode"], "seed": str(meta["seed"])}


def failure_note(table: ScoreTable, spec: str) -> str:
    """``scorer failed: <error>`` if the scorer failed on this unit, else ``""``."""
    failure = table.meta["failures"].get(spec)
    return f"scorer failed: {failure}" if failure else ""


def scorer_scores(table: ScoreTable, split: str) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(spec, scores, "") for each scorer of the unit, or (spec, None, why) for one that failed."""
    for spec in table.meta["scorers"]:
        failure = failure_note(table, spec)
        if failure:
            yield spec, None, failure
        else:
            yield spec, np.asarray(table.splits[split][spec], dtype=np.float64), ""


def metric_rows(keys: dict, split: str, scorer: str, values: dict[str, float], note: str,
                vs_scorer: str = "") -> list[dict]:
    """One row per metric; ``vs_scorer``: the second scorer of a row that compares two."""
    return [{**keys, "split": split, "scorer": scorer, "vs_scorer": vs_scorer, "metric": metric, "value": value,
             "note": note} for metric, value in values.items()]


def joined_notes(notes: pd.Series) -> str:
    return "; ".join(sorted(set(filter(None, notes))))


def spread(values: np.ndarray, ddof: int) -> float:
    """The std of ``values``; NaN for too few of them or a non-finite one."""
    return stable_std(values, ddof) if len(values) > ddof and np.isfinite(values).all() else np.nan


def seed_free(per_seed: pd.DataFrame) -> set[str]:
    """Scorers whose per-seed rows agree exactly on every seed (one seed, or a scorer that does not depend
    on the training seed, such as a detector on pixels): the seeds give them no interval, the examples do."""
    if per_seed.empty:
        return set()
    same = per_seed.groupby(["scorer", "split", "metric"], sort=False).value.agg(lambda v: v.nunique(dropna=False) == 1)
    agree = same.groupby(level="scorer", sort=False).all()
    return set(agree[agree].index)


def interval(values: np.ndarray, policy: Policy, agree: bool, bootstrapped: tuple[float, float, str] | None
             ) -> tuple[float, float, str]:
    """(low, high, what it is) of one mean over seeds, by ``policy``; ``agree``: the scorer's seeds agree exactly;
    ``bootstrapped``: the task's bootstrap interval of it, if it drew one."""
    if agree and policy.seeds_agree == BOOTSTRAP and bootstrapped:
        low, high, kind = bootstrapped
    elif agree and policy.seeds_agree == "":
        low, high, kind = np.nan, np.nan, ""
    elif policy.over_seeds == BINOMIAL and len(values) >= 2 and np.isfinite(values).all():
        found = binomtest(int(values.sum()), len(values)).proportion_ci(method="exact")
        low, high, kind = found.low, found.high, BINOMIAL
    else:
        (low, high), kind = t_interval(values), T_SEEDS
    return low, high, kind if np.isfinite(low) else ""


def over_seeds(per_seed: pd.DataFrame, policies: Mapping[str, Policy] | None = None, free: set[str] | None = None,
               bootstrapped: Intervals | None = None) -> pd.DataFrame:
    """The rows over seeds (``seed=all``) of ``per_seed`` rows: the mean, its sample std over seeds, the number
    of seeds and the 95% interval by each metric's policy (default ``T_INTERVAL``); ``free``: the scorers whose seeds
    agree exactly (``seed_free``), ``bootstrapped``: the task's bootstrap intervals for them.

    A mean is NaN when any value it averages is NaN; the notes of the averaged rows are kept.
    """
    policies, free, bootstrapped = policies or {}, free or set(), bootstrapped or {}
    group_keys = [k for k in TASK_KEYS if k != "seed"]
    out = []
    for key, group in per_seed.groupby(group_keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=np.float64)
        row = dict(zip(group_keys, key), seed="all")
        low, high, kind = interval(values, policies.get(row["metric"], T_INTERVAL), row["scorer"] in free,
                                   bootstrapped.get((row["split"], row["scorer"], row["metric"])))
        out.append({**row, "value": values.mean(), "std_seeds": spread(values, ddof=1), "ci_low": low,
                    "ci_high": high, "n_seeds": len(values), "interval": kind, "note": joined_notes(group["note"])})
    return pd.DataFrame(out, columns=ROW_COLUMNS)


def over_splits(rows: pd.DataFrame, label: str) -> pd.DataFrame:
    """The mean of ``rows`` over their splits, as rows of split ``label`` with ``std_splits``, the population std
    over the splits (ddof=0, the ± of the VoG paper's Table 1); one row per seed (``all`` included)."""
    group_keys = [k for k in TASK_KEYS if k != "split"]
    out = []
    for key, group in rows.groupby(group_keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=np.float64)
        out.append({**dict(zip(group_keys, key)), "split": label, "value": values.mean(),
                    "std_splits": spread(values, ddof=0), "interval": "", "note": joined_notes(group["note"])})
    return pd.DataFrame(out, columns=ROW_COLUMNS)


def with_seed_means(per_seed: list[dict], policies: Mapping[str, Policy] | None = None,
                    bootstrap: Callable[[set[str]], Intervals] | None = None) -> pd.DataFrame:
    """Per-seed rows followed by their means over seeds (``over_seeds``); ``bootstrap(scorers)``: the task's
    bootstrap intervals over examples (``Intervals``) of the scorers whose seeds agree exactly."""
    rows = pd.DataFrame(per_seed, columns=ROW_COLUMNS)
    if rows.empty:
        return rows
    free = seed_free(rows)
    found = bootstrap(free) if bootstrap and free else {}
    return pd.concat([rows, over_seeds(rows, policies, free, found)], ignore_index=True)


def bootstrap(split: str, spec: str, positive: np.ndarray, scores: np.ndarray, metrics: dict[str, str],
              resamples: int) -> Intervals:
    """(split, spec, metric) -> bootstrap interval over examples, stratified by ``positive``; ``metrics``
    maps the task's metric names to those of ``bench.stats`` (``{"ap": "aupr_out"}``)."""
    values = bootstrap_distribution(positive, scores, tuple(metrics.values()), resamples, BOOTSTRAP_SEED)
    return {(split, spec, name): (*percentile_interval(values[metric]), STRATIFIED)
            for name, metric in metrics.items()}

