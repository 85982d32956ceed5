"""What every task shares: the keys of a unit's rows, the scores each scorer left, and means over seeds."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd

from bench.schema import TASK_KEYS
from bench.stats import bootstrap_distribution, percentile_interval, stable_std, t_interval
from bench.store import ScoreTable

ROW_COLUMNS = [*TASK_KEYS, "value", "note"]
BOOTSTRAP_SEED = 0  # of the bootstrap over examples that gives a one-seed run its intervals
OVER_SEEDS = ("_std_seeds", "_ci_low", "_ci_high")  # what a mean over seeds adds beside itself


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


def metric_rows(keys: dict, split: str, scorer: str, values: dict[str, float], note: str) -> list[dict]:
    return [{**keys, "split": split, "scorer": scorer, "metric": metric, "value": value, "note": note}
            for metric, value in values.items()]


def aggregate(rows: pd.DataFrame, over: str, label: str, std_name: str, ddof: int) -> pd.DataFrame:
    """Mean (and std) of ``value`` over the ``over`` column, as new rows with ``over`` set to ``label``;
    over seeds also the 95% t-interval of the mean, ``<metric>_ci_low`` and ``<metric>_ci_high``
    (where the seeds agree exactly, ``seed_free``, the tasks put a bootstrap over examples in its place).

    A mean is NaN when any value it averages is NaN; the notes of the averaged rows are kept.
    """
    group_keys = [k for k in TASK_KEYS if k != over]
    out = []
    for key, group in rows.groupby(group_keys, sort=False, dropna=False):
        values = group["value"].to_numpy(dtype=np.float64)
        notes = "; ".join(sorted(set(filter(None, group["note"]))))
        base = dict(zip(group_keys, key), **{over: label})
        std = stable_std(values, ddof) if len(values) > ddof and np.isfinite(values).all() else np.nan
        out.append({**base, "value": values.mean(), "note": notes})
        out.append({**base, "metric": f"{base['metric']}_{std_name}", "value": std, "note": notes})
        if over == "seed":
            low, high = t_interval(values)
            out.append({**base, "metric": f"{base['metric']}_ci_low", "value": low, "note": notes})
            out.append({**base, "metric": f"{base['metric']}_ci_high", "value": high, "note": notes})
    return pd.DataFrame(out, columns=ROW_COLUMNS)


def seed_free(per_seed: pd.DataFrame) -> set[str]:
    """Scorers whose per-seed rows agree exactly on every seed (one seed, or a scorer that does not depend
    on the training seed, such as a detector on pixels): the seeds give them no interval, the examples do."""
    if per_seed.empty:
        return set()
    same = per_seed.groupby(["scorer", "split", "metric"], sort=False).value.agg(lambda v: v.nunique(dropna=False) == 1)
    agree = same.groupby(level="scorer", sort=False).all()
    return set(agree[agree].index)


def with_bootstrap_intervals(rows: pd.DataFrame,
                             intervals: dict[tuple[str, str, str], tuple[float, float]]) -> pd.DataFrame:
    """``rows`` with the intervals over seeds of the (split, scorer, metric) keys of ``intervals`` replaced by
    its (low, high), the bootstrap over examples."""
    rows = rows.copy()
    for bound, position in (("_ci_low", 0), ("_ci_high", 1)):
        at = (rows.seed == "all") & rows.metric.str.endswith(bound)
        keys = list(zip(rows.split[at], rows.scorer[at], rows.metric[at].str.removesuffix(bound)))
        replaced = [key in intervals for key in keys]
        index = rows.index[at][replaced]
        rows.loc[index, "value"] = [intervals[key][position] for key, hit in zip(keys, replaced) if hit]
    return rows


def with_seed_means(per_seed: list[dict], intervals: Callable[[set[str]], dict] | None = None) -> pd.DataFrame:
    """Per-seed rows followed by their means over seeds (``seed=all``), sample std (``<metric>_std_seeds``)
    and 95% t-interval; for the ``seed_free`` scorers, ``intervals(those scorers)`` in its place (the
    bootstrap over examples, ``with_bootstrap_intervals``)."""
    rows = pd.DataFrame(per_seed, columns=ROW_COLUMNS)
    if rows.empty:
        return rows
    free = seed_free(rows)
    rows = pd.concat([rows, aggregate(rows, "seed", "all", "std_seeds", ddof=1)], ignore_index=True)
    return with_bootstrap_intervals(rows, intervals(free)) if intervals and free else rows


def bootstrap(split: str, spec: str, positive: np.ndarray, scores: np.ndarray, metrics: dict[str, str],
              resamples: int) -> dict[tuple[str, str, str], tuple[float, float]]:
    """(split, spec, metric) -> bootstrap interval over examples, stratified by ``positive``; ``metrics``
    maps the task's metric names to those of ``bench.stats`` (``{"ap": "aupr_out"}``)."""
    values = bootstrap_distribution(positive, scores, tuple(metrics.values()), resamples, BOOTSTRAP_SEED)
    return {(split, spec, name): percentile_interval(values[metric]) for name, metric in metrics.items()}
