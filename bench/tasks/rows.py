"""What every task shares: the keys of a unit's rows, the scores each scorer left, and the one aggregator
that gives a mean over seeds (or over OoD splits) its statistics as columns.

A task writes per-seed rows and declares, per metric, how the 95% interval of its mean over seeds is
computed (a ``Policy``); ``over_seeds`` computes every such mean with its statistics in one pass.
Where a scorer's seeds agree exactly (one seed, or a scorer that does not depend on the training seed,
such as a detector on pixels), the seeds say nothing about its noise; a metric's policy then takes an
interval over examples (computed by the task: only it has the examples), keeps the degenerate
t-interval, or gives none. The interval over examples is asymptotic (``bench.influence``: DeLong, the
delta method, Fisher's z) or, as ``OverExamples`` says, a bootstrap (``bench.stats``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from bench.influence import influences, normal_interval, standard_error
from bench.schema import BINOMIAL, BOOTSTRAP, DELONG, DELTA_METHOD, MEASUREMENT, STRATIFIED, T_SEEDS, TASK_KEYS
from bench.stats import RESAMPLES, bootstrap_distribution, percentile_interval, stable_std, t_interval
from bench.store import ScoreTable

ROW_COLUMNS = [*TASK_KEYS, *MEASUREMENT]
STATISTICS_OVER_SEEDS = ["std_seeds", "ci_low", "ci_high", "n_seeds", "interval"]
BOOTSTRAP_SEED = 0  # of the bootstrap over examples that gives a one-seed run its intervals
Intervals = dict[tuple[str, str, str], tuple[float, float, str]]  # (split, scorer, metric) -> (low, high, what)
EXAMPLES = "examples"  # a policy's word for "the task's interval over examples"


@dataclass(frozen=True)
class OverExamples:
    """How the tasks compute an interval over examples: ``asymptotic`` (``bench.influence``), ``bootstrap``
    (``resamples`` resamples, ``bench.stats``) or ``none``; the config's ``example_intervals`` and
    ``bootstrap_resamples`` (0 resamples: none)."""

    method: str = "asymptotic"
    resamples: int = RESAMPLES

    @property
    def wanted(self) -> bool:
        return self.method != "none" and not (self.method == "bootstrap" and self.resamples == 0)


@dataclass(frozen=True)
class Policy:
    """How a metric's 95% interval over seeds is computed: ``over_seeds`` (``T_SEEDS``, or ``BINOMIAL`` for a
    fraction of seeds) and, where a scorer's seeds agree exactly, ``seeds_agree``: ``T_SEEDS`` (the degenerate
    interval, or none for one seed), ``EXAMPLES`` (over examples, where the task could compute one) or ``""``
    (none)."""

    over_seeds: str = T_SEEDS
    seeds_agree: str = T_SEEDS


T_INTERVAL = Policy()  # the default: t over seeds, degenerate where the seeds agree
FROM_EXAMPLES = Policy(seeds_agree=EXAMPLES)
ASYMPTOTIC_KINDS = {"auroc": DELONG, "aupr_in": DELTA_METHOD, "aupr_out": DELTA_METHOD, "fpr95": DELTA_METHOD,
                    "fpr95_id": DELTA_METHOD}


def unit_keys(table: ScoreTable, task: str) -> dict[str, str]:
    """The keys shared by every row of one unit's results on one task."""
    meta = table.meta
    return {"dataset": meta["dataset"], "model": meta["model"], "task": task,
            "label_mode": meta["label_mode"], "seed": str(meta["seed"])}


def unscored_note(table: ScoreTable, spec: str) -> str:
    """``scorer failed: <error>`` if the scorer failed on this unit, ``skipped: <what the checkpoints lack>`` if it
    was skipped, else ``""``."""
    if failure := table.meta["failures"].get(spec):
        return f"scorer failed: {failure}"
    if reason := table.meta.get("skipped", {}).get(spec):  # units of 0.8.0 and before skip nothing
        return f"skipped: {reason}"
    return ""


def scorer_scores(table: ScoreTable, split: str) -> Iterator[tuple[str, np.ndarray | None, str]]:
    """(spec, scores, "") for each scorer of the unit, or (spec, None, why) for one that failed or was skipped."""
    for spec in table.meta["scorers"]:
        unscored = unscored_note(table, spec)
        if unscored:
            yield spec, None, unscored
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


def interval(values: np.ndarray, policy: Policy, agree: bool, over_examples: tuple[float, float, str] | None
             ) -> tuple[float, float, str]:
    """(low, high, what it is) of one mean over seeds, by ``policy``; ``agree``: the scorer's seeds agree exactly;
    ``over_examples``: the task's interval over examples of it, if it computed one."""
    if agree and policy.seeds_agree == EXAMPLES and over_examples:
        low, high, kind = over_examples
    elif agree and policy.seeds_agree == "":
        low, high, kind = np.nan, np.nan, ""
    elif policy.over_seeds == BINOMIAL and len(values) >= 2 and np.isfinite(values).all():
        found = binomtest(int(values.sum()), len(values)).proportion_ci(method="exact")
        low, high, kind = found.low, found.high, BINOMIAL
    else:
        (low, high), kind = t_interval(values), T_SEEDS
    return low, high, kind if np.isfinite(low) else ""


def over_seeds(per_seed: pd.DataFrame, policies: Mapping[str, Policy] | None = None, free: set[str] | None = None,
               examples: Intervals | None = None) -> pd.DataFrame:
    """The rows over seeds (``seed=all``) of ``per_seed`` rows: the mean, its sample std over seeds, the number
    of seeds and the 95% interval by each metric's policy (default ``T_INTERVAL``); ``free``: the scorers whose seeds
    agree exactly (``seed_free``), ``examples``: the task's intervals over examples for them.

    A mean is NaN when any value it averages is NaN; the notes of the averaged rows are kept.
    """
    policies, free, examples = policies or {}, free or set(), examples or {}
    group_keys = [k for k in TASK_KEYS if k != "seed"]
    out = []
    for key, group in per_seed.groupby(group_keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=np.float64)
        row = dict(zip(group_keys, key), seed="all")
        low, high, kind = interval(values, policies.get(row["metric"], T_INTERVAL), row["scorer"] in free,
                                   examples.get((row["split"], row["scorer"], row["metric"])))
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
                    over_examples: Callable[[set[str]], Intervals] | None = None) -> pd.DataFrame:
    """Per-seed rows followed by their means over seeds (``over_seeds``); ``over_examples(scorers)``: the task's
    intervals over examples (``Intervals``) of the scorers whose seeds agree exactly."""
    rows = pd.DataFrame(per_seed, columns=ROW_COLUMNS)
    if rows.empty:
        return rows
    free = seed_free(rows)
    found = over_examples(free) if over_examples and free else {}
    return pd.concat([rows, over_seeds(rows, policies, free, found)], ignore_index=True)


def designed(kind: str, design: str) -> str:
    """An interval's kind with how the examples were drawn: ``DeLong over examples (stratified)``."""
    return f"{kind} ({design})"


def stratified_intervals(split: str, spec: str, positive: np.ndarray, scores: np.ndarray, metrics: dict[str, str],
                         how: OverExamples) -> Intervals:
    """(split, spec, metric) -> the interval over examples stratified by ``positive``, by ``how``; ``metrics``
    maps the task's metric names to those of ``bench.metrics`` (``{"ap": "aupr_out"}``)."""
    if how.method == "bootstrap":
        values = bootstrap_distribution(positive, scores, tuple(metrics.values()), how.resamples, BOOTSTRAP_SEED)
        return {(split, spec, name): (*percentile_interval(values[metric]), designed(BOOTSTRAP, STRATIFIED))
                for name, metric in metrics.items()}
    found = influences(positive, scores, tuple(metrics.values()))
    units, strata = np.arange(len(scores)), np.asarray(positive, dtype=np.int64)
    return {(split, spec, name): (*normal_interval(found[metric][0], standard_error(found[metric][1], units, strata)),
                                  designed(ASYMPTOTIC_KINDS[metric], STRATIFIED))
            for name, metric in metrics.items()}

